package issuer_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// The attacks of issue 22 on the steps after the password, sent as they
// were found: a second browser that is not the victim's, holding the auth
// request the attacker made (and, worse than found, the victim's step
// token too); a password known to the attacker; simultaneous uses of one
// enrolment link.

// stepPaths are every post of a step after the first factor, and the
// paths that took the offer's steps before they were bound to a browser.
var stepPaths = []string{
	"/login/mfa", "/login/mfa/passkey", "/login/mfa/enroll", "/login/mfa/passkey/enroll", "/login/mfa/continue",
	"/login/passkey/register", "/login/passkey/skip",
	"/login/passkey/finish", "/login/passkey/continue",
}

// attacker is a browser of the attacker's, with the login page of the auth
// request he made open in it (his own CSRF cookie).
type attacker struct {
	t    *testing.T
	h    *harness
	b    *issuertest.Browser
	page *issuertest.Page
	key  *softKey
	// host, when set, is the replica his requests go to.
	host string
}

func newAttacker(t *testing.T, h *harness, authorizeURL, host string) *attacker {
	t.Helper()
	a := &attacker{t: t, h: h, b: issuertest.NewBrowser(t), key: newSoftKey(t, h.url), host: host}
	if host != "" {
		a.b.Rewrite = func(u *url.URL) { u.Host = host }
	}
	a.page = a.b.Open(t, authorizeURL)
	if a.page.Response.StatusCode != http.StatusOK || a.page.Form.Get("csrf") == "" {
		t.Fatalf("the attacker's login page: HTTP %d\n%s", a.page.Response.StatusCode, a.page.Body)
	}
	return a
}

// tryEverything sends every step of the victim's page from the
// attacker's browser, with the victim's hidden fields (auth request and
// step token) and his own CSRF token, with a TOTP code that is right now
// and passkeys of his own; then every passkey begin. Each must be refused
// without a redirect or a server error.
func (a *attacker) tryEverything(what string, victim *issuertest.Page) {
	a.t.Helper()
	csrf := a.page.Form.Get("csrf")
	stolen := victim.Form
	var o passkeyOptions // his own key, for alice, as his own begin would have asked
	o.PublicKey.User.ID = b64.EncodeToString([]byte(a.h.alice.ID))
	credential := a.key.create(a.t, o)
	for _, path := range stepPaths {
		modes := []string{"register"}
		if path == "/login/passkey/finish" {
			modes = append(modes, "passwordless") // the one path where the mode chooses the handler
		}
		for _, mode := range modes {
			fields := url.Values{"csrf": {csrf}, "mode": {mode}, "method": {"totp"}, "code": {totpAt(a.t, totpSecret, a.h.clock.Now())},
				"name": {"Attacker's key"}, "credential": {credential}}
			res := a.b.Post(a.t, victim, path, fields)
			if s := res.Response.StatusCode; s < 400 || s >= 500 {
				a.t.Fatalf("%s: the attacker's %s (mode %s) from another browser: HTTP %d\n%s", what, path, mode, s, res.Body)
			}
		}
	}
	for _, mode := range []string{"register", "second_factor", "enroll"} {
		for _, token := range []string{stolen.Get("token"), ""} {
			body, _ := json.Marshal(map[string]string{"authRequestID": stolen.Get("authRequestID"), "mode": mode, "token": token})
			f := &passkeyFlow{t: a.t, h: a.h, b: a.b, page: a.page}
			if status, answer := f.begin(mode, body, nil); status < 400 || status >= 500 {
				a.t.Fatalf("%s: the attacker's %s begin from another browser (token %v): HTTP %d %s", what, mode, token != "", status, answer)
			}
		}
	}
}

