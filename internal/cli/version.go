package cli

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func newVersionCommand(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print nsauth's version and the commit it was built from",
		Long: `Print the module version and, for a binary built from a git checkout, the
commit, its time, and "(modified)" when the checkout had uncommitted changes.
Built with go build or go install in a git clone (Go 1.24 or later), the
version is the commit's pseudo-version, such as
v0.0.0-20261206133805-2634160b001c (with "+dirty" when modified), or the tag
vX.Y.Z on a tagged commit. Where Go stamps no commit (a git worktree, or
-buildvcs=false, also through GOFLAGS) it says "(devel)". One installed with
go install github.com/nsauth/nsauth/cmd/nsauth@vX.Y.Z says vX.Y.Z.
nsauth --version prints the same line.`,
		Example: `  nsauth version
  nsauth --version`,
		Args: NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(app.Out, versionLine(debug.ReadBuildInfo()))
			return err
		},
	}
}

// versionLine describes a binary from its build information, e.g.
// "nsauth v0.0.0-20261130100000-1a2b3c4d5e6f+dirty commit 1a2b3c4d5e6f
// 2026-11-30T10:00:00Z (modified)".
func versionLine(info *debug.BuildInfo, ok bool) string {
	if !ok || info == nil {
		return "nsauth (unknown version: built without module support)"
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	words := []string{"nsauth", version}
	var revision, at string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if revision != "" {
		// 12 hex digits, as Go's pseudo-versions use: unambiguous in
		// practice, and what `git show` accepts.
		if len(revision) > 12 {
			revision = revision[:12]
		}
		words = append(words, "commit", revision)
		if at != "" {
			words = append(words, at)
		}
		if modified {
			words = append(words, "(modified)")
		}
	}
	return strings.Join(words, " ")
}
