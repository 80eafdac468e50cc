package cli_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestUsersPasswdNamesFactorsAndResetsThem: `nsauth users passwd` says
// which second factors the user has and offers --reset-factors, which
// removes every one of them with the password change, as an owner
// recovering from a takeover needs; on each backend.
func TestUsersPasswdNamesFactorsAndResetsThem(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		env["NSAUTH_SECRET_KEY"] = seal.GenerateKey()
		now := time.Now()
		run := func(answer func(out string) string, args ...string) usersResult {
			out, errOut := &servetest.Buffer{}, &servetest.Buffer{}
			app := &cli.App{In: &answerReader{out: out, answer: answer}, Out: out, ErrOut: errOut,
				Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Now: func() time.Time { return now }}
			code := cli.Run(context.Background(), app, append([]string{"users"}, args...), servercmd.Commands...)
			return usersResult{code, out.String(), errOut.String()}
		}
		line := func(s string) func(string) string { return func(string) string { return s + "\n" } }
		if r := run(line("first-password"), "add", "alice"); r.code != 0 {
			t.Fatalf("add: exit %d\n%s", r.code, r.errOut)
		}
		if r := run(line("second-password"), "passwd", "alice"); r.code != 0 || !strings.Contains(r.errOut, `"alice" has no second factor.`) {
			t.Fatalf("passwd of a user without factors: exit %d\n%s", r.code, r.errOut)
		}
		// What a thief who knew the password could have added: an app,
		// its recovery codes and two passkeys.
		if r := run(func(out string) string {
			if m := keyLine.FindStringSubmatch(out); m != nil {
				return rfc6238(t, m[1], now) + "\n"
			}
			return ""
		}, "totp", "enroll", "alice"); r.code != 0 {
			t.Fatalf("totp enroll: exit %d\n%s", r.code, r.errOut)
		}
		u, err := st.UserByUsername(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"Thief's key", "Thief's phone"} {
			if err := st.AddPasskey(context.Background(), &store.Passkey{UserID: u.ID, Name: name, CredentialID: []byte(name), PublicKey: []byte("k")}); err != nil {
				t.Fatal(err)
			}
		}
		r := run(line("third-password"), "passwd", "alice")
		want := `"alice" has 2 passkeys, 10 recovery codes and an authenticator app. If someone else may have used this account, they may have added one: run the command with --reset-factors`
		if r.code != 0 || !strings.Contains(r.errOut, want) {
			t.Fatalf("passwd of a user with factors: exit %d, want %q in\n%s", r.code, want, r.errOut)
		}
		if f, _ := st.SecondFactors(context.Background(), u.ID); !f.TOTP || f.Passkeys != 2 || f.RecoveryCodes != 10 {
			t.Fatalf("passwd without --reset-factors changed the factors: %+v", f)
		}
		r = run(line("fourth-password"), "passwd", "alice", "--reset-factors")
		if r.code != 0 || !strings.Contains(r.errOut, "removed every second factor") {
			t.Fatalf("passwd --reset-factors: exit %d\n%s", r.code, r.errOut)
		}
		if f, _ := st.SecondFactors(context.Background(), u.ID); f.Any() || f.RecoveryCodes != 0 {
			t.Fatalf("after --reset-factors the user still has %+v", f)
		}
		events, err := st.AuditEvents(context.Background(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var last []string
		for _, e := range events {
			last = append(last, string(e.Type)+":"+e.Reason)
		}
		if got := strings.Join(last[len(last)-2:], " "); got != "admin.user:password_changed mfa.reset:mfa_reset" {
			t.Errorf("the last audit events are %q", got)
		}
		// A refused flag combination changes nothing.
		if r := run(line("fifth-password"), "passwd", "nobody", "--reset-factors"); r.code != cli.ExitFailure || !strings.Contains(r.errOut, `no user "nobody"`) {
			t.Errorf("passwd of an unknown user: exit %d\n%s", r.code, r.errOut)
		}
	})
}

