package faults_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestShippedBuildHasNoSoakClock: the clock the soak test moves forward
// (cmd/nsauth-server/soakclock.go) is compiled only with the nsauthsoak
// tag, which no shipped build sets; go list shows which files each build
// compiles.
func TestShippedBuildHasNoSoakClock(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	for _, tc := range []struct {
		name     string
		tags     []string
		wantFile bool
	}{
		{name: "shipped", wantFile: false},
		{name: "soak", tags: []string{"-tags", "nsauthsoak"}, wantFile: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"list"}, tc.tags...)
			args = append(args, "-f", "{{join .GoFiles \" \"}}", "github.com/nsauth/nsauth/cmd/nsauth-server")
			out, err := exec.Command(goTool, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			files := strings.Fields(string(out))
			if got := slices.Contains(files, "soakclock.go"); got != tc.wantFile {
				t.Errorf("the %s build of cmd/nsauth-server compiles %v: soakclock.go included = %v, want %v", tc.name, files, got, tc.wantFile)
			}
		})
	}
}
