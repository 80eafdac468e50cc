package cli

import (
	"bytes"
	"context"
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
