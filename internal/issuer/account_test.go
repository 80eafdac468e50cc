package issuer_test

import (
	"fmt"
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

// The account page (package accountflow) over real HTTP, with a browser
// without JavaScript, on every backend.

// accountGet fetches path with b, following redirects to the login page
// only.
func (h *harness) accountGet(b *issuertest.Browser, path string) *issuertest.Page {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return b.Do(h.t, req)
}

// follow fetches the Location of a redirect page with b.
func (h *harness) follow(b *issuertest.Browser, p *issuertest.Page) *issuertest.Page {
	h.t.Helper()
	loc, err := issuertest.RedirectOf(p)
	if err != nil {
		h.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, p.URL.ResolveReference(loc).String(), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return b.Do(h.t, req)
}

// accountLogin opens /account in b, signs in as alice through the login
// it is sent to (with a TOTP code too when code is set), and returns the
// account page it comes back to.
func (h *harness) accountLogin(b *issuertest.Browser, code bool) *issuertest.Page {
	h.t.Helper()
	p := h.accountGet(b, "/account")
	if loc, err := issuertest.RedirectOf(p); err != nil || loc.Path != "/authorize" {
		h.t.Fatalf("GET /account without a session: want a redirect to /authorize, got HTTP %d %v", p.Response.StatusCode, loc)
	}
	login := h.follow(b, p)
	if login.Form.Get("authRequestID") == "" {
		h.t.Fatalf("the account page's authorization did not lead to the login form: HTTP %d\n%s", login.Response.StatusCode, login.Body)
	}
	res := b.Submit(h.t, login, "alice", alicePassword)
	if code {
		res = b.Post(h.t, res, "/login/mfa", totpForm(totpAt(h.t, totpSecret, h.clock.Now())))
	}
	loc, err := issuertest.RedirectOf(res)
	if err != nil {
		h.t.Fatal(err)
	}
	if loc.Path != "/account/callback" || loc.Query().Get("code") == "" {
		h.t.Fatalf("the login ended at %s, not the account page's callback", loc.Redacted())
	}
	back := h.follow(b, res)
	if loc, err := issuertest.RedirectOf(back); err != nil || loc.String() != "/account" {
		h.t.Fatalf("the callback did not go back to /account: HTTP %d %v\n%s", back.Response.StatusCode, loc, back.Body)
	}
	page := h.follow(b, back)
	if page.Response.StatusCode != http.StatusOK || !strings.Contains(page.Body, `id="sessions"`) {
		h.t.Fatalf("the account page after login: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	return page
}

// wantStatus fails unless p answered status.
func wantStatus(t *testing.T, what string, p *issuertest.Page, status int) {
	t.Helper()
	if p.Response.StatusCode != status {
		t.Fatalf("%s: HTTP %d, want %d\n%s", what, p.Response.StatusCode, status, p.Body)
	}
}

// wantSessionGone fails unless p is the gate's refusal of a post without
// a usable session.
func wantSessionGone(t *testing.T, what string, p *issuertest.Page) {
	t.Helper()
	wantStatus(t, what, p, http.StatusBadRequest)
	if !strings.Contains(p.Body, "sign-in session has ended") {
		t.Errorf("%s: not the session gate's refusal:\n%s", what, p.Body)
	}
}

// reauth confirms it is alice on the account page (page), with a code
// when code is set.
func (h *harness) reauth(b *issuertest.Browser, page *issuertest.Page, code bool) *issuertest.Page {
	h.t.Helper()
	form := url.Values{"password": {alicePassword}}
	if code {
		form.Set("code", totpAt(h.t, totpSecret, h.clock.Now()))
	}
	return b.Post(h.t, page, "/account/reauth", form)
}

// accountEvents returns the audit events of alice recorded for the
// account page's app.
func (h *harness) accountEvents(types ...audit.Type) []audit.Event {
	h.t.Helper()
	evs, err := h.st.AuditEvents(ctx, store.AuditFilter{User: h.alice.ID, ClientID: "nsauth-account", Types: types})
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

func TestAccountPageSessionGate(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *issuer.Config) { withAudit(t, c) })
		br := issuertest.NewBrowser(t)
		page := h.accountLogin(br, false)
		if !strings.Contains(page.Body, "alice") || !strings.Contains(page.Body, "This browser") {
			t.Errorf("the account page does not show its user and session:\n%s", page.Body)
		}
		hdr := page.Response.Header
		if hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q", hdr.Get("Cache-Control"))
		}
		if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP = %q", csp)
		}
		if strings.Contains(page.Body, "<script>") || strings.Contains(page.Body, " on") && strings.Contains(page.Body, "onclick") {
			t.Errorf("inline script on the account page")
		}
		if !strings.Contains(page.Body, `Signed in to <span class="client">this account page</span>`) {
			t.Errorf("the account page lists no sign-in event:\n%s", page.Body)
		}
		// Another user's sign-ins are not on alice's page.
		bob := &store.User{Username: "bob", PasswordHash: h.alice.PasswordHash}
		if err := h.st.CreateUser(ctx, bob); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(page.Body, "<li")
		issuertest.NewBrowser(t).Login(t, h.authorizeURL("v", nil), "bob", alicePassword)
		if p := h.accountGet(br, "/account"); strings.Count(p.Body, "<li") != before {
			t.Errorf("bob's sign-in shows on alice's page:\n%s", p.Body)
		}
		// Again: the session is used, without a login.
		wantStatus(t, "GET /account with a session", h.accountGet(br, "/account"), http.StatusOK)

		t.Run("sign in again", func(t *testing.T) {
			h.clock.Advance(6 * time.Minute)
			p := h.accountGet(br, "/account/login")
			loc, err := issuertest.RedirectOf(p)
			if err != nil || loc.Path != "/authorize" || loc.Query().Get("prompt") != "login" || loc.Query().Get("login_hint") != "alice" {
				t.Fatalf("GET /account/login: HTTP %d %v", p.Response.StatusCode, loc)
			}
			login := h.follow(br, p)
			if login.Form.Get("authRequestID") == "" {
				t.Fatalf("prompt=login did not show the login page: HTTP %d\n%s", login.Response.StatusCode, login.Body)
			}
			back := h.follow(br, h.follow(br, br.Submit(t, login, "alice", alicePassword)))
			wantStatus(t, "the page after signing in again", back, http.StatusOK)
			if !strings.Contains(back.Body, `action="/account/password"`) {
				t.Errorf("signing in again did not make the session recent:\n%s", back.Body)
			}
		})
		t.Run("the app deleted", func(t *testing.T) {
			// An administrator deleted the account page's app: a minute
			// later the page registers it again.
			if err := h.st.DeleteApp(ctx, "nsauth-account"); err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(2 * time.Minute)
			h.accountLogin(issuertest.NewBrowser(t), false)
		})
		t.Run("callback without the state", func(t *testing.T) {
			// Another browser sent to the callback (a link someone
			// was given) goes nowhere.
			other := issuertest.NewBrowser(t)
			wantStatus(t, "callback", h.accountGet(other, "/account/callback?code=x&state=y"), http.StatusBadRequest)
		})
		t.Run("callback with another state", func(t *testing.T) {
			other := issuertest.NewBrowser(t)
			p := h.accountGet(other, "/account") // sets its state cookie
			if _, err := issuertest.RedirectOf(p); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, "callback", h.accountGet(other, "/account/callback?code=x&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), http.StatusBadRequest)
		})
		t.Run("a post without a session", func(t *testing.T) {
			other := issuertest.NewBrowser(t)
			// A page with a CSRF cookie (the device page), so the
			// guard lets it through to the gate.
			p := h.accountGet(other, "/device")
			for _, path := range []string{"/account/reauth", "/account/password", "/account/sessions/end"} {
				wantSessionGone(t, path, other.Post(t, p, path, url.Values{"password": {alicePassword}, "session": {"others"}}))
			}
		})
	})
}

