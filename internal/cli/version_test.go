package cli

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	t.Parallel()
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	const rev = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
	tests := []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"built from a modified checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: vcs("vcs", "git", "vcs.revision", rev, "vcs.time", "2026-11-30T10:00:00Z", "vcs.modified", "true")},
			true, "nsauth (devel) commit 1a2b3c4d5e6f 2026-11-30T10:00:00Z (modified)"},
		{"built from a clean checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", rev, "vcs.time", "2026-11-30T10:00:00Z", "vcs.modified", "false")},
			true, "nsauth (devel) commit 1a2b3c4d5e6f 2026-11-30T10:00:00Z"},
		{"go install module@version", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}},
			true, "nsauth v1.2.3"},
		{"built without VCS stamping", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			true, "nsauth (devel)"},
		{"no module version", &debug.BuildInfo{}, true, "nsauth (devel)"},
		{"no build information", nil, false, "nsauth (unknown version: built without module support)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := versionLine(tc.info, tc.ok); got != tc.want {
				t.Errorf("versionLine = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestVersionCommandAndFlag: `nsauth version` and `nsauth --version` print
// the same line, built from this binary's build information.
func TestVersionCommandAndFlag(t *testing.T) {
	t.Parallel()
	want := versionLine(debug.ReadBuildInfo()) + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			app := testApp(nil)
			if code := Run(context.Background(), app, args); code != ExitOK {
				t.Fatalf("exit %d: %s", code, app.ErrOut.(*bytes.Buffer))
			}
			if got := app.Out.(*bytes.Buffer).String(); got != want || !strings.HasPrefix(got, "nsauth ") {
				t.Errorf("stdout = %q, want %q", got, want)
			}
		})
	}
	app := testApp(nil)
	if code := Run(context.Background(), app, []string{"version", "extra"}); code != ExitUsage {
		t.Errorf("version extra: exit %d, want %d", code, ExitUsage)
	}
}
