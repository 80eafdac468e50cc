package cli_test

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestSecondFactorCommandsThroughTheAdminAPI: from a directory holding
// only an administrator's `nsauth login`, `nsauth users totp remove`,
// `users passkeys` (list and --remove), `users mfa-reset` and `users
// enrol-link` (and --revoke) work through --api-url against `nsauth
// serve`, print what they print offline (a refusal word for word the
// same), and are audited with the administrator as actor; the enrolment
// link is in no audit record and no server log line. A user who is not an
// administrator gets no enrolment link for themselves (with which their
// password alone would add a factor) and resets no one's factors.
func TestSecondFactorCommandsThroughTheAdminAPI(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		serverEnv := storeEnv(t, b)
		serverEnv["NSAUTH_SECRET_KEY"] = seal.GenerateKey() // for users totp enroll, which stays offline
		serverURL, logs := startServeLogs(t, serverEnv)
		waitReady(t, serverURL)
		st := openServedStore(t, serverEnv)
		if r := runUsers(serverEnv, strings.NewReader("carol-password-1\n"), "add", "carol"); r.code != 0 {
			t.Fatalf("users add carol: exit %d\n%s", r.code, r.errOut)
		}
		carolID := mustUserID(t, st, "carol")
		carol := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), apiURL: serverURL, counts: map[string]int{}}
		loginAs(t, carol, "carol", "carol-password-1") // before she has a factor
		admin := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), apiURL: serverURL, counts: map[string]int{}}
		loginAs(t, admin, "admin", biAdminPassword)
		remote := func(e *env, args ...string) result {
			t.Helper()
			return e.run(ctx, nil, append(append([]string{"users"}, args...), "--api-url", serverURL)...)
		}
		// sameAsOffline runs args remotely as the administrator and
		// offline, and fails unless both print the same and exit alike.
		sameAsOffline := func(args ...string) result {
			t.Helper()
			r, off := remote(admin, args...), runUsers(serverEnv, nil, args...)
			if r.code != off.code || r.out != off.out || r.errOut != off.errOut {
				t.Fatalf("users %v: through the API exit %d %q %q; offline exit %d %q %q",
					args, r.code, r.out, r.errOut, off.code, off.out, off.errOut)
			}
			return r
		}

		// carol's factors: an authenticator app (set up offline: it needs
		// the secret key and a code) and two passkeys.
		out, errOut := &servetest.Buffer{}, &servetest.Buffer{}
		in := &answerReader{out: out, answer: func(printed string) string {
			if m := keyLine.FindStringSubmatch(printed); m != nil {
				return rfc6238(t, m[1], time.Now()) + "\n"
			}
			return ""
		}}
		app := &cli.App{In: in, Out: out, ErrOut: errOut, Now: time.Now, Getenv: func(k string) (string, bool) { v, ok := serverEnv[k]; return v, ok }}
		if code := cli.Run(ctx, app, []string{"users", "totp", "enroll", "carol"}, servercmd.Commands...); code != 0 {
			t.Fatalf("users totp enroll carol: exit %d\n%s", code, errOut)
		}
		for _, p := range []*store.Passkey{
			{UserID: carolID, Name: "Laptop", CredentialID: []byte{1}, PublicKey: []byte("k1"), BackupEligible: true},
			{UserID: carolID, Name: "Security key", CredentialID: []byte{2}, PublicKey: []byte("k2")},
		} {
			if err := st.AddPasskey(ctx, p); err != nil {
				t.Fatal(err)
			}
		}

		for _, c := range []struct {
			args             []string
			wantOut, wantErr string
		}{
			{[]string{"totp", "remove", "Carol"}, "", "Removed the authenticator app of \"carol\".\n"},
			{[]string{"passkeys", "carol", "--remove", "Laptop"}, "", "Removed the passkey \"Laptop\" of \"carol\".\n"},
		} {
			if r := remote(admin, c.args...); r.code != 0 || r.out != c.wantOut || r.errOut != c.wantErr {
				t.Fatalf("users %v through the API: exit %d, %q, %q; want %q, %q", c.args, r.code, r.out, r.errOut, c.wantOut, c.wantErr)
			}
		}
		if f, err := st.SecondFactors(ctx, carolID); err != nil || f.TOTP || f.Passkeys != 1 || f.RecoveryCodes != 10 {
			t.Fatalf("carol's factors after removing the app and a passkey: %+v, %v", f, err)
		}
		if r := sameAsOffline("passkeys", "carol"); r.code != 0 || !regexpLine(r.out, "Security key", "device-bound", "never") || strings.Contains(r.out, "Laptop") {
			t.Fatalf("users passkeys carol: exit %d\n%s%s", r.code, r.out, r.errOut)
		}
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"totp", "remove", "carol"}, `"carol" has no authenticator app`},
			{[]string{"passkeys", "carol", "--remove", "Phone"}, `"carol" has no passkey named or with the id "Phone" (nsauth users passkeys carol lists them)`},
			{[]string{"passkeys", "nobody"}, `no user "nobody"`},
			{[]string{"mfa-reset", "nobody"}, `no user "nobody"`},
			{[]string{"enrol-link", "carol", "--revoke"}, `"carol" has no enrolment link`},
			{[]string{"enrol-link", "carol", "--ttl", "200h"}, "--ttl must be above 0 and at most 168h0m0s"},
		} {
			if r := sameAsOffline(c.args...); r.code == 0 || !strings.Contains(r.errOut, c.want) {
				t.Fatalf("users %v: exit %d %q, want a failure saying %q", c.args, r.code, r.errOut, c.want)
			}
		}
		r := remote(admin, "mfa-reset", "carol")
		if want := `Removed every second factor of "carol": it logs in with its password alone; if NSAUTH_MFA=required, ` +
			"it cannot sign in until it sets up a new one through a link (nsauth users enrol-link carol).\n"; r.code != 0 || r.out != "" || r.errOut != want {
			t.Fatalf("users mfa-reset carol through the API: exit %d %q %q", r.code, r.out, r.errOut)
		}
		if f, err := st.SecondFactors(ctx, carolID); err != nil || f.Any() || f.RecoveryCodes != 0 {
			t.Fatalf("carol's factors after mfa-reset: %+v, %v", f, err)
		}
		if r := sameAsOffline("passkeys", "carol"); r.code != 0 || r.out != "" || r.errOut != "\"carol\" has no passkeys.\n" {
			t.Fatalf("users passkeys carol after mfa-reset: exit %d %q %q", r.code, r.out, r.errOut)
		}

		r = remote(admin, "enrol-link", "carol", "--ttl", "1h")
		link := strings.TrimSpace(r.out)
		u, err := url.Parse(link)
		if r.code != 0 || err != nil || !strings.HasPrefix(link, defaultIssuer(serverURL)+"/login/enrol?link=") || strings.Count(r.out, "\n") != 1 ||
			!strings.HasPrefix(r.errOut, `Enrolment link for "carol", valid once until `) ||
			!strings.HasSuffix(r.errOut, "Give it to carol alone: with the account's password it adds a second factor.\n") {
			t.Fatalf("users enrol-link carol through the API: exit %d %q %q", r.code, r.out, r.errOut)
		}
		secret := u.Query().Get("link")
		if got, err := st.EnrolLinkUser(ctx, secret); err != nil || got.ID != carolID {
			t.Fatalf("the link names %+v, %v", got, err)
		}
		if r := remote(admin, "enrol-link", "carol", "--revoke"); r.code != 0 || r.out != "" || r.errOut != "Revoked the enrolment link of \"carol\".\n" {
			t.Fatalf("users enrol-link carol --revoke through the API: exit %d %q %q", r.code, r.out, r.errOut)
		}
		if _, err := st.EnrolLinkUser(ctx, secret); err == nil {
			t.Fatal("the revoked link still works")
		}

		// carol is no administrator: no link for herself, no reset of
		// another's factors.
		for _, args := range [][]string{{"enrol-link", "carol"}, {"mfa-reset", "admin"}, {"passkeys", "admin"}} {
			if r := remote(carol, args...); r.code != cli.ExitFailure || r.out != "" || !strings.Contains(r.errOut, "not an nsauth administrator") {
				t.Fatalf("carol's users %v: exit %d %q %q", args, r.code, r.out, r.errOut)
			}
		}
		events, err := st.AuditEvents(ctx, store.AuditFilter{Types: []audit.Type{audit.SecondFactorReset, audit.PasskeyRemoved, audit.UserChanged}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events {
			if e.Reason == "added" {
				continue // carol, offline (any other event, by carol or by anyone, fails the test)
			}
			got = append(got, string(e.Type)+" "+e.Username+" "+e.Target+e.Reason+" by "+e.Actor)
			if blob := fmt.Sprintf("%+v", e); strings.Contains(blob, secret) {
				t.Fatalf("an audit record holds the enrolment link: %+v", e)
			}
		}
		want := []string{
			"mfa.reset carol totp_removed by admin",
			"passkey.removed carol Laptop by admin",
			"mfa.reset carol mfa_reset by admin",
			"admin.user carol enrol_link_created by admin",
			"admin.user carol enrol_link_revoked by admin",
		}
		if !slices.Equal(got, want) {
			t.Fatalf("audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if strings.Contains(logs.String(), secret) {
			t.Fatal("the server's log holds the enrolment link")
		}
	})
}
