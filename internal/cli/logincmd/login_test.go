package logincmd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/cli/cliapp"
	"github.com/spf13/cobra"
)

// Moved from package cli's flags_test.go and helpers_test.go with the
// command they test; every assertion is as it was. testApp and execute
// are copies of package cli's test helpers.

func testApp(env map[string]string) *cliapp.App {
	return &cliapp.App{
		In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{},
		Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Now:    time.Now,
	}
}

// execute runs a command's flag parsing with its run function replaced,
// and returns the options run received (nil if it was not called).

func execute[O any](newCmd func(*cliapp.App, func(context.Context, *O) error) *cobra.Command, env map[string]string, args []string) (*O, error) {
	var got *O
	cmd := newCmd(testApp(env), func(_ context.Context, o *O) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	err := cmd.Execute()
	return got, err
}

func TestLoginFlags(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NSAUTH_CONFIG_DIR": "/cfg"}
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o *loginOptions)
		wantErr string
	}{
		{name: "defaults", args: nil, check: func(t *testing.T, o *loginOptions) {
			if o.Port != 0 || o.ListenAddress != "127.0.0.1" || o.RedirectHost != "127.0.0.1" || o.Timeout != 5*time.Minute ||
				o.Scope != "openid profile email offline_access" || o.NoBrowser || o.Manual || o.UseKeyring || o.client.APIURL != "http://localhost:8080" {
				t.Errorf("defaults = %+v", o)
			}
		}},
		{name: "Neosync's fixed port", args: []string{"--port", "4242"}, check: func(t *testing.T, o *loginOptions) {
			if o.Port != 4242 {
				t.Errorf("Port = %d", o.Port)
			}
		}},
		{name: "all listener flags", args: []string{"--listen-address", "::1", "--redirect-host", "localhost", "--no-browser", "--timeout", "30s", "--keyring", "--scope", "openid"}, check: func(t *testing.T, o *loginOptions) {
			if o.ListenAddress != "::1" || o.RedirectHost != "localhost" || !o.NoBrowser || o.Timeout != 30*time.Second || !o.UseKeyring || o.Scope != "openid" {
				t.Errorf("options = %+v", o)
			}
		}},
		{name: "redirect host defaults to listen address", args: []string{"--listen-address", "::1"}, check: func(t *testing.T, o *loginOptions) {
			if o.RedirectHost != "::1" {
				t.Errorf("RedirectHost = %q", o.RedirectHost)
			}
		}},
		{name: "unspecified listen address redirects to 127.0.0.1", args: []string{"--listen-address", "0.0.0.0"}, check: func(t *testing.T, o *loginOptions) {
			if o.RedirectHost != "127.0.0.1" {
				t.Errorf("RedirectHost = %q", o.RedirectHost)
			}
		}},
		{name: "manual", args: []string{"--manual"}, check: func(t *testing.T, o *loginOptions) {
			if !o.Manual {
				t.Error("Manual not set")
			}
		}},
		{name: "negative port", args: []string{"--port", "-1"}, wantErr: "--port -1"},
		{name: "empty scope", args: []string{"--scope", " "}, wantErr: "--scope must not be empty"},
		{name: "negative timeout", args: []string{"--timeout", "-1s"}, wantErr: "--timeout must be positive"},
		{name: "argument", args: []string{"now"}, wantErr: "takes no arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := execute(newLoginCommand, env, tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if got != nil {
					t.Error("run was called despite the usage error")
				}
				return
			}
			if err != nil || got == nil {
				t.Fatalf("err = %v, run called: %v", err, got != nil)
			}
			tc.check(t, got)
		})
	}
}

func TestOpenBrowserRunsBROWSERWithoutAShell(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("shell script")
	}
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	script := filepath.Join(dir, "browser.sh")
	body := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> " + argsFile + "; done\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	pwned := filepath.Join(dir, "pwned")
	hostile := "https://idp.example/authorize?a=1&b=$(touch " + pwned + ");touch " + pwned + "2`touch " + pwned + "3`"
	tests := []struct {
		name, browser string
		want          []string
	}{
		{"URL appended", script + " --new-window", []string{"--new-window", hostile}},
		{"%s replaced", script + " --url=%s", []string{"--url=" + hostile}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.Remove(argsFile)
			app := testApp(map[string]string{"BROWSER": tc.browser})
			app.ErrOut = &bytes.Buffer{}
			if err := openBrowser(app, hostile); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			var got []byte
			for time.Now().Before(deadline) {
				got, _ = os.ReadFile(argsFile)
				if strings.Count(string(got), "\n") >= len(tc.want) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n"); strings.Join(lines, "|") != strings.Join(tc.want, "|") {
				t.Errorf("$BROWSER got arguments %q, want %q", lines, tc.want)
			}
			for _, f := range []string{"pwned", "pwned2", "pwned3"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					t.Errorf("the URL ran a command (%s exists)", f)
				}
			}
		})
	}
	app := testApp(map[string]string{"BROWSER": filepath.Join(dir, "missing-browser")})
	if err := openBrowser(app, "https://x.example"); err == nil || !strings.Contains(err.Error(), "running $BROWSER") {
		t.Errorf("missing $BROWSER: %v", err)
	}
}

