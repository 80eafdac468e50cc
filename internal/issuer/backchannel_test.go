package issuer_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/backchannel"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// logoutApp is an app registered for the sign-out tests, with its
// credentials.
type logoutApp struct {
	h        *harness
	id       string
	secret   string
	redirect string
}

// addLogoutApp registers a confidential first-party app named id whose
// site is base (its redirect URI base+"/api/auth/callback/nsauth", its
// post-logout redirect URI base itself).
func (h *harness) addLogoutApp(id, base, backchannelURI string) *logoutApp {
	h.t.Helper()
	a := &logoutApp{h: h, id: id, secret: store.RandomToken(24), redirect: base + "/api/auth/callback/nsauth"}
	c := &store.Client{ID: id, SecretHash: store.HashSecret(a.secret), RedirectURIs: []string{a.redirect},
		PostLogoutRedirectURIs: []string{base}, BackchannelLogoutURI: backchannelURI}
	if err := h.st.AddApp(ctx, c); err != nil {
		h.t.Fatalf("adding app %s: %v", id, err)
	}
	return a
}

func (a *logoutApp) authorizeURL(verifier, scope string) string {
	return a.h.url + "/authorize?" + url.Values{
		"client_id": {a.id}, "response_type": {"code"}, "redirect_uri": {a.redirect}, "scope": {scope},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}.Encode()
}

// token posts form to the token endpoint with the app's credentials.
func (a *logoutApp) token(form url.Values) tokenResponse {
	a.h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.h.url+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		a.h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(a.id), url.QueryEscape(a.secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		a.h.t.Fatalf("token response (HTTP %d) is not JSON: %v", resp.StatusCode, err)
	}
	tr.status = resp.StatusCode
	return tr
}

// signIn has alice sign in to the app in browser b: with her password
// when the browser has no session, at once otherwise.
func (a *logoutApp) signIn(b *issuertest.Browser, scope string) *session {
	a.h.t.Helper()
	v := oauth2.GenerateVerifier()
	page := b.Open(a.h.t, a.authorizeURL(v, scope))
	if page.Response.StatusCode == http.StatusOK && page.Form.Get("authRequestID") != "" {
		page = b.Submit(a.h.t, page, "alice", alicePassword)
	}
	loc, err := issuertest.RedirectOf(page)
	if err != nil {
		a.h.t.Fatalf("signing in to %s: %v", a.id, err)
	}
	code := loc.Query().Get("code")
	if code == "" {
		a.h.t.Fatalf("signing in to %s: redirected to %s without a code", a.id, loc)
	}
	tr := a.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.redirect}, "code_verifier": {v}})
	if tr.status != http.StatusOK {
		a.h.t.Fatalf("signing in to %s: token exchange: HTTP %d %s %s", a.id, tr.status, tr.Error, tr.ErrorDescription)
	}
	return newSession(tr)
}

// alive refreshes s as the app and reports whether that still works.
func (a *logoutApp) alive(s *session) bool {
	a.h.t.Helper()
	r := a.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {s.rt}})
	if r.status != http.StatusOK {
		return false
	}
	s.rt = r.RefreshToken
	return true
}

// logoutReceiver is an app's back-channel logout endpoint: it verifies
// every logout token with the provider's JWKS, keeps the valid ones'
// claims, and answers status (200 when nil). hold, when set, is waited
// for before answering each request.
type logoutReceiver struct {
	t       *testing.T
	issuer  string
	srv     *httptest.Server
	status  func(try int) int
	hold    chan struct{}
	arrived chan struct{}

	mu     sync.Mutex
	tries  int
	tokens []map[string]any
}

func newLogoutReceiver(t *testing.T, issuerURL string) *logoutReceiver {
	rc := &logoutReceiver{t: t, issuer: issuerURL, arrived: make(chan struct{}, 100)}
	rc.srv = httptest.NewServer(rc)
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *logoutReceiver) uri() string { return rc.srv.URL + "/api/auth/backchannel" }