// TestAccountPageAttacks: each attack on the account page's forms as an
// attacker sends it, refused without changing anything.
func TestAccountPageAttacks(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *issuer.Config) { withAudit(t, c) })
		victim := issuertest.NewBrowser(t)
		page := h.accountLogin(victim, false)
		newPassword := url.Values{"current": {alicePassword}, "new": {"attacker-chosen-pw"}, "again": {"attacker-chosen-pw"}}
		passwordUnchanged := func(t *testing.T) {
			t.Helper()
			u, err := h.st.UserByID(ctx, h.alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			if u.PasswordHash != h.alice.PasswordHash {
				t.Fatal("the attack changed the password")
			}
		}

		t.Run("cross-origin post", func(t *testing.T) {
			for _, hdr := range []http.Header{
				{"Origin": {"https://evil.example"}},
				{"Sec-Fetch-Site": {"cross-site"}},
				{"Origin": {"null"}},
			} {
				req := victim.PostRequest(t, page, "/account/password", newPassword)
				for k, v := range hdr {
					req.Header[k] = v
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("%v: HTTP %d, want 403", hdr, resp.StatusCode)
				}
			}
			passwordUnchanged(t)
		})
		t.Run("without the CSRF token", func(t *testing.T) {
			res := victim.Post(t, page, "/account/password", url.Values{"csrf": {""}, "current": newPassword["current"],
				"new": newPassword["new"], "again": newPassword["again"]})
			wantStatus(t, "post", res, http.StatusForbidden)
			passwordUnchanged(t)
		})
		t.Run("another browser's session cookie", func(t *testing.T) {
			// The attacker copied the session cookie (and has a CSRF
			// cookie of their own), but not the victim's device cookie.
			thief := issuertest.NewBrowser(t)
			u, _ := url.Parse(h.url)
			for _, c := range victim.Client.Jar.Cookies(u) {
				if c.Name == "nsauth_session" {
					thief.Client.Jar.SetCookies(u, []*http.Cookie{c})
				}
			}
			p := h.accountGet(thief, "/account")
			if loc, err := issuertest.RedirectOf(p); err != nil || loc.Path != "/authorize" {
				t.Fatalf("GET /account with a copied cookie: HTTP %d, want the login", p.Response.StatusCode)
			}
			d := h.accountGet(thief, "/device")
			wantSessionGone(t, "password post", thief.Post(t, d, "/account/password", newPassword))
			wantSessionGone(t, "sessions post", thief.Post(t, d, "/account/sessions/end", url.Values{"session": {"others"}}))
			passwordUnchanged(t)
		})
		t.Run("no re-authentication", func(t *testing.T) {
			h.clock.Advance(6 * time.Minute)
			p := h.accountGet(victim, "/account")
			wantStatus(t, "page", p, http.StatusOK)
			if !strings.Contains(p.Body, `action="/account/reauth"`) || strings.Contains(p.Body, `action="/account/password"`) {
				t.Errorf("the page of an old session does not ask to confirm it's you first:\n%s", p.Body)
			}
			// The forms an attacker at the unlocked browser posts anyway.
			res := victim.Post(t, p, "/account/password", newPassword)
			wantStatus(t, "password", res, http.StatusForbidden)
			if !strings.Contains(res.Body, "Confirm it") {
				t.Errorf("the refusal does not ask to confirm:\n%s", res.Body)
			}
			wantStatus(t, "sessions", victim.Post(t, p, "/account/sessions/end", url.Values{"session": {"others"}}), http.StatusForbidden)
			passwordUnchanged(t)
			// A wrong password does not confirm, and is counted.
			wantStatus(t, "wrong password", victim.Post(t, p, "/account/reauth", url.Values{"password": {"not-the-password"}}), http.StatusUnauthorized)
			wantStatus(t, "password after a wrong confirmation", victim.Post(t, p, "/account/password", newPassword), http.StatusForbidden)
			if evs := h.accountEvents(audit.LoginFailed); len(evs) != 1 || evs[0].Reason != "bad_password" {
				t.Errorf("the wrong confirmation's audit events: %+v", evs)
			}
			passwordUnchanged(t)
		})
		t.Run("guessing the password at the confirmation", func(t *testing.T) {
			p := h.accountGet(victim, "/account")
			// The wrong confirmation above took one place; the limit is 5.
			for i := 0; i < 4; i++ {
				res := victim.Post(t, p, "/account/reauth", url.Values{"password": {fmt.Sprintf("guess-%d-password", i)}})
				if res.Response.StatusCode != http.StatusUnauthorized {
					t.Fatalf("guess %d: HTTP %d", i, res.Response.StatusCode)
				}
				if last := i == 3; last != strings.Contains(res.Body, "Too many attempts") {
					t.Errorf("guess %d (the last place: %v) and the page says:\n%s", i, last, res.Body)
				}
			}
			if evs := h.accountEvents(audit.LoginLockedOut); len(evs) != 1 {
				t.Errorf("lockout events: %+v", evs)
			}
			res := victim.Post(t, p, "/account/reauth", url.Values{"password": {alicePassword}})
			wantStatus(t, "the right password after the limit", res, http.StatusTooManyRequests)
			if res.Response.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
			wantStatus(t, "password", victim.Post(t, p, "/account/password", newPassword), http.StatusForbidden)
			passwordUnchanged(t)
			h.clock.Advance(2 * time.Minute) // the window is over
		})
		t.Run("stale session", func(t *testing.T) {
			h.clock.Advance(13 * time.Hour) // past the idle timeout
			p := h.accountGet(victim, "/account")
			if loc, err := issuertest.RedirectOf(p); err != nil || loc.Path != "/authorize" {
				t.Fatalf("GET /account with an idle session: HTTP %d, want the login", p.Response.StatusCode)
			}
			wantSessionGone(t, "reauth", victim.Post(t, page, "/account/reauth", url.Values{"password": {alicePassword}}))
			wantSessionGone(t, "password", victim.Post(t, page, "/account/password", newPassword))
			passwordUnchanged(t)
		})
	})
}

