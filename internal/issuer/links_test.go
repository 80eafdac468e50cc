package issuer_test

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// linkHarness is a harness with an audit trail and a debug log, for the
// one-time links' tests, and a user bob without a password.
type linkHarness struct {
	*harness
	trail *auditTrail
	logs  *lockedBuffer
	bob   *store.User
}

func newLinkHarness(t *testing.T, b storetest.Backend, mod func(*issuer.Config)) *linkHarness {
	t.Helper()
	lh := &linkHarness{logs: &lockedBuffer{}}
	lh.harness = newHarness(t, b, func(c *issuer.Config) {
		c.Logger = slog.New(slog.NewTextHandler(lh.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.LoginAttempts = 50
		lh.trail = withAudit(t, c)
		if mod != nil {
			mod(c)
		}
	})
	lh.bob = &store.User{Username: "bob"}
	if err := lh.st.CreateInvited(ctx, lh.bob); err != nil {
		t.Fatal(err)
	}
	return lh
}

// makeLink stores a link of purpose for user, valid for ttl, as
// adminservice.CreateUserLink does, and returns its secret.
func (h *linkHarness) makeLink(t *testing.T, user *store.User, purpose string, ttl time.Duration) (string, *store.Link) {
	t.Helper()
	secret := store.RandomToken(32)
	l, _, err := h.st.CreateLink(ctx, user.ID, purpose, secret, h.clock.Now().Add(ttl))
	if err != nil {
		t.Fatal(err)
	}
	return secret, l
}

// openAccountLink opens the link in b as a click in a mail does: the
// link's URL, then the clean URL it redirects to. It returns that page.
func (h *linkHarness) openAccountLink(t *testing.T, b *issuertest.Browser, secret string) *issuertest.Page {
	t.Helper()
	first := b.Open(t, h.url+"/link?link="+url.QueryEscape(secret))
	if first.Response.StatusCode != http.StatusSeeOther {
		return first
	}
	if loc := first.Response.Header.Get("Location"); loc != "/link" {
		t.Fatalf("the link redirects to %q, want the clean /link", loc)
	}
	if rp := first.Response.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Fatalf("the link's answer has Referrer-Policy %q, want no-referrer", rp)
	}
	return b.Open(t, h.url+"/link")
}

// setPassword posts the password form of page.
func setPassword(t *testing.T, b *issuertest.Browser, page *issuertest.Page, pw string, extra url.Values) *issuertest.Page {
	t.Helper()
	fields := url.Values{"password": {pw}, "password2": {pw}}
	for k, v := range extra {
		fields[k] = v
	}
	return b.Post(t, page, "/link", fields)
}

// wantAccount fails unless p sends the browser to the account page with a
// new browser session.
func wantAccount(t *testing.T, p *issuertest.Page) {
	t.Helper()
	loc, err := issuertest.RedirectOf(p)
	if err != nil || loc.Path != "/account" {
		t.Fatalf("want the redirect to /account, got %v %v", loc, err)
	}
	for _, c := range p.Response.Cookies() {
		if c.Name == "nsauth_session" && c.Value != "" {
			return
		}
	}
	t.Fatal("no browser session was started")
}

func wantLinkPage(t *testing.T, what string, p *issuertest.Page, status int, text string) {
	t.Helper()
	if p.Response.StatusCode != status || !strings.Contains(p.Body, text) {
		t.Fatalf("%s: HTTP %d, want %d with %q:\n%s", what, p.Response.StatusCode, status, text, p.Body)
	}
}

// wantNoSecret fails when secret is in the log or the audit trail.
func (h *linkHarness) wantNoSecret(t *testing.T, secrets ...string) {
	t.Helper()
	out := h.logs.String()
	_, records := h.trail.records(t)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("the log contains a link's secret %q:\n%s", s, out)
		}
		if strings.Contains(records, s) {
			t.Fatalf("the audit trail contains a link's secret %q:\n%s", s, records)
		}
	}
}

// linkEvents returns the audit events of type ty.
func (h *linkHarness) events(t *testing.T, ty audit.Type) []audit.Event {
	t.Helper()
	all, _ := h.trail.records(t)
	var out []audit.Event
	for _, e := range all {
		if e.Type == ty {
			out = append(out, e)
		}
	}
	return out
}

const bobPassword = "bob-password-123"