func (rc *logoutReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.tries++
	try := rc.tries
	rc.mu.Unlock()
	rc.arrived <- struct{}{}
	if rc.hold != nil {
		<-rc.hold
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		rc.t.Errorf("back-channel logout: %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
	}
	claims, err := verifyLogoutToken(rc.issuer, r.PostFormValue("logout_token"))
	if err != nil {
		rc.t.Errorf("back-channel logout token: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.tokens = append(rc.tokens, claims)
	rc.mu.Unlock()
	if rc.status != nil {
		w.WriteHeader(rc.status(try))
	}
}

// received waits up to 10 s for n verified tokens and returns them.
func (rc *logoutReceiver) received(n int) []map[string]any {
	rc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rc.mu.Lock()
		got := slices.Clone(rc.tokens)
		rc.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// verifyLogoutToken checks a logout token as an app must (Back-Channel
// Logout 1.0 §2.6): signed by a key of the provider's JWKS, typed
// logout+jwt, from the issuer, with the logout event and no nonce.
func verifyLogoutToken(issuerURL, token string) (map[string]any, error) {
	resp, err := http.Get(issuerURL + "/keys")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var keys jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&keys); err != nil {
		return nil, err
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, err
	}
	hdr := jws.Signatures[0].Protected
	if hdr.ExtraHeaders["typ"] != backchannel.TokenType {
		return nil, errors.New("typ is not logout+jwt")
	}
	found := keys.Key(hdr.KeyID)
	if len(found) != 1 {
		return nil, errors.New("signed with a key not in the JWKS")
	}
	payload, err := jws.Verify(found[0].Key)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	ev, _ := claims["events"].(map[string]any)
	if _, ok := ev[backchannel.EventLogout]; !ok || claims["iss"] != issuerURL || claims["nonce"] != nil || claims["jti"] == nil ||
		claims["sid"] == nil || claims["exp"] == nil || claims["iat"] == nil {
		return nil, errors.New("claims are not a logout token's")
	}
	return claims, nil
}

// byAudience groups tokens by their aud.
func byAudience(tokens []map[string]any) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for _, c := range tokens {
		aud, _ := c["aud"].(string)
		out[aud] = append(out[aud], c)
	}
	return out
}

// TestNeosyncSignOut is Neosync's web app signing out as Auth.js does:
// with its first ID token, expired by then, its registered base URL as
// post_logout_redirect_uri, and a state. One confirmation page, then back
// to the app with the state; its refresh token is refused afterwards. In
// the same browser session, another app's offline grant (a terminal
// client's) survives and that app is told by back-channel logout; a third
// app's online grant is revoked and it is told too; Neosync itself is not.
func TestNeosyncSignOut(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *issuer.Config) { c.BackchannelBackoff = 10 * time.Millisecond })
		rc := newLogoutReceiver(t, h.url)
		const base = "http://127.0.0.1:3000"
		neosync := h.addLogoutApp("neosync", base, rc.uri())
		terminal := h.addLogoutApp("terminal", "http://127.0.0.1:3001", rc.uri())
		wiki := h.addLogoutApp("wiki", "http://127.0.0.1:3002", rc.uri())

		browser := issuertest.NewBrowser(t)
		neo := neosync.signIn(browser, "openid profile email offline_access")
		issuerURL, _ := url.Parse(h.url)
		if !slices.ContainsFunc(browser.Client.Jar.Cookies(issuerURL), func(c *http.Cookie) bool { return c.Name == "nsauth_session" }) {
			t.Fatal("the sign-in left no session cookie")
		}
		term := terminal.signIn(browser, "openid offline_access")
		h.clock.Advance(time.Hour) // Neosync's ID token has expired
		// The wiki asks for no refresh token: its access token is its grant.
		wk := wiki.signIn(browser, "openid profile")
		if status, _ := h.userinfo(wk.AccessToken); status != http.StatusOK {
			t.Fatalf("the wiki's access token does not work: HTTP %d", status)
		}

		params := url.Values{"id_token_hint": {neo.IDToken}, "post_logout_redirect_uri": {base}, "state": {"neo-state"}}
		page := browser.Do(t, endSessionRequest(t, h.url, "", params))
		if page.Response.StatusCode != http.StatusOK {
			t.Fatalf("end_session: HTTP %d, want the confirmation page\n%s", page.Response.StatusCode, page.Body)
		}
		checkConfirmationPage(t, page, params)
		if !neosync.alive(neo) {
			t.Fatal("Neosync's grant died before the user confirmed")
		}
		done := confirm(t, h, browser, page, nil, &confirmation{})
		loc, err := issuertest.RedirectOf(done)
		if err != nil || done.Response.StatusCode != http.StatusSeeOther {
			t.Fatalf("confirmation: %v", err)
		}
		if got := loc.String(); got != base+"?state=neo-state" {
			t.Errorf("sent back to %q, want %q", got, base+"?state=neo-state")
		}

		if neosync.alive(neo) {
			t.Error("Neosync's refresh token still works after its sign-out")
		}
		if !terminal.alive(term) {
			t.Error("the terminal client's offline grant did not survive")
		}
		if status, _ := h.userinfo(wk.AccessToken); status == http.StatusOK {
			t.Error("the wiki's online grant survived the session")
		}
		if live, err := h.st.ListSessions(ctx, h.alice.ID); err != nil || len(live) != 0 {
			t.Errorf("live browser sessions after the sign-out: %v, %v", live, err)
		}
		for _, c := range browser.Client.Jar.Cookies(issuerURL) {
			if strings.Contains(c.Name, "nsauth_session") {
				t.Errorf("the browser still holds its session cookie %s", c.Name)
			}
		}

		got := byAudience(rc.received(2))
		for app, s := range map[string]*session{"terminal": term, "wiki": wk} {
			tokens := got[app]
			if len(tokens) != 1 {
				t.Errorf("%s received %d logout tokens, want 1", app, len(tokens))
				continue
			}
			if tokens[0]["sid"] != sidOf(t, s.IDToken) || tokens[0]["sub"] != h.alice.ID {
				t.Errorf("%s's logout token: %v", app, tokens[0])
			}
		}
		time.Sleep(50 * time.Millisecond)
		if n := len(byAudience(rc.received(2))["neosync"]); n != 0 {
			t.Errorf("Neosync, which signed out, received %d logout tokens", n)
		}
	})
}