// TestAttackStepsFromAnotherBrowser (issue 22, finding 1): the attacker
// makes an auth request with his own PKCE and gets the victim to log in
// through it. At every step after the victim's password (the second
// factor, the offer of a passkey, the recovery codes after it) he sends
// every step's form and every passkey begin from his own browser, with
// the auth request id and even the victim's step token. All are refused,
// none changes anything: the victim goes on to the end, no passkey of his
// is on the account, he never gets a code. On each backend, his requests
// going to a second replica on the same database.
func TestAttackStepsFromAnotherBrowser(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		mod := func(c *issuer.Config) { c.LoginAttempts = 1000 }
		h, trail := newPasskeyHarness(t, b, mod)
		h.enrollAlice() // an app, no recovery codes yet
		link := h.authorizeURL(oauth2.GenerateVerifier(), nil)
		// The replica records its events where the harness reads them.
		evil := newAttacker(t, h, link, h.replica(func(c *issuer.Config) { mod(c); withAudit(t, c) }))

		victim := &passkeyFlow{t: t, h: h, trail: trail, key: newSoftKey(t, h.url), b: issuertest.NewBrowser(t)}
		victim.page = victim.b.Open(t, link)
		page := victim.password()
		if page.Form.Get("token") == "" {
			t.Fatalf("no second-factor page: HTTP %d\n%s", page.Response.StatusCode, page.Body)
		}
		evil.tryEverything("at the second factor", page)

		victim.page = victim.b.Post(t, page, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
		if !strings.Contains(victim.page.Body, `id="passkey-skip"`) {
			t.Fatalf("no offer after password and code: HTTP %d\n%s", victim.page.Response.StatusCode, victim.page.Body)
		}
		evil.tryEverything("at the offer", victim.page)

		res := victim.finish("/login/passkey/register", "register", victim.key.create(t, victim.options("register")), url.Values{"name": {"Laptop"}})
		if codes := recoveryCodesOn(t, res); len(codes) != 10 {
			t.Fatalf("the victim's passkey: %d recovery codes, HTTP %d\n%s", len(codes), res.Response.StatusCode, res.Body)
		}
		evil.tryEverything("at the recovery codes", res)

		loc, err := issuertest.RedirectOf(victim.b.Post(t, res, "/login/mfa/continue", nil))
		if err != nil {
			t.Fatalf("the victim's login after the attack: %v", err)
		}
		if loc.Query().Get("code") == "" {
			t.Fatal("the victim got no code")
		}
		pks, err := h.st.PasskeysByUser(ctx, h.alice.ID)
		if err != nil || len(pks) != 1 || pks[0].Name != "Laptop" {
			t.Fatalf("alice's passkeys after the attack: %+v, %v; want the victim's Laptop alone", pks, err)
		}
		events, _ := trail.records(t)
		for _, e := range events {
			if e.Type == audit.PasskeyRegistered && e.Target != "Laptop" || e.Type == audit.CodeIssued && e.Subject != h.alice.ID {
				t.Fatalf("audit event %s %s: the attack changed something", e.Type, e.Target)
			}
		}
	})
}

// TestAttackPasswordAloneAddsNoFactor (issue 22, findings 2 and 3): an
// attacker who knows the password of a user without a second factor logs
// in. Under NSAUTH_MFA=optional he is let in with amr pwd and offered
// nothing; under required he is refused. Either way every way of adding a
// factor (passkey begin and finish in every mode, the enrolment forms) is
// refused, the account has no factor afterwards, and the owner's next
// password login is as before.
func TestAttackPasswordAloneAddsNoFactor(t *testing.T) {
	t.Parallel()
	for _, required := range []bool{false, true} {
		t.Run(fmt.Sprintf("required=%v", required), func(t *testing.T) {
			t.Parallel()
			storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
				h, trail := newPasskeyHarness(t, b, func(c *issuer.Config) { c.RequireSecondFactor = required; c.LoginAttempts = 1000 })
				v := oauth2.GenerateVerifier()
				evil := newAttacker(t, h, h.authorizeURL(v, nil), "")
				res := evil.b.Submit(t, evil.page, "alice", alicePassword)
				switch {
				case required && (res.Response.StatusCode != http.StatusForbidden || strings.Contains(res.Body, "totp-secret") ||
					strings.Contains(res.Body, "passkey")):
					t.Fatalf("the password alone under required: HTTP %d\n%s", res.Response.StatusCode, res.Body)
				case !required:
					loc, err := issuertest.RedirectOf(res)
					if err != nil {
						t.Fatalf("the password alone under optional is not simply let in: %v", err)
					}
					if got := amrOf(t, h.exchange(loc.Query().Get("code"), v).IDToken); strings.Join(got, " ") != "pwd" {
						t.Fatalf("amr %v", got)
					}
				}
				// Whatever the page says, he tries every way to add a
				// factor, on a fresh auth request too.
				evil.tryEverything("after the password", res)
				evil.page = evil.b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
				evil.tryEverything("on a fresh login page", evil.page)

				if f, err := h.st.SecondFactors(ctx, h.alice.ID); err != nil || f.Any() || f.RecoveryCodes != 0 {
					t.Fatalf("after the attack alice has %+v, %v", f, err)
				}
				events, _ := trail.records(t)
				for _, e := range events {
					if e.Type == audit.PasskeyRegistered || e.Type == audit.SecondFactorEnrolled {
						t.Fatalf("audit event %s: a factor was added", e.Type)
					}
				}
				// The owner's next login is as before: not asked for a
				// factor he does not have.
				owner := issuertest.NewBrowser(t)
				again := owner.Submit(t, owner.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil)), "alice", alicePassword)
				if required && again.Response.StatusCode != http.StatusForbidden || !required && again.Response.StatusCode != http.StatusSeeOther {
					t.Fatalf("the owner's next login: HTTP %d\n%s", again.Response.StatusCode, again.Body)
				}
			})
		})
	}
}