// TestInviteLinkSetsPasswordAndSignsIn: an invited user opens the link,
// whose secret leaves the URL at once, sets a password, is offered a
// second factor and, choosing later, lands on the account page signed in;
// the link is used up and audited by its ref; the password logs in; the
// secret is in no log line and no audit record.
func TestInviteLinkSetsPasswordAndSignsIn(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, be storetest.Backend) {
		h := newLinkHarness(t, be, nil)
		secret, l := h.makeLink(t, h.bob, store.LinkInvite, time.Hour)
		b := issuertest.NewBrowser(t)
		page := h.openAccountLink(t, b, secret)
		wantLinkPage(t, "the link's page", page, http.StatusOK, `action="/link"`)
		if strings.Contains(page.Body, secret) || page.Response.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("the page holds the secret or may be cached:\n%s", page.Body)
		}
		wantLinkPage(t, "two passwords", b.Post(t, page, "/link", url.Values{"password": {bobPassword}, "password2": {bobPassword + "x"}}),
			http.StatusBadRequest, "not the same")
		wantLinkPage(t, "a short password", setPassword(t, b, page, "short", nil), http.StatusBadRequest, "")
		if _, err := h.st.LinkBySecret(ctx, secret); err != nil {
			t.Fatalf("a refused password used the link: %v", err)
		}
		offer := setPassword(t, b, page, bobPassword, nil)
		wantLinkPage(t, "the factor's offer", offer, http.StatusOK, `action="/link/later"`)
		if !strings.Contains(offer.Body, `action="/link/totp"`) {
			t.Fatalf("no authenticator app offered:\n%s", offer.Body)
		}
		wantAccount(t, b.Post(t, offer, "/link/later", nil))
		if _, err := h.st.LinkBySecret(ctx, secret); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the link is still there after use: %v", err)
		}
		wantLinkPage(t, "the link again", h.openAccountLink(t, issuertest.NewBrowser(t), secret), http.StatusBadRequest, "This link is not valid")
		if loc := issuertest.NewBrowser(t).Login(t, h.authorizeURL(oauth2.GenerateVerifier(), nil), "bob", bobPassword); loc.Query().Get("code") == "" {
			t.Fatalf("the new password does not log in: %s", loc)
		}
		used := h.events(t, audit.LinkUsed)
		if len(used) != 1 || used[0].Target != l.ID || used[0].Subject != h.bob.ID || used[0].Reason != store.LinkInvite {
			t.Fatalf("link.used events %+v, want one naming ref %s", used, l.ID)
		}
		if started := h.events(t, audit.SessionStarted); len(started) == 0 || started[0].Subject != h.bob.ID {
			t.Fatalf("session.started events %+v", started)
		}
		h.wantNoSecret(t, secret, url.QueryEscape(secret), bobPassword)
	})
}

