package issuer_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// passkeyCallback stands in for the client's redirect URI: it records the
// redirects that reach it and shows a page the browser can wait for.
type passkeyCallback struct {
	url string
	mu  sync.Mutex
	got []url.URL
}

func newPasskeyCallback(t *testing.T) *passkeyCallback {
	t.Helper()
	cb := &passkeyCallback{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/auth/callback" {
			http.NotFound(w, r) // the browser's favicon
			return
		}
		cb.mu.Lock()
		cb.got = append(cb.got, *r.URL)
		cb.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>client</title><p id="callback">back at the client</p>`)
	}))
	t.Cleanup(srv.Close)
	cb.url = srv.URL + "/api/auth/callback"
	return cb
}

// last returns the code of the last redirect.
func (cb *passkeyCallback) lastCode(t *testing.T) string {
	t.Helper()
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if len(cb.got) == 0 {
		t.Fatal("no redirect reached the client")
	}
	q := cb.got[len(cb.got)-1].Query()
	if q.Get("state") != "the-state" || q.Get("code") == "" {
		t.Fatalf("redirect to the client: %v", q)
	}
	return q.Get("code")
}

// passkeyEnv is a provider on http://localhost:PORT (browsers accept no IP
// address as a WebAuthn relying party id), the environment that points
// `nsauth users` at its store, and an audit trail.
type passkeyEnv struct {
	h     *harness
	env   map[string]string
	trail *auditTrail
	logs  *servetest.Buffer
	cb    *passkeyCallback
}

func newPasskeyEnv(t *testing.T, b storetest.Backend, mod func(*issuer.Config)) *passkeyEnv {
	t.Helper()
	e := &passkeyEnv{env: map[string]string{}, cb: newPasskeyCallback(t)}
	// The store is opened here, not by the backend, so that the command
	// line can be pointed at the same database.
	opened := storetest.Backend{Name: b.Name, Open: func(t testing.TB, opts store.Options) *store.Store {
		opts.Keyring = storetest.Keyring()
		if b.Name == "postgres" {
			u := storetest.PostgresURL(t)
			st, err := store.OpenPostgres(ctx, u, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			e.env["NSAUTH_DATABASE_URL"] = u
			return st
		}
		st := b.Open(t, opts)
		e.env["NSAUTH_DATA_DIR"] = storetest.SQLiteDir(t, st)
		return st
	}}
	e.logs = &servetest.Buffer{}
	e.h = newHarness(t, opened, func(c *issuer.Config) {
		c.Issuer = strings.Replace(c.Issuer, "127.0.0.1", "localhost", 1)
		c.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		e.trail = withAudit(t, c)
		if mod != nil {
			mod(c)
		}
	})
	return e
}

// authorizeURL starts a login that comes back to the callback server.
// Each is a new login (prompt=login), not one completed from the browser
// session the previous one started.
func (e *passkeyEnv) authorizeURL(verifier string) string {
	return e.h.authorizeURL(verifier, url.Values{"redirect_uri": {e.cb.url}, "prompt": {"login"}})
}

// redeem exchanges the last code for tokens and returns the ID token's
// claims.
func (e *passkeyEnv) redeem(t *testing.T, verifier string) (tokenResponse, map[string]any) {
	t.Helper()
	tr := e.h.token(url.Values{"grant_type": {"authorization_code"}, "code": {e.cb.lastCode(t)},
		"redirect_uri": {e.cb.url}, "code_verifier": {verifier}})
	if tr.status != http.StatusOK {
		t.Fatalf("token exchange: HTTP %d %s %s", tr.status, tr.Error, tr.ErrorDescription)
	}
	_, claims := jwtParts(t, tr.IDToken)
	return tr, claims
}

func (e *passkeyEnv) users(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	out, errOut := &servetest.Buffer{}, &servetest.Buffer{}
	app := &cli.App{In: strings.NewReader(""), Out: out, ErrOut: errOut, Now: time.Now,
		Getenv: func(k string) (string, bool) { v, ok := e.env[k]; return v, ok }}
	code := cli.Run(context.Background(), app, append([]string{"users"}, args...), servercmd.Commands...)
	return code, out.String(), errOut.String()
}

func claimAMR(claims map[string]any) []string {
	var out []string
	list, _ := claims["amr"].([]any)
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// virtualAuthenticator gives the browser's tab a DevTools virtual
// authenticator: CTAP2, built in (internal transport), holding resident
// keys and verifying its user. It returns the authenticator's id.
func virtualAuthenticator(t *testing.T, c *issuertest.Chromium) webauthn.AuthenticatorID {
	t.Helper()
	var id webauthn.AuthenticatorID
	c.Do(t, "adding a virtual authenticator", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		res, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol:                    webauthn.AuthenticatorProtocolCtap2,
				Ctap2version:                webauthn.Ctap2versionCtap21,
				Transport:                   webauthn.AuthenticatorTransportInternal,
				HasResidentKey:              true,
				HasUserVerification:         true,
				IsUserVerified:              true,
				AutomaticPresenceSimulation: true,
			}})
		id = res.AuthenticatorID
		return err
	}))
	return id
}

func authenticatorCredentials(t *testing.T, c *issuertest.Chromium, id webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	var creds []*webauthn.Credential
	c.Do(t, "reading the authenticator's credentials", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := cdp.Call(ctx, tg, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
		creds = res.Credentials
		return err
	}))
	return creds
}

// TestPasskeysInChromium is the user's whole story with a passkey, in
// headless Chromium with a DevTools virtual authenticator, on each
// backend: a password login is offered no passkey (tokens: pwd); an
// enrolment link and the password add one, with ten recovery codes;
// the next password login asks for it as the second factor (pwd, hwk,
// mfa); then the passkey alone signs in, the account chosen by the
// authenticator (hwk, user, mfa); an administrator removes it with
// `nsauth users passkeys --remove`, and it no longer signs anyone in.
func TestPasskeysInChromium(t *testing.T) {
	t.Parallel()
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			e := newPasskeyEnv(t, b, nil)
			c := issuertest.NewChromium(t, 150*time.Second)
			css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
			authID := virtualAuthenticator(t, c)

			// 1. The login page shows the passkey option; a password alone
			// is offered nothing; an enrolment link and the password add a
			// passkey.
			v1 := oauth2.GenerateVerifier()
			c.Do(t, "login page",
				chromedp.Navigate(e.authorizeURL(v1)),
				chromedp.WaitVisible(css("#passkey-button")), // the script shows the passkey option
			)
			screenshot(t, c, "passkey-login")
			c.Do(t, "password login",
				chromedp.SendKeys(css("#username"), "alice"),
				chromedp.SendKeys(css("#password"), alicePassword),
				chromedp.Click(css("form[action='/login'] button[type=submit]")),
				chromedp.WaitVisible(css("#callback")),
			)
			if _, claims := e.redeem(t, v1); !slices.Equal(claimAMR(claims), []string{"pwd"}) {
				t.Errorf("amr of a password login = %v, want [pwd]", claimAMR(claims))
			}
			c.Do(t, "enrolment link",
				chromedp.Navigate(e.h.enrolLink()),
				chromedp.WaitVisible(css("#password")),
				chromedp.SendKeys(css("#password"), alicePassword),
				chromedp.Click(css("button[type=submit]")),
				chromedp.WaitVisible(css("#passkey-name")),
			)
			screenshot(t, c, "passkey-enrol")
			c.Do(t, "adding a passkey",
				chromedp.SetValue(css("#passkey-name"), "Laptop"),
				chromedp.Click(css("#passkey-button")),
				chromedp.WaitVisible(css("#recovery-codes")),
			)
			// The first second factor comes with ten recovery codes, shown
			// once.
			shown := issuertest.Get(t, c, chromedp.Evaluate[[]string](
				`[...document.querySelectorAll("#recovery-codes code")].map(e => e.textContent)`))
			if len(shown) != 10 || len(slices.Compact(slices.Sorted(slices.Values(shown)))) != 10 {
				t.Fatalf("recovery codes page shows %q, want ten distinct codes", shown)
			}
			if f, err := e.h.st.SecondFactors(ctx, e.h.alice.ID); err != nil || f.RecoveryCodes != 10 {
				t.Fatalf("stored recovery codes: %+v, %v", f, err)
			}
			screenshot(t, c, "passkey-recovery-codes")
			c.Do(t, "continuing after the recovery codes",
				chromedp.Click(css("#recovery-continue")),
				chromedp.WaitVisible(css("#message")),
			)
			if msg := issuertest.Get(t, c, chromedp.Text(css("#message"))); !strings.Contains(msg, msgLinkEnrolled) {
				t.Fatalf("the end of the enrolment says %q", msg)
			}
			pks, err := e.h.st.PasskeysByUser(ctx, e.h.alice.ID)
			if err != nil || len(pks) != 1 || pks[0].Name != "Laptop" || !pks[0].UserVerified || pks[0].BackupEligible {
				t.Fatalf("stored passkeys = %+v, %v", pks, err)
			}
			creds := authenticatorCredentials(t, c, authID)
			if len(creds) != 1 || !creds[0].IsResidentCredential || !bytes.Equal(creds[0].CredentialID, pks[0].CredentialID) ||
				string(creds[0].UserHandle) != e.h.alice.ID {
				t.Fatalf("authenticator holds %+v; want one resident credential for alice", creds)
			}

			// 2. Password, then the passkey as the second factor.
			v2 := oauth2.GenerateVerifier()
			c.Do(t, "password login again",
				chromedp.Navigate(e.authorizeURL(v2)),
				chromedp.WaitVisible(css("#password")),
				chromedp.SendKeys(css("#username"), "alice"),
				chromedp.SendKeys(css("#password"), alicePassword),
				chromedp.Click(css("form[action='/login'] button[type=submit]")),
				// The login page has a #passkey-button too: wait for the
				// second-factor page's.
				chromedp.WaitVisible(css("form[action='/login/mfa/passkey'] #passkey-button")),
			)
			screenshot(t, c, "passkey-second-factor")
			c.Do(t, "the passkey as second factor",
				chromedp.Click(css("form[action='/login/mfa/passkey'] #passkey-button")),
				chromedp.WaitVisible(css("#callback")),
			)
			_, claims := e.redeem(t, v2)
			if got := claimAMR(claims); !slices.Equal(got, []string{"pwd", "hwk", "mfa"}) {
				t.Errorf("amr with the passkey as second factor = %v, want [pwd hwk mfa]", got)
			}

			// 3. The passkey alone: the authenticator picks the account.
			v3 := oauth2.GenerateVerifier()
			c.Do(t, "passwordless",
				chromedp.Navigate(e.authorizeURL(v3)),
				chromedp.WaitVisible(css("#passkey-button")),
				chromedp.Click(css("#passkey-button")),
				chromedp.WaitVisible(css("#callback")),
			)
			tr, claims := e.redeem(t, v3)
			if got := claimAMR(claims); !slices.Equal(got, []string{"hwk", "user", "mfa"}) || claims["sub"] != e.h.alice.ID {
				t.Errorf("passwordless: sub %v amr %v, want alice and [hwk user mfa]", claims["sub"], got)
			}
			used, err := e.h.st.PasskeyByCredentialID(ctx, pks[0].CredentialID)
			if err != nil || used.LastUsedAt.IsZero() || used.SignCount < 2 {
				t.Fatalf("after two uses: %+v, %v", used, err)
			}

			// 4. Listed, removed with the command line; then refused.
			code, out, errOut := e.users(t, "passkeys", "alice")
			if code != 0 || !strings.Contains(out, "Laptop") || !strings.Contains(out, used.ID) || !strings.Contains(out, "device-bound") {
				t.Fatalf("nsauth users passkeys alice: exit %d\n%s%s", code, out, errOut)
			}
			t.Logf("$ nsauth users passkeys alice\n%s", out)
			if code, _, errOut := e.users(t, "passkeys", "alice", "--remove", "Laptop"); code != 0 || !strings.Contains(errOut, "Removed") {
				t.Fatalf("--remove: exit %d\n%s", code, errOut)
			}
			if code, _, errOut := e.users(t, "passkeys", "alice", "--remove", "Laptop"); code == 0 || !strings.Contains(errOut, "no passkey") {
				t.Fatalf("--remove of a removed passkey: exit %d\n%s", code, errOut)
			}
			v4 := oauth2.GenerateVerifier()
			c.Do(t, "passwordless with the removed passkey",
				chromedp.Navigate(e.authorizeURL(v4)),
				chromedp.WaitVisible(css("#passkey-button")),
				chromedp.Click(css("#passkey-button")),
				chromedp.WaitVisible(css("#login-error")),
			)
			if msg := issuertest.Get(t, c, chromedp.Text(css("#login-error"))); !strings.Contains(msg, "not accepted") {
				t.Fatalf("refusal says %q", msg)
			}
			// Without passkeys, the password alone is enough again (and is
			// offered nothing).
			c.Do(t, "password login without passkeys",
				chromedp.SendKeys(css("#username"), "alice"),
				chromedp.SendKeys(css("#password"), alicePassword),
				chromedp.Click(css("form[action='/login'] button[type=submit]")),
				chromedp.WaitVisible(css("#callback")),
			)
			if _, claims := e.redeem(t, v4); !slices.Equal(claimAMR(claims), []string{"pwd"}) {
				t.Errorf("amr of a password login = %v", claimAMR(claims))
			}

			// The audit trail tells the story, with no credential in it.
			events, all := e.trail.records(t)
			want := map[audit.Type][]string{
				audit.PasskeyRegistered: {""},
				audit.PasskeyUsed:       {"second_factor", "passwordless"},
				audit.PasskeyRemoved:    {""},
				audit.PasskeyFailed:     {"unknown_credential"},
			}
			got := map[audit.Type][]string{}
			for _, ev := range events {
				if strings.HasPrefix(string(ev.Type), "passkey.") {
					got[ev.Type] = append(got[ev.Type], ev.Reason)
					if ev.Type != audit.PasskeyFailed && ev.Target != "Laptop" {
						t.Errorf("%s names passkey %q", ev.Type, ev.Target)
					}
				}
			}
			for ty, reasons := range want {
				if !slices.Equal(got[ty], reasons) {
					t.Errorf("%s events with reasons %q, want %q", ty, got[ty], reasons)
				}
			}
			for _, secret := range []string{base64.RawURLEncoding.EncodeToString(used.CredentialID),
				base64.RawURLEncoding.EncodeToString(used.PublicKey), base64.StdEncoding.EncodeToString(used.PublicKey)} {
				if strings.Contains(all, secret) || strings.Contains(e.logs.String(), secret) {
					t.Errorf("a credential reached the audit trail or the logs")
				}
			}
			checkNoSecrets(t, e.logs.String(), tr.AccessToken, tr.RefreshToken, tr.IDToken)
		})
	}
}

// TestChromiumRefusesAnIPAddressAsRelyingParty is why passkeys need an
// issuer with a host name: on a page of http://127.0.0.1:PORT (a secure
// context), Chromium refuses to create a credential for the relying party
// id 127.0.0.1, while on http://localhost:PORT it creates one for
// localhost.
func TestChromiumRefusesAnIPAddressAsRelyingParty(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	c := issuertest.NewChromium(t, 60*time.Second)
	virtualAuthenticator(t, c)
	create := func(rpID string) string {
		return `navigator.credentials.create({publicKey: {
			rp: {id: "` + rpID + `", name: "probe"},
			user: {id: new Uint8Array(16), name: "probe", displayName: "probe"},
			challenge: new Uint8Array(32),
			pubKeyCredParams: [{type: "public-key", alg: -7}],
			authenticatorSelection: {residentKey: "required", userVerification: "required"}
		}}).then(() => "created", e => e.name + ": " + e.message)`
	}
	u, _ := url.Parse(h.url)
	cases := []struct {
		name, origin, rpID, want string
	}{
		{"IP address", "http://" + u.Host, "127.0.0.1", "SecurityError"},
		{"localhost", "http://localhost:" + u.Port(), "localhost", "created"},
	}
	for _, tc := range cases {
		c.Do(t, "opening "+tc.origin, chromedp.Navigate(tc.origin+"/logged-out"))
		got := issuertest.Get(t, c, chromedp.Evaluate[string](create(tc.rpID), chromedp.EvalAwaitPromise))
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: creating a credential for %q on %s: %q, want %s", tc.name, tc.rpID, tc.origin, got, tc.want)
		}
		t.Logf("%s: %s", tc.name, got)
	}
}