func TestAccountPasswordChange(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *issuer.Config) { withAudit(t, c) })
		// Another browser's app: its refresh and access tokens.
		elsewhere := h.tokens(nil)
		br := issuertest.NewBrowser(t)
		page := h.accountLogin(br, false)
		// An app signed in within this browser's session (single sign-on:
		// the broker's "Continue as" page).
		verifier := oauth2.GenerateVerifier()
		cont := br.Open(t, h.authorizeURL(verifier, nil))
		loc, err := issuertest.RedirectOf(br.Post(t, cont, "/login/continue", nil))
		if err != nil || loc.Query().Get("code") == "" {
			t.Fatalf("single sign-on from the account page's session: %v %v", loc, err)
		}
		here := h.exchange(loc.Query().Get("code"), verifier)
		if here.status != http.StatusOK {
			t.Fatalf("exchange: HTTP %d %s", here.status, here.Error)
		}
		const newPW = "a-new-password-42"
		for _, tc := range []struct {
			name   string
			form   url.Values
			status int
			says   string
		}{
			{"wrong current password", url.Values{"current": {"not-my-password"}, "new": {newPW}, "again": {newPW}}, http.StatusUnauthorized, "not your password"},
			{"no current password", url.Values{"new": {newPW}, "again": {newPW}}, http.StatusUnauthorized, "not your password"},
			{"repetition differs", url.Values{"current": {alicePassword}, "new": {newPW}, "again": {newPW + "x"}}, http.StatusBadRequest, "not the same"},
			{"too short", url.Values{"current": {alicePassword}, "new": {"short"}, "again": {"short"}}, http.StatusBadRequest, "at least"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := br.Post(t, page, "/account/password", tc.form)
				wantStatus(t, "post", res, tc.status)
				if !strings.Contains(res.Body, tc.says) {
					t.Errorf("the refusal does not say %q:\n%s", tc.says, res.Body)
				}
				if refresh := h.refresh(elsewhere.RefreshToken); refresh.status != http.StatusOK {
					t.Fatalf("a refused change ended another session's app: HTTP %d %s", refresh.status, refresh.Error)
				} else {
					elsewhere = refresh
				}
			})
		}

		res := br.Post(t, page, "/account/password", url.Values{"current": {alicePassword}, "new": {newPW}, "again": {newPW}})
		wantStatus(t, "change", res, http.StatusOK)
		if !strings.Contains(res.Body, "Your password is changed") {
			t.Errorf("the page does not say the password changed:\n%s", res.Body)
		}
		// The other browser's app is signed out: its refresh token is
		// refused, its access token too.
		if refresh := h.refresh(elsewhere.RefreshToken); refresh.status == http.StatusOK {
			t.Error("another session's refresh token still works after the password change")
		}
		if in := h.introspect(elsewhere.AccessToken); in["active"] != false {
			t.Errorf("another session's access token is still active: %v", in)
		}
		// This browser stays signed in, and so does its app.
		wantStatus(t, "the page after the change", h.accountGet(br, "/account"), http.StatusOK)
		if h.introspect(here.AccessToken)["active"] != true {
			t.Error("the password change revoked the access token of an app in its own session")
		}
		if r := h.refresh(here.RefreshToken); r.status != http.StatusOK {
			t.Errorf("the password change revoked the refresh token of an app in its own session: HTTP %d %s", r.status, r.Error)
		}
		// The old password no longer logs in, the new one does.
		if p := issuertest.NewBrowser(t).Submit(t, issuertest.NewBrowser(t).Open(t, h.authorizeURL("v", nil)), "alice", alicePassword); p.Response.StatusCode == http.StatusSeeOther {
			t.Error("the old password still logs in")
		}
		issuertest.NewBrowser(t).Login(t, h.authorizeURL("v", nil), "alice", newPW)

		evs := h.accountEvents(audit.UserChanged, audit.SessionEnded)
		var reasons []string
		for _, e := range evs {
			reasons = append(reasons, string(e.Type)+":"+e.Reason)
		}
		if want := []string{"admin.user:password_changed", "session.ended:password_changed"}; strings.Join(reasons, ",") != strings.Join(want, ",") {
			t.Errorf("audit events %v, want %v", reasons, want)
		}
		_, stream := h.accountTrail()
		if strings.Contains(stream, newPW) || strings.Contains(stream, alicePassword) {
			t.Error("a password reached the audit trail")
		}
	})
}

