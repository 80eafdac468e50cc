package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// minAuditRecords is how many events the session below must leave at the
// least, so that the search looks where the refs are: the first key, a
// failed login, two logins with their codes issued and exchanged, the
// replay, a rotation and the reuse.
const minAuditRecords = 11

// TestBuiltinAuditHoldsNoSecret is the secret-hygiene check of the audit
// trail: after a built-in session (a wrong password, a login whose code is
// replayed, a refresh, the reuse of the rotated refresh token), neither the
// audit records, as `nsauth audit -o json` reads them, nor the JSON stream
// of NSAUTH_AUDIT_LOG holds a password, code, verifier or token that
// crossed the wire; `nsauth audit hash` of a token prints its ref, never
// the token.
func TestBuiltinAuditHoldsNoSecret(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env := storeEnv(t, b)
		streamFile := filepath.Join(t.TempDir(), "audit.jsonl")
		env["NSAUTH_AUDIT_LOG"] = streamFile
		s := startBuiltinServe(t, env, nil, "--refresh-token-reuse-grace", "0")
		s.waitReady(t)

		const wrongPassword = "not-the-password-but-close"
		v := oauth2.GenerateVerifier()
		browser := issuertest.NewBrowser(t)
		page := browser.Open(t, s.authorize(t, v))
		browser.Submit(t, page, "admin", wrongPassword)
		loc, err := issuertest.RedirectOf(browser.Submit(t, page, "admin", biAdminPassword))
		if err != nil {
			t.Fatal(err)
		}
		code := loc.Query().Get("code")
		first, err := s.loginCli(t, code, v)
		if err != nil {
			t.Fatalf("LoginCli: %v", err)
		}
		_, _ = s.loginCli(t, code, v) // replayed
		tok := s.login(t)
		next, err := s.refreshCli(tok.GetRefreshToken())
		if err != nil {
			t.Fatalf("RefreshCli: %v", err)
		}
		_, _ = s.refreshCli(tok.GetRefreshToken()) // reused

		run := func(in string, args ...string) string {
			t.Helper()
			var out, errOut bytes.Buffer
			a := &cli.App{In: strings.NewReader(in), Out: &out, ErrOut: &errOut, Getenv: servetest.Env(env)}
			if code := cli.Run(context.Background(), a, args, servercmd.Commands...); code != cli.ExitOK {
				t.Fatalf("%v: exit %d\n%s", args, code, errOut.String())
			}
			return out.String()
		}
		records := run("", "audit", "--since", "all", "-o", "json")
		table := run("", "audit", "--since", "all")
		ref := strings.TrimSpace(run(next.GetRefreshToken()+"\n", "audit", "hash"))
		if len(ref) != 32 || strings.Trim(ref, "0123456789abcdef") != "" {
			t.Errorf("audit hash printed %q, want 32 hex digits", ref)
		}
		stream, err := os.ReadFile(streamFile)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}

		secrets := []string{wrongPassword, biAdminPassword, code, v}
		for _, tk := range []interface {
			GetAccessToken() string
			GetRefreshToken() string
			GetIdToken() string
		}{first, tok, next} {
			secrets = append(secrets, tk.GetAccessToken(), tk.GetRefreshToken(), tk.GetIdToken())
		}
		places := map[string]string{"audit records": records, "audit table": table, "audit hash": ref, "audit stream": string(stream)}
		for where, text := range places {
			for _, secret := range secrets {
				if len(secret) >= 8 && strings.Contains(text, secret) {
					t.Errorf("%s holds a secret (%.6s…)", where, secret)
				}
			}
		}
		if n := strings.Count(records, "\n"); n < minAuditRecords {
			t.Errorf("the session left %d audit records, want at least %d:\n%s", n, minAuditRecords, table)
		}
		t.Logf("checked %d secrets against %d audit records (%d bytes streamed)", len(secrets), strings.Count(records, "\n"), len(stream))
	})
}
