package issuer_test

import (
	"cmp"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestIDTokenNamesItsGrant: every ID token carries a `sid` naming the
// login it came from; refreshed ID tokens keep it, another login gets
// another one, and userinfo does not show it.
func TestIDTokenNamesItsGrant(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		first := h.tokens(nil)
		sid := sidOf(t, first.IDToken)
		if sid == "" {
			t.Fatal("the ID token has no sid")
		}
		refreshed := h.refresh(first.RefreshToken)
		if refreshed.status != http.StatusOK {
			t.Fatalf("refresh: HTTP %d %s", refreshed.status, refreshed.Error)
		}
		if got := sidOf(t, refreshed.IDToken); got != sid {
			t.Errorf("refreshed ID token sid = %q, want %q", got, sid)
		}
		if other := sidOf(t, h.tokens(nil).IDToken); other == "" || other == sid {
			t.Errorf("a second login's sid = %q (first %q)", other, sid)
		}
		if _, info := h.userinfo(first.AccessToken); info["sid"] != nil {
			t.Errorf("userinfo shows sid: %v", info)
		}
		if _, access := jwtParts(t, first.AccessToken); access["sid"] != nil {
			t.Errorf("the access token carries sid: %v", access)
		}
	})
}

func TestDiscoveryAdvertisesSessionID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	_, body := h.get("/.well-known/openid-configuration", nil)
	var d struct {
		Claims     []string `json:"claims_supported"`
		EndSession string   `json:"end_session_endpoint"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(d.Claims, "sid") {
		t.Errorf("claims_supported = %v, lacks sid", d.Claims)
	}
	if d.EndSession != h.url+"/oauth/end_session" {
		t.Errorf("end_session_endpoint = %q", d.EndSession)
	}
}

// sidOf returns the `sid` claim of a token, unverified.
func sidOf(t *testing.T, token string) string {
	t.Helper()
	_, claims := jwtParts(t, token)
	sid, _ := claims["sid"].(string)
	return sid
}

// session is one login at the broker's client, followed through its
// rotating refresh tokens.
type session struct {
	tokenResponse
	rt string // the latest refresh token
}

func newSession(tr tokenResponse) *session { return &session{tokenResponse: tr, rt: tr.RefreshToken} }

// alive refreshes s and reports whether that still works.
func (h *harness) alive(s *session) bool {
	h.t.Helper()
	r := h.refresh(s.rt)
	if r.status != http.StatusOK {
		return false
	}
	s.rt = r.RefreshToken
	return true
}

// tokensOf logs username in and redeems the code.
func (h *harness) tokensOf(username, pw string) tokenResponse {
	h.t.Helper()
	v := oauth2.GenerateVerifier()
	loc := issuertest.NewBrowser(h.t).Login(h.t, h.authorizeURL(v, nil), username, pw)
	tr := h.exchange(loc.Query().Get("code"), v)
	if tr.status != http.StatusOK {
		h.t.Fatalf("token exchange for %s failed: HTTP %d %s", username, tr.status, tr.Error)
	}
	return tr
}

// signHint signs claims with the provider's own key, as only the provider
// can: what a bug elsewhere, not an attacker, could produce.
func (h *harness) signHint(claims map[string]any) string {
	h.t.Helper()
	keys, err := h.st.SigningKeys(ctx)
	if err != nil || len(keys) == 0 {
		h.t.Fatalf("signing keys: %v", err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(keys[0].PrivateKey)
	if err != nil {
		h.t.Fatal(err)
	}
	return signJWT(h.t, priv, keys[0].ID, claims)
}

func signJWT(t testing.TB, key any, kid string, claims map[string]any) string {
	t.Helper()
	return signTypedJWT(t, key, kid, "", claims)
}

// signTypedJWT is signJWT with a typ header (none when empty).
func signTypedJWT(t testing.TB, key any, kid, typ string, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// withClaims returns token's claims changed by set (nil deletes a claim).
func withClaims(t *testing.T, token string, set map[string]any) map[string]any {
	t.Helper()
	_, claims := jwtParts(t, token)
	for k, v := range set {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	return claims
}

// endSessionWorld is what each end-session case starts from: alice logged
// in twice at the same client (a and b), and bob once when the case needs
// him.
type endSessionWorld struct {
	h         *harness
	a, b, bob *session
}

// confirmation is how a case submits the confirmation form.
type confirmation struct {
	hint      func(w *endSessionWorld) string // replaces the form's hint when set
	csrf      string                          // replaces the form's CSRF token when set
	noCookie  bool                            // send no CSRF cookie
	origin    string                          // Origin header; default the issuer's
	fetchSite string                          // Sec-Fetch-Site header; default same-origin
	want      int
}

func TestEndSession(t *testing.T) {
	t.Parallel()
	bobHash, err := password.Hash("bob-password-123")
	if err != nil {
		t.Fatal(err)
	}
	hintOfA := func(w *endSessionWorld) string { return w.a.IDToken }
	bobsSIDInAlicesToken := func(w *endSessionWorld) string {
		// Alice's ID token with bob's sid: the signature no longer matches.
		parts := strings.Split(w.a.IDToken, ".")
		forged := withClaims(t, w.a.IDToken, map[string]any{"sid": sidOf(t, w.bob.IDToken)})
		payload, _ := json.Marshal(forged)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	}
	otherKeyUnderOurKID := func(w *endSessionWorld) string {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		hdr, _ := jwtParts(t, w.a.IDToken)
		return signJWT(t, key, hdr["kid"].(string), withClaims(t, w.a.IDToken, nil))
	}
	ourKeyBobsSID := func(w *endSessionWorld) string {
		return w.h.signHint(withClaims(t, w.a.IDToken, map[string]any{"sid": sidOf(t, w.bob.IDToken)}))
	}
	ourKeyNoSID := func(w *endSessionWorld) string {
		return w.h.signHint(withClaims(t, w.a.IDToken, map[string]any{"sid": nil}))
	}
	accessTokenOfA := func(w *endSessionWorld) string { return w.a.AccessToken }
	oversized := func(*endSessionWorld) string { return strings.Repeat("a", 17<<10) }
	otherCSRF := strings.Repeat("x", 43)

	for _, tc := range []struct {
		name     string
		bob      bool                            // bob logs in too
		hint     func(w *endSessionWorld) string // the id_token_hint; nil sends none
		params   url.Values                      // other end_session parameters
		method   string                          // default GET
		expire   bool                            // move the clock past the hint's expiry first
		want     int                             // end_session's answer
		confirm  *confirmation                   // then submit the confirmation page's form
		revoked  []string                        // the sessions dead afterwards: "a", "b", "bob"
		location string                          // the final redirect's path and query; default /logged-out
	}{
		{name: "valid hint revokes only its own session", hint: hintOfA, want: http.StatusFound, revoked: []string{"a"}},
		{name: "valid hint by POST", hint: hintOfA, method: http.MethodPost, want: http.StatusFound, revoked: []string{"a"}},
		{name: "valid hint keeps the state", hint: hintOfA, params: url.Values{"state": {"st-1"}}, want: http.StatusFound,
			revoked: []string{"a"}, location: "/logged-out?state=st-1"},
		{name: "valid hint with its own client_id", hint: hintOfA, params: url.Values{"client_id": {issuer.DefaultClientID}},
			want: http.StatusFound, revoked: []string{"a"}},
		{name: "expired hint asks and revokes nothing", hint: hintOfA, expire: true, want: http.StatusOK},
		{name: "expired hint, confirmed, revokes only its own session", hint: hintOfA, expire: true, want: http.StatusOK,
			confirm: &confirmation{want: http.StatusSeeOther}, revoked: []string{"a"}},
		{name: "expired hint, confirmed, keeps the state", hint: hintOfA, expire: true, params: url.Values{"state": {"st-2"}},
			want: http.StatusOK, confirm: &confirmation{want: http.StatusSeeOther}, revoked: []string{"a"}, location: "/logged-out?state=st-2"},
		{name: "confirmation without the CSRF token", hint: hintOfA, expire: true, want: http.StatusOK,
			confirm: &confirmation{csrf: "-", want: http.StatusForbidden}},
		{name: "confirmation with another CSRF token", hint: hintOfA, expire: true, want: http.StatusOK,
			confirm: &confirmation{csrf: otherCSRF, want: http.StatusForbidden}},
		{name: "confirmation without the CSRF cookie", hint: hintOfA, expire: true, want: http.StatusOK,
			confirm: &confirmation{noCookie: true, want: http.StatusForbidden}},
		{name: "confirmation from another origin", hint: hintOfA, expire: true, want: http.StatusOK,
			confirm: &confirmation{origin: "https://evil.example.com", want: http.StatusForbidden}},
		{name: "confirmation from another site", hint: hintOfA, expire: true, want: http.StatusOK,
			confirm: &confirmation{fetchSite: "cross-site", want: http.StatusForbidden}},
		{name: "missing hint asks and revokes nothing", want: http.StatusOK},
		{name: "missing hint, confirmed, revokes nothing", want: http.StatusOK, confirm: &confirmation{want: http.StatusSeeOther}},
		{name: "forged hint: alice's token with bob's sid", bob: true, hint: bobsSIDInAlicesToken, want: http.StatusBadRequest},
		{name: "forged hint: another key under our kid", hint: otherKeyUnderOurKID, want: http.StatusBadRequest},
		{name: "forged hint slipped into the confirmation form", bob: true, want: http.StatusOK,
			confirm: &confirmation{hint: bobsSIDInAlicesToken, want: http.StatusBadRequest}},
		{name: "signed hint naming another user's session", bob: true, hint: ourKeyBobsSID, want: http.StatusFound},
		{name: "signed hint naming another user's session, expired and confirmed", bob: true, hint: ourKeyBobsSID, expire: true,
			want: http.StatusOK, confirm: &confirmation{want: http.StatusSeeOther}},
		{name: "signed hint without sid asks and revokes nothing", hint: ourKeyNoSID, want: http.StatusOK,
			confirm: &confirmation{want: http.StatusSeeOther}},
		{name: "access token as hint", hint: accessTokenOfA, want: http.StatusBadRequest},
		{name: "client_id other than the hint's", hint: hintOfA, params: url.Values{"client_id": {"someone-else"}}, want: http.StatusBadRequest},
		{name: "unregistered post_logout_redirect_uri: signed out, never sent there", hint: hintOfA,
			params: url.Values{"post_logout_redirect_uri": {"https://evil.example.com/"}}, want: http.StatusFound, revoked: []string{"a"}},
		{name: "unregistered post_logout_redirect_uri, confirmed: never sent there", hint: hintOfA, expire: true,
			params: url.Values{"post_logout_redirect_uri": {"https://evil.example.com/"}}, want: http.StatusOK,
			confirm: &confirmation{want: http.StatusSeeOther}, revoked: []string{"a"}},
		{name: "oversized hint", hint: oversized, want: http.StatusBadRequest},
		{name: "wrong method", hint: hintOfA, method: http.MethodPut, want: http.StatusMethodNotAllowed},
		{name: "HEAD does not end a session", hint: hintOfA, method: http.MethodHead, want: http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
				h := newHarness(t, b, nil)
				w := &endSessionWorld{h: h, a: newSession(h.tokens(nil)), b: newSession(h.tokens(nil))}
				sessions := map[string]*session{"a": w.a, "b": w.b}
				if tc.bob {
					if err := h.st.CreateUser(ctx, &store.User{Username: "bob", PasswordHash: bobHash}); err != nil {
						t.Fatal(err)
					}
					w.bob = newSession(h.tokensOf("bob", "bob-password-123"))
					sessions["bob"] = w.bob
				}

				params := url.Values{}
				for k, v := range tc.params {
					params[k] = v
				}
				if tc.hint != nil {
					params.Set("id_token_hint", tc.hint(w))
				}
				if tc.expire {
					h.clock.Advance(time.Hour)
				}
				browser := issuertest.NewBrowser(t)
				page := browser.Do(t, endSessionRequest(t, h.url, tc.method, params))
				if got := page.Response.StatusCode; got != tc.want {
					t.Fatalf("end_session: HTTP %d, want %d\n%s", got, tc.want, page.Body)
				}
				last := page
				if tc.want == http.StatusOK {
					checkConfirmationPage(t, page, params)
				}
				if tc.confirm != nil {
					for name, s := range sessions {
						if !h.alive(s) {
							t.Fatalf("session %s died before the user confirmed", name)
						}
					}
					last = confirm(t, h, browser, page, w, tc.confirm)
					if got := last.Response.StatusCode; got != tc.confirm.want {
						t.Fatalf("confirmation: HTTP %d, want %d\n%s", got, tc.confirm.want, last.Body)
					}
				}
				if s := last.Response.StatusCode; s == http.StatusFound || s == http.StatusSeeOther {
					want := h.url + cmp.Or(tc.location, "/logged-out")
					if got := last.Response.Header.Get("Location"); got != want {
						t.Errorf("redirected to %q, want %q", got, want)
					}
				}
				if !tc.expire {
					for name, s := range sessions {
						active := h.introspect(s.AccessToken)["active"] == true
						if want := !slices.Contains(tc.revoked, name); active != want {
							t.Errorf("session %s: access token active = %v, want %v", name, active, want)
						}
					}
				}
				for name, s := range sessions {
					if got, want := h.alive(s), !slices.Contains(tc.revoked, name); got != want {
						t.Errorf("session %s: refresh works = %v, want %v", name, got, want)
					}
				}
			})
		})
	}
}

// TestEndSessionLogsNoHint ends sessions every way at debug level and
// looks for the hints in the log.
func TestEndSessionLogsNoHint(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	h := newHarness(t, sqlite(), func(c *issuer.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	fresh, expired := h.tokens(nil), h.tokens(nil)
	parts := strings.Split(fresh.IDToken, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	b := issuertest.NewBrowser(t)
	for _, hint := range []string{fresh.IDToken, forged} {
		b.Do(t, endSessionRequest(t, h.url, "", url.Values{"id_token_hint": {hint}}))
	}
	h.clock.Advance(time.Hour)
	page := b.Do(t, endSessionRequest(t, h.url, "", url.Values{"id_token_hint": {expired.IDToken}}))
	if got := confirm(t, h, b, page, nil, &confirmation{}); got.Response.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmation: HTTP %d", got.Response.StatusCode)
	}
	out := logs.String()
	for _, hint := range []string{fresh.IDToken, expired.IDToken, forged} {
		for _, part := range strings.Split(hint, ".") {
			if strings.Contains(out, part) {
				t.Fatalf("the log contains a hint:\n%s", out)
			}
		}
	}
	if n := strings.Count(out, `msg="session ended"`); n != 2 {
		t.Errorf("the log has %d sessions ended, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, `msg="end-session refused"`) {
		t.Errorf("the log lacks the refusal:\n%s", out)
	}
}

func TestSignedOutPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	resp, body := h.get("/logged-out?state=st", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "signed out") {
		t.Errorf("signed-out page: HTTP %d\n%s", resp.StatusCode, body)
	}
}

func endSessionRequest(t *testing.T, base, method string, params url.Values) *http.Request {
	t.Helper()
	var req *http.Request
	var err error
	switch method {
	case "", http.MethodGet, http.MethodHead:
		req, err = http.NewRequest(cmp.Or(method, http.MethodGet), base+"/oauth/end_session?"+params.Encode(), nil)
	default:
		req, err = http.NewRequest(method, base+"/oauth/end_session", strings.NewReader(params.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			// The client's site posts the form.
			req.Header.Set("Origin", "http://127.0.0.1:4242")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// checkConfirmationPage checks the page holds the request in a form that
// posts to /logout with a CSRF token, under the login page's standards.
func checkConfirmationPage(t *testing.T, page *issuertest.Page, params url.Values) {
	t.Helper()
	for _, k := range []string{"id_token_hint", "post_logout_redirect_uri", "state", "client_id"} {
		if got := page.Form.Get(k); got != params.Get(k) {
			t.Errorf("the form's %s = %.40q, want %.40q", k, got, params.Get(k))
		}
	}
	if page.Form.Get("csrf") == "" || !strings.Contains(page.Body, `action="/logout"`) || !strings.Contains(page.Body, `method="post"`) {
		t.Errorf("the page has no CSRF-protected form posting to /logout:\n%s", page.Body)
	}
	if strings.Contains(page.Body, "<script") {
		t.Error("the page has a script")
	}
	h := page.Response.Header
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self'") ||
		!strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "same-origin" {
		t.Errorf("Cache-Control %q, Referrer-Policy %q", h.Get("Cache-Control"), h.Get("Referrer-Policy"))
	}
}

// confirm submits the confirmation page's form as c says.
func confirm(t *testing.T, h *harness, browser *issuertest.Browser, page *issuertest.Page, w *endSessionWorld, c *confirmation) *issuertest.Page {
	t.Helper()
	form := url.Values{}
	for k, v := range page.Form {
		form[k] = v
	}
	if c.hint != nil {
		form.Set("id_token_hint", c.hint(w))
	}
	switch c.csrf {
	case "":
	case "-":
		form.Del("csrf")
	default:
		form.Set("csrf", c.csrf)
	}
	req, err := http.NewRequest(http.MethodPost, h.url+"/logout", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", cmp.Or(c.origin, h.url))
	req.Header.Set("Sec-Fetch-Site", cmp.Or(c.fetchSite, "same-origin"))
	if c.noCookie {
		browser = issuertest.NewBrowser(t)
	}
	return browser.Do(t, req)
}