// accountTrail returns every stored event and their JSON.
func (h *harness) accountTrail() ([]audit.Event, string) {
	h.t.Helper()
	evs, err := h.st.AuditEvents(ctx, store.AuditFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(string(e.Type) + " " + e.Reason + " " + e.Target + " " + e.ClientID + "\n")
		for k, v := range e.Refs {
			b.WriteString(k + "=" + v + "\n")
		}
	}
	return evs, b.String()
}

func TestAccountSessions(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *issuer.Config) { withAudit(t, c) })
		// Two other browsers with an app each, and their sessions.
		newSession := func(known ...string) string {
			t.Helper()
			all, err := h.st.ListSessions(ctx, h.alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range all {
				if !slices.Contains(known, s.ID) {
					return s.ID
				}
			}
			t.Fatal("no new session")
			return ""
		}
		second := h.tokens(nil)
		secondSession := newSession()
		third := h.tokens(nil)
		thirdSession := newSession(secondSession)
		br := issuertest.NewBrowser(t)
		page := h.accountLogin(br, false)
		current := newSession(secondSession, thirdSession)
		if n := strings.Count(page.Body, "Another browser"); n != 2 {
			t.Fatalf("the page lists %d other sessions, want 2:\n%s", n, page.Body)
		}
		if !strings.Contains(page.Body, `id="session-`+current+`"><strong>This browser`) {
			t.Errorf("the page does not mark this browser's session:\n%s", page.Body)
		}
		if !strings.Contains(page.Body, `<span class="client">`+h.client+`</span>, last used`) {
			t.Errorf("the page does not list the app signed in elsewhere with its last use:\n%s", page.Body)
		}
		if strings.Contains(page.Body, `<span class="client">Your account</span>, last used`) {
			t.Errorf("the page lists its own app:\n%s", page.Body)
		}

		t.Run("another user's session", func(t *testing.T) {
			bob := &store.User{Username: "bob", PasswordHash: h.alice.PasswordHash}
			if err := h.st.CreateUser(ctx, bob); err != nil {
				t.Fatal(err)
			}
			issuertest.NewBrowser(t).Login(t, h.authorizeURL("v", nil), "bob", alicePassword)
			bobSessions, err := h.st.ListSessions(ctx, bob.ID)
			if err != nil || len(bobSessions) != 1 {
				t.Fatalf("bob's sessions: %v, %v", bobSessions, err)
			}
			for _, tc := range []struct {
				name, session string
				status        int
			}{
				{"bob's", bobSessions[0].ID, http.StatusNotFound},
				{"none", "nope", http.StatusNotFound},
				{"empty", "", http.StatusNotFound},
				{"this one", current, http.StatusBadRequest},
			} {
				wantStatus(t, tc.name, br.Post(t, page, "/account/sessions/end", url.Values{"session": {tc.session}}), tc.status)
			}
			if after, _ := h.st.ListSessions(ctx, ""); len(after) != 4 {
				t.Errorf("a refused sign-out ended a session: %d left", len(after))
			}
		})

		res := br.Post(t, page, "/account/sessions/end", url.Values{"session": {secondSession}})
		wantStatus(t, "end one", res, http.StatusOK)
		if strings.Count(res.Body, "Another browser") != 1 || strings.Contains(res.Body, secondSession) {
			t.Errorf("after signing out of one, the page lists:\n%s", res.Body)
		}
		if h.introspect(second.AccessToken)["active"] != false {
			t.Error("the signed-out session's access token is still active")
		}
		if r := h.refresh(second.RefreshToken); r.status == http.StatusOK {
			t.Error("the signed-out session's refresh token still works")
		}
		if h.introspect(third.AccessToken)["active"] != true {
			t.Error("signing out of one session ended another's token")
		}

		res = br.Post(t, page, "/account/sessions/end", url.Values{"session": {"others"}})
		wantStatus(t, "end others", res, http.StatusOK)
		if strings.Contains(res.Body, "Another browser") {
			t.Errorf("after signing out of every other, the page lists:\n%s", res.Body)
		}
		if h.introspect(third.AccessToken)["active"] != false {
			t.Error("the last other session's access token is still active")
		}
		if r := h.refresh(third.RefreshToken); r.status == http.StatusOK {
			t.Error("the last other session's refresh token still works")
		}
		wantStatus(t, "this browser", h.accountGet(br, "/account"), http.StatusOK)
		var targets []string
		for _, e := range h.accountEvents(audit.SessionEnded) {
			targets = append(targets, e.Target)
		}
		if want := []string{secondSession, thirdSession}; !slices.Equal(targets, want) {
			t.Errorf("audit: session.ended of %v, want %v", targets, want)
		}
	})
}