// TestUsersEnrolLink: `nsauth users enrol-link` prints a link under the
// issuer the data was served with, valid once for --ttl, stored only as a
// digest; a new link replaces the old; --revoke removes it; and each
// refusal names its fix; on each backend.
func TestUsersEnrolLink(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		ctx := context.Background()
		if r := runUsers(env, strings.NewReader("first-password\n"), "add", "alice"); r.code != 0 {
			t.Fatalf("add: exit %d\n%s", r.code, r.errOut)
		}
		u, err := st.UserByUsername(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if r := runUsers(env, nil, "enrol-link", "alice"); r.code == 0 || !strings.Contains(r.errOut, "start nsauth serve with it once") || r.out != "" {
			t.Fatalf("a link before the data was ever served: exit %d\n%s%s", r.code, r.out, r.errOut)
		}
		if _, err := st.RecordServedIssuer(ctx, "https://auth.example.com"); err != nil {
			t.Fatal(err)
		}
		link := func(args ...string) string {
			t.Helper()
			r := runUsers(env, nil, append([]string{"enrol-link", "alice"}, args...)...)
			if r.code != 0 || !strings.Contains(r.errOut, `Enrolment link for "alice", valid once until`) {
				t.Fatalf("enrol-link: exit %d\n%s", r.code, r.errOut)
			}
			u, err := url.Parse(strings.TrimSpace(r.out))
			if err != nil || u.Scheme+"://"+u.Host+u.Path != "https://auth.example.com/login/enrol" || len(u.Query().Get("link")) != 43 ||
				strings.Count(r.out, "\n") != 1 {
				t.Fatalf("enrol-link printed %q", r.out)
			}
			return u.Query().Get("link")
		}
		first := link()
		if got, err := st.EnrolLinkUser(ctx, first); err != nil || got.ID != u.ID {
			t.Fatalf("the link names %+v, %v", got, err)
		}
		second := link("--ttl", "1h")
		if _, err := st.EnrolLinkUser(ctx, first); err == nil {
			t.Fatal("an older link still works after a new one was made")
		}
		if _, err := st.EnrolLinkUser(ctx, second); err != nil {
			t.Fatalf("the new link: %v", err)
		}
		if r := runUsers(env, nil, "enrol-link", "alice", "--revoke"); r.code != 0 || !strings.Contains(r.errOut, `Revoked the enrolment link of "alice"`) {
			t.Fatalf("--revoke: exit %d\n%s", r.code, r.errOut)
		}
		if _, err := st.EnrolLinkUser(ctx, second); err == nil {
			t.Fatal("a revoked link still works")
		}
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"nothing to revoke", []string{"alice", "--revoke"}, `"alice" has no enrolment link`},
			{"unknown user", []string{"nobody"}, `no user "nobody"`},
			{"ttl too long", []string{"alice", "--ttl", "200h"}, "--ttl must be above 0 and at most 168h0m0s"},
			{"ttl zero", []string{"alice", "--ttl", "0s"}, "--ttl must be above 0"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if r := runUsers(env, nil, append([]string{"enrol-link"}, tc.args...)...); r.code == 0 || !strings.Contains(r.errOut, tc.want) || r.out != "" {
					t.Fatalf("exit %d, want %q:\n%s%s", r.code, tc.want, r.out, r.errOut)
				}
			})
		}
		if r := runUsers(env, nil, "disable", "alice"); r.code != 0 {
			t.Fatal(r.errOut)
		}
		if r := runUsers(env, nil, "enrol-link", "alice"); r.code == 0 || !strings.Contains(r.errOut, "enable it first with nsauth users enable alice") {
			t.Fatalf("a link for a disabled user: exit %d\n%s", r.code, r.errOut)
		}
		events, err := st.AuditEvents(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var reasons []string
		for _, e := range events {
			if strings.HasPrefix(e.Reason, "enrol_link") {
				reasons = append(reasons, e.Reason)
			}
			if blob := fmt.Sprintf("%+v", e); strings.Contains(blob, first) || strings.Contains(blob, second) {
				t.Fatal("an enrolment link reached the audit trail")
			}
		}
		if got := strings.Join(reasons, " "); got != "enrol_link_created enrol_link_created enrol_link_revoked" {
			t.Errorf("audit reasons %q", got)
		}
	})
}