// TestAccountLinkAttacks: what an attacker tries with a link, as they send
// it: one link from two browsers at once (exactly one sets the password),
// a link opened in one browser and continued in another, and a link that
// expired, was revoked, replaced, or whose user was disabled.
func TestAccountLinkAttacks(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, be storetest.Backend) {
		t.Run("two browsers at once: exactly one wins", func(t *testing.T) {
			h := newLinkHarness(t, be, nil)
			secret, _ := h.makeLink(t, h.bob, store.LinkInvite, time.Hour)
			passwords := []string{"first-password-1", "second-password-2"}
			sent := make([]issuertest.Sent, len(passwords))
			for i, pw := range passwords {
				br := issuertest.NewBrowser(t)
				page := h.openAccountLink(t, br, secret)
				wantLinkPage(t, "the link's page", page, http.StatusOK, `action="/link"`)
				req := br.PostRequest(t, page, "/link", url.Values{"password": {pw}, "password2": {pw}})
				sent[i] = issuertest.Sent{From: issuertest.Source{IP: "127.0.0.1"}, Host: req.URL.Host, Request: req}
			}
			winner := -1
			for i, r := range issuertest.SendTogether(t, sent...) {
				switch {
				case r.Status == http.StatusOK && strings.Contains(string(r.Body), `action="/link/later"`):
					if winner >= 0 {
						t.Fatal("both browsers used the link")
					}
					winner = i
				case r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "This link is not valid"):
					t.Fatalf("the loser got HTTP %d:\n%s", r.Status, r.Body)
				}
			}
			if winner < 0 {
				t.Fatal("neither browser used the link")
			}
			if len(h.events(t, audit.LinkUsed)) != 1 {
				t.Fatal("want exactly one link.used")
			}
			if loc := issuertest.NewBrowser(t).Login(t, h.authorizeURL(oauth2.GenerateVerifier(), nil), "bob", passwords[winner]); loc.Query().Get("code") == "" {
				t.Fatal("the winner's password does not log in")
			}
		})
		t.Run("opened in one browser, continued in another", func(t *testing.T) {
			h := newLinkHarness(t, be, nil)
			secret, _ := h.makeLink(t, h.bob, store.LinkInvite, time.Hour)
			victim := issuertest.NewBrowser(t)
			page := h.openAccountLink(t, victim, secret)
			// The attacker's browser has its own CSRF cookie (any login
			// page gives one) but not the link's cookie.
			attacker := issuertest.NewBrowser(t)
			own := attacker.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
			wantLinkPage(t, "the attacker's password", setPassword(t, attacker, own, "attacker-password", nil), http.StatusBadRequest, "Open the link you were given again")
			if _, err := h.st.LinkBySecret(ctx, secret); err != nil {
				t.Fatalf("another browser used the link: %v", err)
			}
			offer := setPassword(t, victim, page, bobPassword, nil)
			wantLinkPage(t, "the factor's offer", offer, http.StatusOK, `action="/link/later"`)
			// The step's token, seen over the victim's shoulder, with the
			// attacker's own CSRF token.
			stolen := attacker.Post(t, own, "/link/later", url.Values{"token": {offer.Form.Get("token")}})
			wantLinkPage(t, "the stolen step", stolen, http.StatusBadRequest, "This took too long")
			for _, c := range stolen.Response.Cookies() {
				if c.Name == "nsauth_session" && c.Value != "" {
					t.Fatal("the attacker got a session")
				}
			}
			wantAccount(t, victim.Post(t, offer, "/link/later", nil))
		})
		for _, c := range []struct {
			name string
			// spoil does what makes the link unusable, after it was made.
			spoil func(h *linkHarness)
			// afterOpen: spoil after the browser opened the link, before it
			// posts the password.
			afterOpen bool
		}{
			{name: "expired", spoil: func(h *linkHarness) { h.clock.Advance(time.Hour + time.Second) }},
			{name: "revoked", spoil: func(h *linkHarness) {
				if _, err := h.st.RevokeUserLinks(ctx, h.bob.ID); err != nil {
					t.Fatal(err)
				}
			}},
			{name: "replaced by a newer link", spoil: func(h *linkHarness) { h.makeLink(t, h.bob, store.LinkInvite, time.Hour) }},
			{name: "user disabled", spoil: func(h *linkHarness) {
				if err := h.st.SetDisabled(ctx, "bob", true); err != nil {
					t.Fatal(err)
				}
			}},
			{name: "user disabled while the page is open", afterOpen: true, spoil: func(h *linkHarness) {
				if err := h.st.SetDisabled(ctx, "bob", true); err != nil {
					t.Fatal(err)
				}
			}},
			{name: "expired while the page is open", afterOpen: true, spoil: func(h *linkHarness) { h.clock.Advance(time.Hour + time.Second) }},
		} {
			t.Run(c.name, func(t *testing.T) {
				h := newLinkHarness(t, be, nil)
				secret, l := h.makeLink(t, h.bob, store.LinkReset, time.Hour)
				b := issuertest.NewBrowser(t)
				var got *issuertest.Page
				if c.afterOpen {
					page := h.openAccountLink(t, b, secret)
					wantLinkPage(t, "the link's page", page, http.StatusOK, `action="/link"`)
					c.spoil(h)
					got = setPassword(t, b, page, bobPassword, nil)
				} else {
					c.spoil(h)
					got = h.openAccountLink(t, b, secret)
				}
				wantLinkPage(t, "the spoilt link", got, http.StatusBadRequest, "This link is not valid")
				if len(h.events(t, audit.LinkUsed)) != 0 {
					t.Fatal("a spoilt link was used")
				}
				if u, err := h.st.UserByUsername(ctx, "bob"); err != nil || u.HasPassword() {
					t.Fatalf("a spoilt link set the password (%v)", err)
				}
				if strings.HasPrefix(c.name, "expired") {
					exp := h.events(t, audit.LinkExpired)
					if len(exp) != 1 || exp[0].Target != l.ID {
						t.Fatalf("link.expired events %+v, want one naming ref %s", exp, l.ID)
					}
					if _, err := h.st.LinkBySecret(ctx, secret); !errors.Is(err, store.ErrNotFound) {
						t.Fatalf("the expired link was kept: %v", err)
					}
				}
				h.wantNoSecret(t, secret)
			})
		}
	})
}

