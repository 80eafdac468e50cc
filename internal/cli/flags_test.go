package cli

import (
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

	"github.com/spf13/cobra"
)

func testApp(env map[string]string) *App {
	return &App{
		In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{},
		Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Now:    time.Now,
	}
}

// execute runs a command's flag parsing with its run function replaced,
// and returns the options run received (nil if it was not called).
func execute[O any](newCmd func(*App, func(context.Context, *O) error) *cobra.Command, env map[string]string, args []string) (*O, error) {
	var got *O
	cmd := newCmd(testApp(env), func(_ context.Context, o *O) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	err := cmd.Execute()
	return got, err
}

func TestClientOptionsResolve(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		flag       string
		env        map[string]string
		wantURL    string
		wantDir    string
		wantErr    string
		wantUsage  bool
		allowHTTP  bool
		flagDirSet string
	}{
		{name: "default", env: map[string]string{"NSAUTH_CONFIG_DIR": "/c"}, wantURL: "http://localhost:8080", wantDir: "/c"},
		{name: "NEOSYNC_API_URL", env: map[string]string{"NEOSYNC_API_URL": "https://neo.example.com/", "NSAUTH_CONFIG_DIR": "/c"}, wantURL: "https://neo.example.com", wantDir: "/c"},
		{name: "NSAUTH_API_URL wins over NEOSYNC_API_URL", env: map[string]string{"NSAUTH_API_URL": "https://a.example.com", "NEOSYNC_API_URL": "https://b.example.com", "NSAUTH_CONFIG_DIR": "/c"}, wantURL: "https://a.example.com", wantDir: "/c"},
		{name: "flag wins", flag: "http://127.0.0.1:9090", env: map[string]string{"NSAUTH_API_URL": "https://a.example.com", "NSAUTH_CONFIG_DIR": "/c"}, wantURL: "http://127.0.0.1:9090", wantDir: "/c"},
		{name: "config dir flag wins", env: map[string]string{"NSAUTH_CONFIG_DIR": "/c"}, flagDirSet: "/flag", wantURL: "http://localhost:8080", wantDir: "/flag"},
		{name: "bad URL", flag: "nope", wantErr: "not an absolute http(s) URL", wantUsage: true},
		{name: "plain HTTP remote", flag: "http://neo.example.com", wantErr: "plain HTTP", wantUsage: true},
		{name: "plain HTTP remote allowed", flag: "http://neo.example.com", allowHTTP: true, env: map[string]string{"NSAUTH_CONFIG_DIR": "/c"}, wantURL: "http://neo.example.com", wantDir: "/c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := clientOptions{APIURL: tc.flag, ConfigDir: tc.flagDirSet, InsecureAllowHTTP: tc.allowHTTP}
			err := o.resolve(testApp(tc.env).Getenv)
			if tc.wantErr != "" {
				var ue *usageError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || tc.wantUsage != errors.As(err, &ue) {
					t.Fatalf("resolve: %v, want usage error %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || o.APIURL != tc.wantURL || o.ConfigDir != tc.wantDir {
				t.Fatalf("resolve = %q %q %v; want %q %q", o.APIURL, o.ConfigDir, err, tc.wantURL, tc.wantDir)
			}
		})
	}
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

func TestTokenWhoamiStatusLogoutFlags(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NSAUTH_CONFIG_DIR": "/cfg", "NEOSYNC_API_URL": "https://neo.example.com"}
	tokenCmd := func(args []string) (any, error) { return execute(newTokenCommand, env, args) }
	whoamiCmd := func(args []string) (any, error) { return execute(newWhoamiCommand, env, args) }
	statusCmd := func(args []string) (any, error) { return execute(newStatusCommand, env, args) }
	logoutCmd := func(args []string) (any, error) { return execute(newLogoutCommand, env, args) }
	accountsCmd := func(args []string) (any, error) { return execute(newAccountsCommand, env, args) }
	switchCmd := func(args []string) (any, error) { return execute(newSwitchCommand, env, args) }
	tests := []struct {
		name    string
		run     func(args []string) (any, error)
		args    []string
		check   func(t *testing.T, o any)
		wantErr string
	}{
		{"token margin", tokenCmd, []string{"--margin", "5m"}, func(t *testing.T, o any) {
			if to := o.(*tokenOptions); to.Margin != 5*time.Minute || to.client.APIURL != "https://neo.example.com" || to.client.ConfigDir != "/cfg" {
				t.Errorf("%+v", to)
			}
		}, ""},
		{"token default margin", tokenCmd, nil, func(t *testing.T, o any) {
			if to := o.(*tokenOptions); to.Margin != time.Minute {
				t.Errorf("Margin = %v", to.Margin)
			}
		}, ""},
		{"token negative margin", tokenCmd, []string{"--margin", "-1s"}, nil, "--margin must not be negative"},
		{"whoami json", whoamiCmd, []string{"-o", "json"}, func(t *testing.T, o any) {
			if wo := o.(*whoamiOptions); wo.Output != outputJSON {
				t.Errorf("Output = %q", wo.Output)
			}
		}, ""},
		{"whoami default text", whoamiCmd, nil, func(t *testing.T, o any) {
			if wo := o.(*whoamiOptions); wo.Output != outputText {
				t.Errorf("Output = %q", wo.Output)
			}
		}, ""},
		{"status json with URL", statusCmd, []string{"--output", "json", "--api-url", "https://x.example.com"}, func(t *testing.T, o any) {
			if so := o.(*statusOptions); so.Output != outputJSON || so.client.APIURL != "https://x.example.com" {
				t.Errorf("%+v", so)
			}
		}, ""},
		{"status bad output", statusCmd, []string{"-o", "yaml"}, nil, "is not text or json"},
		{"logout config dir", logoutCmd, []string{"--config-dir", "/elsewhere"}, func(t *testing.T, o any) {
			if lo := o.(*logoutOptions); lo.client.ConfigDir != "/elsewhere" {
				t.Errorf("%+v", lo)
			}
		}, ""},
		{"logout argument", logoutCmd, []string{"all"}, nil, "takes no arguments"},
		{"token account", tokenCmd, []string{"--account", "bob@example.com"}, func(t *testing.T, o any) {
			if to := o.(*tokenOptions); to.client.Account != "bob@example.com" {
				t.Errorf("Account = %q", to.client.Account)
			}
		}, ""},
		{"token default account", tokenCmd, nil, func(t *testing.T, o any) {
			if to := o.(*tokenOptions); to.client.Account != "" {
				t.Errorf("Account = %q, want empty (the active one)", to.client.Account)
			}
		}, ""},
		{"whoami account", whoamiCmd, []string{"--account", "3f2a9c01b7de"}, func(t *testing.T, o any) {
			if wo := o.(*whoamiOptions); wo.client.Account != "3f2a9c01b7de" {
				t.Errorf("Account = %q", wo.client.Account)
			}
		}, ""},
		{"logout account", logoutCmd, []string{"--account", "bob"}, func(t *testing.T, o any) {
			if lo := o.(*logoutOptions); lo.client.Account != "bob" || lo.All {
				t.Errorf("%+v", lo)
			}
		}, ""},
		{"logout all", logoutCmd, []string{"--all"}, func(t *testing.T, o any) {
			if lo := o.(*logoutOptions); !lo.All {
				t.Errorf("%+v", lo)
			}
		}, ""},
		{"logout all and account", logoutCmd, []string{"--all", "--account", "bob"}, nil, "--all and --account exclude each other"},
		{"status takes no account", statusCmd, []string{"--account", "bob"}, nil, "unknown flag: --account"},
		{"accounts json", accountsCmd, []string{"-o", "json"}, func(t *testing.T, o any) {
			if ao := o.(*accountsOptions); ao.Output != outputJSON || ao.client.APIURL != "https://neo.example.com" {
				t.Errorf("%+v", ao)
			}
		}, ""},
		{"accounts argument", accountsCmd, []string{"bob"}, nil, "takes no arguments"},
		{"switch account", switchCmd, []string{"bob@example.com", "--api-url", "https://x.example.com"}, func(t *testing.T, o any) {
			if so := o.(*switchOptions); so.client.Account != "bob@example.com" || so.client.APIURL != "https://x.example.com" {
				t.Errorf("%+v", so)
			}
		}, ""},
		{"switch without account", switchCmd, nil, nil, "takes one account"},
		{"switch two accounts", switchCmd, []string{"a", "b"}, nil, "takes one account"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := tc.run(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
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