// TestUnregisteredPostLogoutURI: a post_logout_redirect_uri the app did
// not register is never redirected to, with a fresh hint or after the
// confirmation: the browser ends on the signed-out page.
func TestUnregisteredPostLogoutURI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	app := h.addLogoutApp("neosync", "http://127.0.0.1:3000", "")
	for _, tc := range []struct {
		name, uri string
		expire    bool
	}{
		// Fresh hints first: the test clock only moves forward, and the
		// library takes a hint issued in its future for an expired one.
		{"another site, fresh hint", "https://evil.example.com/", false},
		{"the registered URI with a path added", "http://127.0.0.1:3000/x", false},
		{"another site, confirmed", "https://evil.example.com/", true},
		{"another app's registered URI, confirmed", "http://127.0.0.1:3001", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := issuertest.NewBrowser(t)
			s := app.signIn(b, "openid offline_access")
			if !app.alive(s) {
				t.Fatal("the app's grant does not work")
			}
			if tc.expire {
				h.clock.Advance(time.Hour)
			}
			params := url.Values{"id_token_hint": {s.IDToken}, "post_logout_redirect_uri": {tc.uri}, "state": {"st"}}
			last := b.Do(t, endSessionRequest(t, h.url, "", params))
			if tc.expire {
				if last.Response.StatusCode != http.StatusOK {
					t.Fatalf("end_session: HTTP %d, want the confirmation page", last.Response.StatusCode)
				}
				if strings.Contains(last.Response.Header.Get("Content-Security-Policy"), tc.uri) {
					t.Error("the page's form may post on to the unregistered URI")
				}
				last = confirm(t, h, b, last, nil, &confirmation{})
			}
			loc, err := issuertest.RedirectOf(last)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := loc.String(), h.url+"/logged-out?state=st"; got != want {
				t.Errorf("redirected to %q, want %q", got, want)
			}
			if app.alive(s) {
				t.Error("the app's grant survived its sign-out")
			}
		})
	}
}

// TestBackchannelReceiverDown: an app whose back-channel endpoint hangs,
// then fails, does not delay the sign-out; its logout token is tried
// again with backoff, then given up, and that is one event.
func TestBackchannelReceiverDown(t *testing.T) {
	t.Parallel()
	events := &eventLog{}
	h := newHarness(t, sqlite(), func(c *issuer.Config) {
		c.Audit = events
		c.BackchannelBackoff = 5 * time.Millisecond
	})
	rc := newLogoutReceiver(t, h.url)
	rc.hold = make(chan struct{})
	rc.status = func(int) int { return http.StatusServiceUnavailable }
	neosync := h.addLogoutApp("neosync", "http://127.0.0.1:3000", "")
	wiki := h.addLogoutApp("wiki", "http://127.0.0.1:3002", rc.uri())

	b := issuertest.NewBrowser(t)
	neo := neosync.signIn(b, "openid")
	wiki.signIn(b, "openid")
	start := time.Now()
	page := b.Do(t, endSessionRequest(t, h.url, "", url.Values{"id_token_hint": {neo.IDToken}}))
	if page.Response.StatusCode != http.StatusFound {
		t.Fatalf("end_session: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	select {
	case <-rc.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the wiki was not sent a logout token")
	}
	// The sign-out answered while the wiki's endpoint still hangs.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the sign-out took %s", d)
	}
	close(rc.hold)

	var failed []audit.Event
	deadline := time.Now().Add(10 * time.Second)
	for len(failed) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		for _, e := range events.take() {
			switch e.Type {
			case audit.BackchannelFailed:
				failed = append(failed, e)
			case audit.BackchannelSent:
				t.Errorf("recorded as sent: %+v", e)
			}
		}
	}
	if len(failed) != 1 || failed[0].ClientID != "wiki" || failed[0].Reason != "status_503" || failed[0].Subject != h.alice.ID {
		t.Fatalf("back-channel failures recorded: %+v", failed)
	}
	rc.mu.Lock()
	tries := rc.tries
	rc.mu.Unlock()
	if tries != backchannel.DefaultTries {
		t.Errorf("the wiki was tried %d times, want %d", tries, backchannel.DefaultTries)
	}
}

