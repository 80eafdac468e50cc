package issuer_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// The account page's second factors, over HTTP with a browser without
// JavaScript (the passkey script's requests sent as it sends them, a
// software authenticator answering), on each backend.

// accountSession is a browser signed in to the account page.
type accountSession struct {
	t    *testing.T
	h    *harness
	b    *issuertest.Browser
	page *issuertest.Page
	key  *softKey
}

// accountLoginWithCode opens /account in a fresh browser and signs in as
// alice: the password, then a code of her authenticator app when the
// login asks for one (the clock moves a step on, so that each code is
// new), declining the offer of a passkey on the way.
func (h *harness) accountLoginWithCode(t *testing.T) *accountSession {
	t.Helper()
	b := issuertest.NewBrowser(t)
	p := h.accountGet(b, "/account")
	login := h.follow(b, p)
	if login.Form.Get("authRequestID") == "" {
		t.Fatalf("no login page: HTTP %d\n%s", login.Response.StatusCode, login.Body)
	}
	res := b.Submit(t, login, "alice", alicePassword)
	if res.Response.StatusCode == http.StatusOK && strings.Contains(res.Body, `action="/login/mfa"`) {
		h.clock.Advance(30 * time.Second)
		res = b.Post(t, res, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
	}
	if res.Response.StatusCode == http.StatusOK && strings.Contains(res.Body, `action="/login/passkey/skip"`) {
		res = b.Post(t, res, "/login/passkey/skip", nil)
	}
	loc, err := issuertest.RedirectOf(res)
	if err != nil || loc.Path != "/account/callback" {
		t.Fatalf("the account page's login did not end at its callback: %v %v", loc, err)
	}
	page := h.follow(b, h.follow(b, res))
	if page.Response.StatusCode != http.StatusOK || !strings.Contains(page.Body, `id="passkeys"`) {
		t.Fatalf("the account page after login: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	return &accountSession{t: t, h: h, b: b, page: page, key: newSoftKey(t, h.url)}
}

// reload fetches the account page again.
func (s *accountSession) reload() *issuertest.Page {
	s.t.Helper()
	s.page = s.h.accountGet(s.b, "/account")
	if s.page.Response.StatusCode != http.StatusOK {
		s.t.Fatalf("GET /account: HTTP %d\n%s", s.page.Response.StatusCode, s.page.Body)
	}
	return s.page
}

// post posts the account page's hidden fields and fields to path.
func (s *accountSession) post(path string, fields url.Values) *issuertest.Page {
	s.t.Helper()
	return s.b.Post(s.t, s.page, path, fields)
}

// begin posts the passkey script's begin request for mode, with the
// page's CSRF token, and returns the status and body.
func (s *accountSession) begin(mode string, header http.Header) (int, []byte) {
	s.t.Helper()
	body, _ := json.Marshal(map[string]string{"authRequestID": "", "mode": mode})
	req, err := http.NewRequest(http.MethodPost, s.h.url+"/account/passkeys/begin", bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", s.page.Form.Get("csrf"))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.b.Client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (s *accountSession) options(mode string) passkeyOptions {
	s.t.Helper()
	status, body := s.begin(mode, nil)
	if status != http.StatusOK {
		s.t.Fatalf("begin %s: HTTP %d %s", mode, status, body)
	}
	var o passkeyOptions
	if err := json.Unmarshal(body, &o); err != nil || o.PublicKey.Challenge == "" {
		s.t.Fatalf("begin %s answered %s (%v)", mode, body, err)
	}
	return o
}

// addPasskey adds s.key as a passkey named name, through the page.
func (s *accountSession) addPasskey(name string) *issuertest.Page {
	s.t.Helper()
	o := s.options("register")
	res := s.post("/account/passkeys/finish", url.Values{"mode": {"register"}, "name": {name}, "credential": {s.key.create(s.t, o)}})
	if res.Response.StatusCode != http.StatusOK || !strings.Contains(res.Body, "is added") {
		s.t.Fatalf("adding a passkey: HTTP %d\n%s", res.Response.StatusCode, res.Body)
	}
	s.page = res
	return res
}

// totpSecretOn finds the secret of an authenticator app being set up.
var totpSecretOn = regexp.MustCompile(`id="totp-secret">[A-Z2-7]+</code>`)

// wrongCodeOf returns a code that is not secret's within the skew of now.
func wrongCodeOf(t *testing.T, secret string, now time.Time) string {
	t.Helper()
	right := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		right[totpAt(t, secret, now.Add(d))] = true
	}
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", i*111111%1000000); !right[c] {
			return c
		}
	}
}

// stale moves the clock past the re-authentication window.
func (h *harness) stale() { h.clock.Advance(6 * time.Minute) }

func alicePasskeys(t *testing.T, h *harness) []string {
	t.Helper()
	pks, err := h.st.PasskeysByUser(ctx, h.alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pks {
		names = append(names, p.Name)
	}
	return names
}

func wantEvent(t *testing.T, trail *auditTrail, typ audit.Type, reason, target string) {
	t.Helper()
	events, _ := trail.records(t)
	for _, e := range events {
		if e.Type == typ && e.Reason == reason && e.Target == target && e.Username == "alice" && e.ClientID == "nsauth-account" {
			return
		}
	}
	t.Errorf("no audit event %s reason %q target %q of alice by the account page", typ, reason, target)
}

// TestAccountFactors is a user's story with their factors on the account
// page, on each backend: signed in with password and code, alice adds a
// passkey (no recovery codes: she has some), gets new recovery codes
// (shown once; the old ones stop working), removes her authenticator app,
// sets up a new one (ten recovery codes), confirms it is her with the
// passkey once the sign-in is old, and removes the passkey. Each change
// is in the audit trail, by the account page, with nothing secret.
func TestAccountFactors(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h, trail := newPasskeyHarness(t, b, nil)
		h.enrollAlice(recoveryCodes...)
		s := h.accountLoginWithCode(t)
		if !strings.Contains(s.page.Body, `id="passkey-form"`) || !strings.Contains(s.page.Body, `/assets/passkey.js`) {
			t.Fatalf("a recent sign-in with a code is not offered to add a passkey:\n%s", s.page.Body)
		}
		if csp := s.page.Response.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") ||
			strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP of the page with the passkey script: %s", csp)
		}

		res := s.addPasskey("Laptop")
		if got := alicePasskeys(t, h); !slices.Equal(got, []string{"Laptop"}) {
			t.Fatalf("passkeys after adding one: %v", got)
		}
		if codes := codesOnPage.FindAllStringSubmatch(res.Body, -1); len(codes) != 0 {
			t.Errorf("a user with recovery codes was shown %d new ones with a passkey", len(codes))
		}
		wantEvent(t, trail, audit.PasskeyRegistered, "", "Laptop")

		res = s.post("/account/recovery-codes", nil)
		shown := recoveryCodesOn(t, res)
		if res.Response.StatusCode != http.StatusOK || len(shown) != 10 {
			t.Fatalf("new recovery codes: HTTP %d, %d codes\n%s", res.Response.StatusCode, len(shown), res.Body)
		}
		if err := h.st.UseRecoveryCode(ctx, h.alice.ID, recoveryCodes[0]); err == nil {
			t.Error("an old recovery code works after new ones were made")
		}
		if err := h.st.UseRecoveryCode(ctx, h.alice.ID, shown[9]); err != nil {
			t.Errorf("a new recovery code does not work: %v", err)
		}
		if again := s.reload(); len(codesOnPage.FindAllStringSubmatch(again.Body, -1)) != 0 {
			t.Error("recovery codes are shown again")
		}
		wantEvent(t, trail, audit.SecondFactorEnrolled, "recovery_codes", "")

		res = s.post("/account/totp/remove", nil)
		if f, _ := h.st.SecondFactors(ctx, h.alice.ID); res.Response.StatusCode != http.StatusOK || f.TOTP {
			t.Fatalf("removing the app: HTTP %d, still has it: %v\n%s", res.Response.StatusCode, f.TOTP, res.Body)
		}
		wantEvent(t, trail, audit.SecondFactorReset, "totp_removed", "")

		// A new app: a secret offered, a wrong code refused with the
		// secret still on screen, the right one turns it on.
		s.reload()
		res = s.post("/account/totp/begin", nil)
		secret := strings.TrimSuffix(strings.TrimPrefix(totpSecretOn.FindString(res.Body), `id="totp-secret">`), "</code>")
		if res.Response.StatusCode != http.StatusOK || secret == "" || res.Form.Get("token") == "" {
			t.Fatalf("setting up an app: HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
		s.page = res
		h.clock.Advance(30 * time.Second)
		wrong := s.post("/account/totp/finish", url.Values{"code": {wrongCodeOf(t, secret, h.clock.Now())}})
		if wrong.Response.StatusCode != http.StatusUnauthorized || !strings.Contains(wrong.Body, secret) {
			t.Fatalf("a wrong first code: HTTP %d\n%s", wrong.Response.StatusCode, wrong.Body)
		}
		res = s.post("/account/totp/finish", url.Values{"code": {totpAt(t, secret, h.clock.Now())}})
		if codes := recoveryCodesOn(t, res); res.Response.StatusCode != http.StatusOK || len(codes) != 10 {
			t.Fatalf("turning the app on: HTTP %d, %d recovery codes\n%s", res.Response.StatusCode, len(codes), res.Body)
		}
		if f, _ := h.st.SecondFactors(ctx, h.alice.ID); !f.TOTP || f.RecoveryCodes != 10 {
			t.Fatalf("after setting up an app alice has %+v", f)
		}
		wantEvent(t, trail, audit.SecondFactorEnrolled, "totp", "")
		again := s.post("/account/totp/finish", url.Values{"code": {totpAt(t, secret, h.clock.Now())}})
		if again.Response.StatusCode != http.StatusBadRequest {
			t.Errorf("the same set-up finished twice: HTTP %d", again.Response.StatusCode)
		}

		// An old sign-in: confirmed with the passkey, verified by the
		// authenticator.
		h.stale()
		s.reload()
		if !strings.Contains(s.page.Body, `action="/account/reauth/passkey"`) {
			t.Fatalf("an old sign-in is not offered to confirm with a passkey:\n%s", s.page.Body)
		}
		o := s.options("reauth")
		if o.PublicKey.UserVerification != "required" {
			t.Errorf("re-authentication with a passkey asks userVerification %q, want required", o.PublicKey.UserVerification)
		}
		res = s.post("/account/reauth/passkey", url.Values{"credential": {s.key.get(t, o.PublicKey.Challenge)}})
		if res.Response.StatusCode != http.StatusOK || !strings.Contains(res.Body, `action="/account/passkeys/remove"`) {
			t.Fatalf("confirming with a passkey: HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
		wantEvent(t, trail, audit.PasskeyUsed, "reauth", "Laptop")
		s.page = res

		pks, _ := h.st.PasskeysByUser(ctx, h.alice.ID)
		res = s.post("/account/passkeys/remove", url.Values{"passkey": {pks[0].ID}})
		if res.Response.StatusCode != http.StatusOK || len(alicePasskeys(t, h)) != 0 {
			t.Fatalf("removing the passkey: HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
		wantEvent(t, trail, audit.PasskeyRemoved, "", "Laptop")

		_, raw := trail.records(t)
		for _, secretish := range append(append([]string{secret}, shown...), recoveryCodes...) {
			if strings.Contains(raw, secretish) {
				t.Errorf("the audit trail holds a secret or code")
			}
		}
	})
}

// TestAccountFactorsAttacks are the attacks on the account page's factors,
// each a named case on each backend; each fails with its check reverted.
func TestAccountFactorsAttacks(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		t.Run("password_alone_tries_every_way_to_add_a_factor", func(t *testing.T) {
			t.Parallel()
			h, trail := newPasskeyHarness(t, b, func(c *issuer.Config) { c.LoginAttempts = 1000 })
			// Without a factor, a fresh password sign-in is recent: the
			// page offers no way to add one and says whom to ask.
			s := h.accountLoginWithCode(t)
			if !strings.Contains(s.page.Body, "nsauth users enrol-link alice") || strings.Contains(s.page.Body, `id="passkey-form"`) ||
				strings.Contains(s.page.Body, `action="/account/totp/begin"`) || strings.Contains(s.page.Body, `action="/account/recovery-codes"`) {
				t.Fatalf("a password-only user's page:\n%s", s.page.Body)
			}
			tryAddingFactors(t, s, "password alone, recent")
			// With a factor, an old sign-in confirmed with the password
			// alone is refused, and adds nothing either.
			h.enrollAlice(recoveryCodes...)
			s = h.accountLoginWithCode(t)
			h.stale()
			s.reload()
			res := s.post("/account/reauth", url.Values{"password": {alicePassword}})
			if res.Response.StatusCode == http.StatusOK {
				t.Fatalf("a password alone confirmed a user who has a factor:\n%s", res.Body)
			}
			tryAddingFactors(t, s, "password-only re-authentication")
			if f, _ := h.st.SecondFactors(ctx, h.alice.ID); f.Passkeys != 0 || f.RecoveryCodes != len(recoveryCodes) {
				t.Fatalf("after the attack alice has %+v", f)
			}
			events, _ := trail.records(t)
			for _, e := range events {
				if e.Type == audit.PasskeyRegistered || e.Type == audit.SecondFactorEnrolled {
					t.Fatalf("audit event %s: a factor was added", e.Type)
				}
			}
		})
		t.Run("an_older_proof_of_a_factor_does_not_count_after_a_password_only_confirmation", func(t *testing.T) {
			t.Parallel()
			h, _ := newPasskeyHarness(t, b, func(c *issuer.Config) { c.LoginAttempts = 1000 })
			h.enrollAlice(recoveryCodes...)
			s := h.accountLoginWithCode(t) // the session proved a factor
			// An administrator removes alice's factors (nsauth users
			// mfa-reset); later someone holding her password and this
			// browser confirms with the password alone, which is all she
			// has now; then the administrator enrols a new factor for her.
			if _, err := h.st.ResetSecondFactors(ctx, h.alice.ID); err != nil {
				t.Fatal(err)
			}
			h.stale()
			s.reload()
			if res := s.post("/account/reauth", url.Values{"password": {alicePassword}}); res.Response.StatusCode != http.StatusOK {
				t.Fatalf("a password-only user confirming with the password: HTTP %d\n%s", res.Response.StatusCode, res.Body)
			}
			h.enrollAlice(recoveryCodes...)
			s.reload()
			// The recent proof was the password alone: the session's
			// older proof of a factor must not make it count.
			tryAddingFactors(t, s, "password-only confirmation after a factor reset")
		})
		t.Run("no_reauth", func(t *testing.T) {
			t.Parallel()
			h, _ := newPasskeyHarness(t, b, nil)
			h.enrollAlice(recoveryCodes...)
			s := h.accountLoginWithCode(t)
			s.addPasskey("Laptop")
			pks, _ := h.st.PasskeysByUser(ctx, h.alice.ID)
			h.stale()
			for path, fields := range map[string]url.Values{
				"/account/passkeys/remove": {"passkey": {pks[0].ID}},
				"/account/totp/remove":     nil,
				"/account/totp/begin":      nil,
				"/account/recovery-codes":  nil,
			} {
				res := s.post(path, fields)
				if res.Response.StatusCode != http.StatusForbidden || !strings.Contains(res.Body, `action="/account/reauth"`) {
					t.Errorf("%s without a recent sign-in: HTTP %d\n%s", path, res.Response.StatusCode, res.Body)
				}
			}
			if status, _ := s.begin("register", nil); status != http.StatusForbidden {
				t.Errorf("passkey begin without a recent sign-in: HTTP %d", status)
			}
			if f, _ := h.st.SecondFactors(ctx, h.alice.ID); !f.TOTP || f.Passkeys != 1 || f.RecoveryCodes != len(recoveryCodes) {
				t.Fatalf("without a recent sign-in something changed: %+v", f)
			}
		})
		t.Run("passkey_begun_in_one_browser_finished_in_another", func(t *testing.T) {
			t.Parallel()
			h, _ := newPasskeyHarness(t, b, nil)
			h.enrollAlice(recoveryCodes...)
			first, second := h.accountLoginWithCode(t), h.accountLoginWithCode(t)
			o := first.options("register")
			cred := first.key.create(t, o)
			// The other browser (alice's own other session, with its own
			// cookies) posts the answer: no ceremony of its own.
			res := second.post("/account/passkeys/finish", url.Values{"name": {"Stolen"}, "credential": {cred}})
			if res.Response.StatusCode != http.StatusBadRequest || len(alicePasskeys(t, h)) != 0 {
				t.Fatalf("another browser finished the ceremony: HTTP %d\n%s", res.Response.StatusCode, res.Body)
			}
			// The same with the first browser's CSRF token: the guard
			// refuses it (not this browser's cookie).
			forged := second.post("/account/passkeys/finish", url.Values{"name": {"Stolen"}, "credential": {cred}, "csrf": {first.page.Form.Get("csrf")}})
			if forged.Response.StatusCode != http.StatusForbidden || len(alicePasskeys(t, h)) != 0 {
				t.Fatalf("another browser with the first's CSRF token: HTTP %d", forged.Response.StatusCode)
			}
			// The ceremony stayed for the browser that began it.
			res = first.post("/account/passkeys/finish", url.Values{"name": {"Laptop"}, "credential": {cred}})
			if res.Response.StatusCode != http.StatusOK || !slices.Equal(alicePasskeys(t, h), []string{"Laptop"}) {
				t.Fatalf("the browser that began it: HTTP %d\n%s", res.Response.StatusCode, res.Body)
			}
			// Likewise an authenticator app's set-up.
			h.st.RemoveTOTP(ctx, h.alice.ID)
			first.reload()
			begun := first.post("/account/totp/begin", nil)
			secret := strings.TrimSuffix(strings.TrimPrefix(totpSecretOn.FindString(begun.Body), `id="totp-secret">`), "</code>")
			h.clock.Advance(30 * time.Second)
			code := totpAt(t, secret, h.clock.Now())
			second.reload()
			res = second.post("/account/totp/finish", url.Values{"token": {begun.Form.Get("token")}, "code": {code}})
			if f, _ := h.st.SecondFactors(ctx, h.alice.ID); res.Response.StatusCode != http.StatusBadRequest || f.TOTP {
				t.Fatalf("another browser finished the app's set-up: HTTP %d\n%s", res.Response.StatusCode, res.Body)
			}
			// A browser given the first's session and device cookies (all
			// but its CSRF cookie): the same session, another browser.
			thief := issuertest.NewBrowser(t)
			u, _ := url.Parse(h.url)
			for _, c := range first.b.Client.Jar.Cookies(u) {
				if !strings.Contains(c.Name, "csrf") {
					thief.Client.Jar.SetCookies(u, []*http.Cookie{c})
				}
			}
			stolen := &accountSession{t: t, h: h, b: thief, key: first.key}
			stolen.reload()
			res = stolen.post("/account/totp/finish", url.Values{"token": {begun.Form.Get("token")}, "code": {code}})
			if f, _ := h.st.SecondFactors(ctx, h.alice.ID); res.Response.StatusCode != http.StatusBadRequest || f.TOTP {
				t.Fatalf("the same session in another browser finished the app's set-up: HTTP %d\n%s", res.Response.StatusCode, res.Body)
			}
			first.reload()
			another := newSoftKey(t, h.url)
			cred = another.create(t, first.options("register"))
			res = stolen.post("/account/passkeys/finish", url.Values{"name": {"Stolen"}, "credential": {cred}})
			if res.Response.StatusCode != http.StatusBadRequest || len(alicePasskeys(t, h)) != 1 {
				t.Fatalf("the same session in another browser finished a passkey ceremony: HTTP %d\n%s", res.Response.StatusCode, res.Body)
			}
			first.page = begun
			if res := first.post("/account/totp/finish", url.Values{"code": {code}}); res.Response.StatusCode != http.StatusOK {
				t.Fatalf("the browser that began the set-up: HTTP %d\n%s", res.Response.StatusCode, res.Body)
			}
		})
		t.Run("passkey_reauth_with_another_key_or_no_ceremony", func(t *testing.T) {
			t.Parallel()
			h, trail := newPasskeyHarness(t, b, nil)
			h.enrollAlice(recoveryCodes...)
			s := h.accountLoginWithCode(t)
			s.addPasskey("Laptop")
			h.stale()
			s.reload()
			// Another authenticator's answer to a real ceremony, then an
			// answer with no ceremony begun: both refused, audited, and
			// the session stays unconfirmed.
			o := s.options("reauth")
			stranger := newSoftKey(t, h.url)
			stranger.userHandle = []byte(h.alice.ID)
			// In this order: the other key's answer takes the ceremony,
			// so the right key's answer after it finds none.
			for _, tc := range []struct{ name, cred string }{{"another key", stranger.get(t, o.PublicKey.Challenge)},
				{"no ceremony left", s.key.get(t, o.PublicKey.Challenge)}} {
				res := s.post("/account/reauth/passkey", url.Values{"credential": {tc.cred}})
				if res.Response.StatusCode != http.StatusUnauthorized || strings.Contains(res.Body, `action="/account/passkeys/remove"`) {
					t.Errorf("%s: HTTP %d\n%s", tc.name, res.Response.StatusCode, res.Body)
				}
			}
			if got := lastPasskeyFailure(t, trail); got == "" {
				t.Error("no passkey.failed event for the refused confirmations")
			}
			if res := s.post("/account/recovery-codes", nil); res.Response.StatusCode != http.StatusForbidden {
				t.Errorf("after refused confirmations a factor could be added: HTTP %d", res.Response.StatusCode)
			}
		})
		t.Run("cross_origin_post", func(t *testing.T) {
			t.Parallel()
			h, _ := newPasskeyHarness(t, b, nil)
			h.enrollAlice(recoveryCodes...)
			s := h.accountLoginWithCode(t)
			for _, path := range []string{"/account/recovery-codes", "/account/totp/remove", "/account/totp/begin"} {
				req := s.b.PostRequest(t, s.page, path, nil)
				req.Header.Set("Origin", "http://evil.example")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s from another origin: HTTP %d", path, resp.StatusCode)
				}
			}
			if status, _ := s.begin("register", http.Header{"Origin": {"http://evil.example"}}); status != http.StatusForbidden {
				t.Errorf("passkey begin from another origin: HTTP %d", status)
			}
			if f, _ := h.st.SecondFactors(ctx, h.alice.ID); !f.TOTP || f.RecoveryCodes != len(recoveryCodes) {
				t.Fatalf("a cross-origin post changed something: %+v", f)
			}
		})
		t.Run("no_session", func(t *testing.T) {
			t.Parallel()
			h, _ := newPasskeyHarness(t, b, nil)
			h.enrollAlice(recoveryCodes...)
			s := h.accountLoginWithCode(t)
			// A browser with none of alice's cookies, with a CSRF cookie
			// of its own (its login page's), posts to her page's forms.
			other := issuertest.NewBrowser(t)
			login := h.follow(other, h.accountGet(other, "/account"))
			for _, path := range []string{"/account/recovery-codes", "/account/totp/remove", "/account/totp/begin"} {
				res := other.Post(t, login, path, nil)
				if res.Response.StatusCode != http.StatusBadRequest || strings.Contains(res.Body, `id="recovery-codes"`) {
					t.Errorf("%s without a session: HTTP %d\n%s", path, res.Response.StatusCode, res.Body)
				}
			}
			stranger := &accountSession{t: t, h: h, b: other, page: login}
			if status, body := stranger.begin("register", nil); status != http.StatusBadRequest {
				t.Errorf("passkey begin without a session: HTTP %d %s", status, body)
			}
			_ = s
			if f, _ := h.st.SecondFactors(ctx, h.alice.ID); f.RecoveryCodes != len(recoveryCodes) {
				t.Fatalf("a post without a session changed the recovery codes: %+v", f)
			}
		})
	})
}

// tryAddingFactors tries every way of adding a factor from s, each as
// far as it goes (a begin that answers is finished with its answer), and
// fails the test when one is not refused.
func tryAddingFactors(t *testing.T, s *accountSession, what string) {
	t.Helper()
	// A registration answered without a ceremony, unless begin gave one.
	var o passkeyOptions
	o.PublicKey.Challenge = b64.EncodeToString([]byte("a challenge nobody issued here"))
	o.PublicKey.User.ID = b64.EncodeToString([]byte(s.h.alice.ID))
	if status, body := s.begin("register", nil); status != http.StatusForbidden {
		t.Errorf("%s: passkey begin: HTTP %d %s", what, status, body)
		_ = json.Unmarshal(body, &o)
	}
	token, secret := store.RandomToken(32), totpSecret
	begun := s.post("/account/totp/begin", nil)
	if begun.Response.StatusCode != http.StatusForbidden || strings.Contains(begun.Body, `id="totp-secret"`) {
		t.Errorf("%s: /account/totp/begin: HTTP %d", what, begun.Response.StatusCode)
		token = begun.Form.Get("token")
		secret = strings.TrimSuffix(strings.TrimPrefix(totpSecretOn.FindString(begun.Body), `id="totp-secret">`), "</code>")
	}
	s.h.clock.Advance(30 * time.Second)
	for path, fields := range map[string]url.Values{
		"/account/passkeys/finish": {"name": {"Evil"}, "credential": {s.key.create(t, o)}},
		"/account/totp/finish":     {"token": {token}, "code": {totpAt(t, secret, s.h.clock.Now())}},
		"/account/recovery-codes":  nil,
	} {
		res := s.post(path, fields)
		if res.Response.StatusCode != http.StatusForbidden || strings.Contains(res.Body, `id="recovery-codes"`) {
			t.Errorf("%s: %s: HTTP %d", what, path, res.Response.StatusCode)
		}
	}
	if f, err := s.h.st.SecondFactors(ctx, s.h.alice.ID); err != nil || f.Passkeys != 0 {
		t.Fatalf("%s: alice has %+v, %v", what, f, err)
	}
}