// TestAttackEnrolmentLink: an enrolment link is bound to its user, needs
// that user's password (counted like any login), is not spent by opening
// it, works once however many browsers send it at the same instant (on two
// replicas of one database), and its enrolment steps are bound to the
// browser that gave the password.
func TestAttackEnrolmentLink(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		mod := func(c *issuer.Config) { c.RequireSecondFactor = true; c.LoginAttempts = 1000 }
		h, trail := newPasskeyHarness(t, b, mod)
		hash, err := password.Hash("bob-password-456")
		if err != nil {
			t.Fatal(err)
		}
		bob := &store.User{Username: "bob", PasswordHash: hash}
		if err := h.st.CreateUser(ctx, bob); err != nil {
			t.Fatal(err)
		}
		link := h.enrolLink()
		t.Run("wrong password, another user's password", func(t *testing.T) {
			br := issuertest.NewBrowser(t)
			page := h.openLink(br, link)
			for _, pw := range []string{"not-the-password", "bob-password-456"} {
				if res := br.Post(t, page, issuer.EnrolLinkPath, url.Values{"password": {pw}}); res.Response.StatusCode != http.StatusUnauthorized {
					t.Fatalf("password %q: HTTP %d\n%s", pw, res.Response.StatusCode, res.Body)
				}
			}
			for _, bad := range []string{"", "short", strings.Repeat("A", 43), link[strings.Index(link, "=")+1:] + "A"} {
				if res := br.Post(t, page, issuer.EnrolLinkPath, url.Values{"link": {bad}, "password": {alicePassword}}); res.Response.StatusCode != http.StatusBadRequest {
					t.Fatalf("link %q: HTTP %d", bad, res.Response.StatusCode)
				}
			}
		})
		// Opening it (a mail scanner) spends nothing: the next steps work.
		h.openLink(issuertest.NewBrowser(t), link)

		other := h.replica(func(c *issuer.Config) { mod(c); withAudit(t, c) })
		targets := []string{h.host(), other}
		const n = 16
		reqs := make([][]byte, n)
		browsers := make([]*issuertest.Browser, n)
		for i := range reqs {
			browsers[i] = issuertest.NewBrowser(t)
			page := h.openLink(browsers[i], link)
			reqs[i] = formRequest(t, browsers[i], page, h.host(), issuer.EnrolLinkPath, url.Values{"password": {alicePassword}})
		}
		counts := tally(sendTogether(t, "127.0.0.1", targets, reqs, nil))
		checkOnly(t, "16 simultaneous uses of one link", counts, http.StatusOK, http.StatusBadRequest)
		if counts[http.StatusOK] != 1 {
			t.Fatalf("%d of %d simultaneous uses of one enrolment link got in, want 1 (all: %v)", counts[http.StatusOK], n, counts)
		}
		if res := issuertest.NewBrowser(t).Open(t, link); res.Response.StatusCode != http.StatusBadRequest {
			t.Fatalf("the used link opened again: HTTP %d", res.Response.StatusCode)
		}
		used := 0
		events, _ := trail.records(t)
		for _, e := range events {
			if e.Type == audit.EnrolLinkUsed {
				used++
			}
		}
		if used != 1 {
			t.Fatalf("%d mfa.enrol_link_used events, want 1", used)
		}

		// The enrolment that follows belongs to its browser: another one,
		// with the step's token, is refused and changes nothing.
		victim := issuertest.NewBrowser(t)
		page := h.enrolPage(victim)
		evil := newAttacker(t, h, h.authorizeURL(oauth2.GenerateVerifier(), nil), other)
		evil.tryEverything("at the enrolment page", page)
		secret := secretOnPage.FindStringSubmatch(page.Body)[1]
		codes := victim.Post(t, page, "/login/mfa/enroll", url.Values{"code": {totpAt(t, secret, h.clock.Now())}})
		if len(recoveryCodesOn(t, codes)) != 10 {
			t.Fatalf("the owner's enrolment after the attack: HTTP %d\n%s", codes.Response.StatusCode, codes.Body)
		}
		evil.tryEverything("at the recovery codes", codes)
		wantLinkDone(t, victim.Post(t, codes, "/login/mfa/continue", nil))
		if f, _ := h.st.SecondFactors(ctx, h.alice.ID); !f.TOTP || f.Passkeys != 0 {
			t.Fatalf("alice's factors after the attack: %+v", f)
		}
		// Expired links say so.
		late := h.enrolLink()
		h.clock.Advance(time.Hour + time.Second)
		if res := issuertest.NewBrowser(t).Open(t, late); res.Response.StatusCode != http.StatusBadRequest || !strings.Contains(res.Body, "not valid") {
			t.Fatalf("an expired link: HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
	})
}