func TestAccountReauthWithSecondFactor(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *issuer.Config) { withAudit(t, c) })
		h.enrollAlice(recoveryCodes...)
		br := issuertest.NewBrowser(t)
		h.accountLogin(br, true)
		h.clock.Advance(6 * time.Minute)
		page := h.accountGet(br, "/account")
		if !strings.Contains(page.Body, `name="code"`) {
			t.Fatalf("the confirmation of a user with a second factor asks for no code:\n%s", page.Body)
		}
		notRecent := func(t *testing.T) {
			t.Helper()
			p := h.accountGet(br, "/account")
			if strings.Contains(p.Body, `action="/account/password"`) {
				t.Fatal("a refused confirmation made the session recent")
			}
		}
		code := func() string { return totpAt(t, totpSecret, h.clock.Now()) }
		for _, tc := range []struct {
			name   string
			form   url.Values
			status int
		}{
			// A password alone never confirms a user who has a factor.
			{"password alone", url.Values{"password": {alicePassword}}, http.StatusBadRequest},
			{"password, wrong code", url.Values{"password": {alicePassword}, "code": {"000000"}}, http.StatusUnauthorized},
			{"password, wrong recovery code", url.Values{"password": {alicePassword}, "code": {"ZZZZ-ZZZZ-ZZZZ-ZZZZ"}}, http.StatusUnauthorized},
			{"code alone", url.Values{"code": {code()}}, http.StatusUnauthorized},
			{"wrong password, right code", url.Values{"password": {"not-the-password"}, "code": {code()}}, http.StatusUnauthorized},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantStatus(t, "reauth", br.Post(t, page, "/account/reauth", tc.form), tc.status)
				notRecent(t)
			})
		}
		// The right code, not used up by the wrong password above.
		res := h.reauth(br, page, true)
		wantStatus(t, "password and code", res, http.StatusOK)
		if !strings.Contains(res.Body, `action="/account/password"`) {
			t.Errorf("after confirming, the page offers no change:\n%s", res.Body)
		}
		// A recovery code confirms too, once.
		h.clock.Advance(6 * time.Minute)
		res = br.Post(t, page, "/account/reauth", url.Values{"password": {alicePassword}, "code": {recoveryCodes[0]}})
		wantStatus(t, "password and recovery code", res, http.StatusOK)
		h.clock.Advance(6 * time.Minute)
		wantStatus(t, "the recovery code again", br.Post(t, page, "/account/reauth", url.Values{"password": {alicePassword}, "code": {recoveryCodes[0]}}),
			http.StatusUnauthorized)

		var got []string
		for _, e := range h.accountEvents(audit.LoginSucceeded, audit.LoginFailed, audit.SecondFactorFailed) {
			got = append(got, string(e.Type)+":"+e.Reason)
		}
		for _, want := range []string{"login.failed:bad_password", "login.second_factor_failed:wrong_code", "login.second_factor_failed:wrong_recovery_code",
			"login.succeeded:reauthenticated"} {
			if !slices.Contains(got, want) {
				t.Errorf("audit events %v lack %s", got, want)
			}
		}
	})
}