// TestSignOutWithoutHint: a sign-out that names no app (no hint), once
// the user confirms it on our page, ends this browser's session: its
// online grants are revoked, offline ones kept, and the next prompt=none
// authorization finds no session.
func TestSignOutWithoutHint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	terminal := h.addLogoutApp("terminal", "http://127.0.0.1:3001", "")
	wiki := h.addLogoutApp("wiki", "http://127.0.0.1:3002", "")
	b := issuertest.NewBrowser(t)
	term := terminal.signIn(b, "openid offline_access")
	wk := wiki.signIn(b, "openid")
	other := issuertest.NewBrowser(t)
	elsewhere := wiki.signIn(other, "openid")

	page := b.Do(t, endSessionRequest(t, h.url, "", url.Values{}))
	if page.Response.StatusCode != http.StatusOK {
		t.Fatalf("end_session: HTTP %d, want the confirmation page", page.Response.StatusCode)
	}
	if status, _ := h.userinfo(wk.AccessToken); status != http.StatusOK {
		t.Fatal("the wiki's grant died before the user confirmed")
	}
	loc, err := issuertest.RedirectOf(confirm(t, h, b, page, nil, &confirmation{}))
	if err != nil || loc.String() != h.url+"/logged-out" {
		t.Fatalf("confirmation: %v, %v", loc, err)
	}
	if status, _ := h.userinfo(wk.AccessToken); status == http.StatusOK {
		t.Error("the wiki's online grant survived")
	}
	if !terminal.alive(term) {
		t.Error("the terminal's offline grant did not survive")
	}
	if status, _ := h.userinfo(elsewhere.AccessToken); status != http.StatusOK {
		t.Error("the session of another browser ended too")
	}
	v := oauth2.GenerateVerifier()
	answer := b.Open(t, wiki.authorizeURL(v, "openid")+"&prompt=none")
	if loc, err := issuertest.RedirectOf(answer); err != nil || loc.Query().Get("error") != "login_required" {
		t.Errorf("prompt=none after the sign-out: %v, %v", loc, err)
	}
}

// TestSignOutOnAnotherReplica: signed in through one replica, signed out
// through another sharing the database: the first refuses the app's
// refresh token at once, keeps the other app's offline grant, and the
// other app is told by the replica that ended the session.
func TestSignOutOnAnotherReplica(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		second := h.replica(nil)
		rc := newLogoutReceiver(t, h.url)
		neosync := h.addLogoutApp("neosync", "http://127.0.0.1:3000", "")
		terminal := h.addLogoutApp("terminal", "http://127.0.0.1:3001", rc.uri())
		browser := issuertest.NewBrowser(t)
		neo := neosync.signIn(browser, "openid offline_access")
		term := terminal.signIn(browser, "openid offline_access")
		h.clock.Advance(time.Hour)

		browser.Rewrite = func(u *url.URL) { u.Host = second }
		params := url.Values{"id_token_hint": {neo.IDToken}, "post_logout_redirect_uri": {"http://127.0.0.1:3000"}, "state": {"s"}}
		page := browser.Do(t, endSessionRequest(t, h.url, "", params))
		if page.Response.StatusCode != http.StatusOK {
			t.Fatalf("end_session on the second replica: HTTP %d", page.Response.StatusCode)
		}
		loc, err := issuertest.RedirectOf(confirm(t, h, browser, page, nil, &confirmation{}))
		if err != nil || loc.String() != "http://127.0.0.1:3000?state=s" {
			t.Fatalf("confirmation on the second replica: %v, %v", loc, err)
		}
		if neosync.alive(neo) {
			t.Error("the first replica still refreshes Neosync's grant")
		}
		if !terminal.alive(term) {
			t.Error("the terminal's offline grant did not survive")
		}
		got := byAudience(rc.received(1))["terminal"]
		if len(got) != 1 || got[0]["sid"] != sidOf(t, term.IDToken) {
			t.Errorf("the terminal's logout tokens: %v", got)
		}
	})
}
