package cli_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/cli"
)

// TestREADMEGetsANewcomerToNsauth: the README says how `nsauth` gets on
// the PATH before its examples type it, keeps its two commands, and
// every `$ nsauth <command>` it shows exists.
func TestREADMEGetsANewcomerToNsauth(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	// README lines are wrapped; compare with single spaces.
	flat := strings.Join(strings.Fields(readme), " ")
	tests := []struct{ name, want string }{
		{"run the service", "```sh\ngo run ./cmd/nsauth-server serve\n```"},
		{"run the tests", "```sh\ngo test -race ./...\n```"},
		{"install", "```sh\ngo install ./cmd/...\n```"},
		{"where it lands", "$(go env GOBIN)`, or in `$(go env GOPATH)/bin`"},
		{"the silent first build", "takes a few minutes and prints nothing meanwhile"},
		{"version", "`nsauth version`"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(readme, tc.want) && !strings.Contains(flat, strings.Join(strings.Fields(tc.want), " ")) {
				t.Errorf("README does not contain %q", tc.want)
			}
		})
	}

	install := strings.Index(readme, "go install ./cmd/...")
	typed := regexp.MustCompile(`(?m)^\$ nsauth (\S+)`)
	first := typed.FindStringIndex(readme)
	if install < 0 || first == nil || first[0] < install {
		t.Errorf("the README types `$ nsauth …` (at byte %v) before saying how to install it (at byte %d)", first, install)
	}
	known := map[string]bool{}
	for _, c := range cli.NewRootCommand(&cli.App{}, cli.ServerStandIns...).Commands() {
		known[c.Name()] = true
	}
	for _, m := range typed.FindAllStringSubmatch(readme, -1) {
		if !known[m[1]] {
			t.Errorf("the README shows `$ nsauth %s`, which is not a command", m[1])
		}
	}
}