// TestAccountSignOutTellsApps: the apps signed in within a session the
// account page ends, by a sign-out or a password change, are told by
// back-channel logout, as on a sign-out from an app.
func TestAccountSignOutTellsApps(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *issuer.Config) { c.BackchannelBackoff = 10 * time.Millisecond })
		rc := newLogoutReceiver(t, h.url)
		wiki := h.addLogoutApp("wiki", "http://127.0.0.1:3002", rc.uri())
		elsewhere, other := issuertest.NewBrowser(t), issuertest.NewBrowser(t)
		first := wiki.signIn(elsewhere, "openid offline_access")
		sessions, err := h.st.ListSessions(ctx, h.alice.ID)
		if err != nil || len(sessions) != 1 {
			t.Fatalf("sessions: %v, %v", sessions, err)
		}
		firstSession := sessions[0].ID
		second := wiki.signIn(other, "openid offline_access")
		br := issuertest.NewBrowser(t)
		page := h.accountLogin(br, false)
		wantStatus(t, "sign out of one", br.Post(t, page, "/account/sessions/end", url.Values{"session": {firstSession}}), http.StatusOK)
		got := rc.received(1)
		if len(got) != 1 || got[0]["aud"] != "wiki" || got[0]["sub"] != h.alice.ID {
			t.Fatalf("logout tokens after signing out of one session: %v", got)
		}
		if wiki.alive(first) {
			t.Error("the signed-out session's app is still alive")
		}
		res := br.Post(t, page, "/account/password", url.Values{"current": {alicePassword}, "new": {"another-password-1"}, "again": {"another-password-1"}})
		wantStatus(t, "password change", res, http.StatusOK)
		if got := rc.received(2); len(got) != 2 || got[1]["aud"] != "wiki" || got[1]["sid"] == got[0]["sid"] {
			t.Fatalf("logout tokens after the password change: %v", got)
		}
		if wiki.alive(second) {
			t.Error("the other session's app is still alive after the password change")
		}
	})
}