func TestBrowserErrorNamesWhatWasTried(t *testing.T) {
	t.Parallel()
	other := errors.New("xdg-open: exit status 3")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"none of the Linux openers installed", &exec.Error{Name: "xdg-open,x-www-browser,www-browser,wslview", Err: exec.ErrNotFound},
			"tried xdg-open, x-www-browser, www-browser, wslview"},
		{"one opener", fmt.Errorf("opening: %w", &exec.Error{Name: "open", Err: exec.ErrNotFound}), "tried open"},
		{"an opener that failed", other, other.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := browserError(tc.err); got == nil || got.Error() != tc.want {
				t.Errorf("browserError = %v, want %q", got, tc.want)
			}
		})
	}
	if err := browserError(nil); err != nil {
		t.Errorf("browserError(nil) = %v", err)
	}
	for _, b := range []string{"/nonexistent/firefox --new-window", "no-such-browser-on-path"} {
		app := testApp(map[string]string{"BROWSER": b})
		want := "running $BROWSER: " + strings.Fields(b)[0] + " was not found"
		if err := openBrowser(app, "https://x.example"); err == nil || err.Error() != want {
			t.Errorf("$BROWSER=%s: %v, want %q", b, err, want)
		}
	}
}

func TestCheckAuthorizeURL(t *testing.T) {
	t.Parallel()
	const state, challenge = "st", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	base := "https://idp.example/authorize?client_id=c&state=st"
	tests := []struct {
		name     string
		url      string
		wantPKCE bool
		wantErr  string
	}{
		{"PKCE passed on", base + "&code_challenge=" + challenge + "&code_challenge_method=S256", true, ""},
		{"old server: no PKCE", base, false, ""},
		{"http loopback provider", "http://127.0.0.1:8080/authorize?state=st", false, ""},
		{"no state in URL", "https://idp.example/authorize?client_id=c", false, ""},
		{"other state", "https://idp.example/authorize?state=other", false, "its state differs"},
		{"other challenge", base + "&code_challenge=xyz&code_challenge_method=S256", false, "PKCE challenge this client did not send"},
		{"plain method", base + "&code_challenge=" + challenge + "&code_challenge_method=plain", false, "PKCE challenge this client did not send"},
		{"javascript", "javascript:alert(1)", false, "not an http(s) URL"},
		{"file", "file:///etc/passwd", false, "not an http(s) URL"},
		{"relative", "/authorize", false, "not an http(s) URL"},
		{"empty", "", false, "not an http(s) URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pkce, err := checkAuthorizeURL(tc.url, state, challenge)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || pkce != tc.wantPKCE {
				t.Fatalf("checkAuthorizeURL = %v, %v; want %v", pkce, err, tc.wantPKCE)
			}
		})
	}
}

func TestReadLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		limit   int
		want    string
		wantErr bool
	}{
		{"line", "abc\nrest", 100, "abc\n", false},
		{"last line without newline", "abc", 100, "abc", true}, // io.EOF with the text
		{"longer than the buffer", strings.Repeat("a", 10000) + "\n", 20000, strings.Repeat("a", 10000) + "\n", false},
		{"over the limit", strings.Repeat("a", 200) + "\n", 100, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := readLine(bufio.NewReaderSize(strings.NewReader(tc.in), 16), tc.limit)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("readLine = %d bytes, %v; want %d bytes, error %v", len(got), err, len(tc.want), tc.wantErr)
			}
		})
	}
}

func TestNewStateHasEnoughEntropy(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		s, err := newState()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 43 || seen[s] {
			t.Fatalf("state %q: want 43 base64url characters (256 bits), never repeated", s)
		}
		seen[s] = true
	}
}