// TestResetLinkAsksTheFactor: a reset link of a user who has a second
// factor sets the password only with one of them (a code of the app, or a
// recovery code), counted on the login's limits, and offers no new
// factor: the link alone takes nothing.
func TestResetLinkAsksTheFactor(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, be storetest.Backend) {
		for _, c := range []struct {
			name  string
			proof func(h *linkHarness) url.Values
		}{
			{"authenticator app", func(h *linkHarness) url.Values {
				return url.Values{"code": {totpAt(t, totpSecret, h.clock.Now())}}
			}},
			{"recovery code", func(*linkHarness) url.Values {
				return url.Values{"method": {"recovery"}, "recovery_code": {recoveryCodes[0]}}
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				h := newLinkHarness(t, be, nil)
				h.enrollAlice(recoveryCodes...)
				secret, l := h.makeLink(t, h.alice, store.LinkReset, time.Hour)
				b := issuertest.NewBrowser(t)
				page := h.openAccountLink(t, b, secret)
				wantLinkPage(t, "the reset page", page, http.StatusOK, `name="recovery_code"`)
				const newPassword = "alice-new-password-1"
				wantLinkPage(t, "no factor", setPassword(t, b, page, newPassword, nil), http.StatusUnauthorized, "That code is not right")
				wantLinkPage(t, "a wrong code", setPassword(t, b, page, newPassword, url.Values{"code": {wrongCodes(t, h.clock.Now(), 1)[0]}}),
					http.StatusUnauthorized, "That code is not right")
				if _, err := h.st.LinkBySecret(ctx, secret); err != nil {
					t.Fatalf("a refused factor used the link: %v", err)
				}
				if loc := issuertest.NewBrowser(t).Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil)); loc.Response.StatusCode != http.StatusOK {
					t.Fatal("no login page")
				}
				wantAccount(t, setPassword(t, b, page, newPassword, c.proof(h)))
				used := h.events(t, audit.LinkUsed)
				if len(used) != 1 || used[0].Target != l.ID || used[0].Reason != store.LinkReset {
					t.Fatalf("link.used events %+v", used)
				}
				if len(h.events(t, audit.SecondFactorEnrolled)) != 0 {
					t.Fatal("a reset link added a factor")
				}
				h.wantNoSecret(t, secret, newPassword)
			})
		}
	})
}

// TestLinkUnderRequiredMFA: under NSAUTH_MFA=required the factor is part
// of the link's flow: "later" is neither offered nor taken, and the
// session starts once an authenticator app is set up and its recovery
// codes were shown.
func TestLinkUnderRequiredMFA(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, be storetest.Backend) {
		h := newLinkHarness(t, be, func(c *issuer.Config) { c.RequireSecondFactor = true })
		secret, _ := h.makeLink(t, h.bob, store.LinkInvite, time.Hour)
		b := issuertest.NewBrowser(t)
		offer := setPassword(t, b, h.openAccountLink(t, b, secret), bobPassword, nil)
		wantLinkPage(t, "the factor's page", offer, http.StatusOK, `action="/link/totp"`)
		if strings.Contains(offer.Body, `action="/link/later"`) {
			t.Fatal("later is offered under NSAUTH_MFA=required")
		}
		later := b.Post(t, offer, "/link/later", nil)
		wantLinkPage(t, "later anyway", later, http.StatusBadRequest, "requires a second factor")
		m := secretOnPage.FindStringSubmatch(offer.Body)
		if m == nil {
			t.Fatal("no TOTP secret on the page")
		}
		wantLinkPage(t, "a wrong first code", b.Post(t, offer, "/link/totp", url.Values{"code": {wrongCodes(t, h.clock.Now(), 1)[0]}}),
			http.StatusBadRequest, m[1])
		codes := b.Post(t, offer, "/link/totp", url.Values{"code": {totpAt(t, m[1], h.clock.Now())}})
		if n := len(codesOnPage.FindAllStringSubmatch(codes.Body, -1)); n != 10 {
			t.Fatalf("want 10 recovery codes, got %d:\n%s", n, codes.Body)
		}
		wantAccount(t, b.Post(t, codes, "/link/continue", nil))
		if f, err := h.st.SecondFactors(ctx, h.bob.ID); err != nil || !f.TOTP {
			t.Fatalf("factors %+v, %v", f, err)
		}
		kinds := []audit.Type{}
		all, _ := h.trail.records(t)
		for _, e := range all {
			kinds = append(kinds, e.Type)
		}
		if !slices.Contains(kinds, audit.SecondFactorEnrolled) || !slices.Contains(kinds, audit.LinkUsed) {
			t.Fatalf("events %v", kinds)
		}
		h.wantNoSecret(t, secret, m[1])
	})
}
