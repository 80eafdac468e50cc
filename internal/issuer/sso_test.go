package issuer_test

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/browsersession"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// ssoHarness is a provider with alice, the broker's app and three apps of
// a team's: two first-party public apps and a third-party one.
type ssoHarness struct {
	*harness
}

// The team's apps: public clients with one redirect URI each.
const (
	appWeb   = "web"
	appDocs  = "docs"
	appThird = "partner"
)

func appRedirect(app string) string {
	return "http://127.0.0.1:5" + map[string]string{appWeb: "001", appDocs: "002", appThird: "003"}[app] + "/cb"
}

func newSSOHarness(t *testing.T, b storetest.Backend) *ssoHarness {
	t.Helper()
	return newSSOHarnessWith(t, b, nil)
}

// newSSOHarnessWith is newSSOHarness with the provider's configuration
// changed by mod.
func newSSOHarnessWith(t *testing.T, b storetest.Backend, mod func(*issuer.Config)) *ssoHarness {
	t.Helper()
	h := &ssoHarness{newHarness(t, b, mod)}
	for _, app := range []string{appWeb, appDocs, appThird} {
		c := &store.Client{ID: app, Public: true, RedirectURIs: []string{appRedirect(app)}, ThirdParty: app == appThird,
			DisplayName: "The " + app + " app"}
		if err := h.st.AddApp(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// appAuthorizeURL is an authorize URL of a team app, with PKCE; extra
// parameters replace the defaults.
func (h *ssoHarness) appAuthorizeURL(app, verifier string, extra url.Values) string {
	q := url.Values{
		"client_id":             {app},
		"response_type":         {"code"},
		"redirect_uri":          {appRedirect(app)},
		"scope":                 {"openid profile"},
		"state":                 {"state-of-" + app},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		q[k] = v
	}
	return h.url + "/authorize?" + q.Encode()
}

// appExchange redeems a team app's code (a public client: no secret).
func (h *ssoHarness) appExchange(app, code, verifier string) tokenResponse {
	h.t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect(app)},
		"code_verifier": {verifier}, "client_id": {app}}
	resp, err := http.PostForm(h.url+"/oauth/token", form)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		h.t.Fatalf("token response is not JSON (HTTP %d): %s", resp.StatusCode, body)
	}
	if tr.status = resp.StatusCode; tr.status != http.StatusOK {
		h.t.Fatalf("%s's token exchange: HTTP %d %s: %s", app, tr.status, tr.Error, tr.ErrorDescription)
	}
	return tr
}

// codeOf checks that a page is the redirect back to app with a code, the
// state and the issuer (RFC 9207), and returns the code.
func (h *ssoHarness) codeOf(t *testing.T, app string, p *issuertest.Page) string {
	t.Helper()
	loc, err := issuertest.RedirectOf(p)
	if err != nil {
		t.Fatalf("%s: %v", app, err)
	}
	q := loc.Query()
	if !strings.HasPrefix(loc.String(), appRedirect(app)+"?") || q.Get("code") == "" || q.Get("state") != "state-of-"+app || q.Get("iss") != h.url {
		t.Fatalf("%s: redirect %s: want %s with a code, the state and iss=%s", app, loc, appRedirect(app), h.url)
	}
	return q.Get("code")
}

// errorOf checks that a page is the redirect back to app with error want,
// the state and the issuer.
func (h *ssoHarness) errorOf(t *testing.T, app string, p *issuertest.Page, want string) {
	t.Helper()
	loc, err := issuertest.RedirectOf(p)
	if err != nil {
		t.Fatalf("%s: %v", app, err)
	}
	q := loc.Query()
	if !strings.HasPrefix(loc.String(), appRedirect(app)+"?") || q.Get("error") != want || q.Get("code") != "" ||
		q.Get("state") != "state-of-"+app || q.Get("iss") != h.url {
		t.Fatalf("%s: redirect %s: want error=%s with the state and iss=%s", app, loc, want, h.url)
	}
}

// signIn logs alice in to app in browser b with her password and returns
// the app's tokens.
func (h *ssoHarness) signIn(t *testing.T, b *issuertest.Browser, app string) tokenResponse {
	t.Helper()
	v := oauth2.GenerateVerifier()
	page := b.Open(t, h.appAuthorizeURL(app, v, nil))
	if !isPasswordPage(page) {
		t.Fatalf("%s: want the password page, got HTTP %d\n%s", app, page.Response.StatusCode, page.Body)
	}
	return h.appExchange(app, h.codeOf(t, app, b.Submit(t, page, "alice", alicePassword)), v)
}

// ssoLogin opens app's authorize URL in b, expects its code without a
// page and returns the tokens.
func (h *ssoHarness) ssoLogin(t *testing.T, b *issuertest.Browser, app string, extra url.Values) tokenResponse {
	t.Helper()
	v := oauth2.GenerateVerifier()
	return h.appExchange(app, h.codeOf(t, app, b.Open(t, h.appAuthorizeURL(app, v, extra))), v)
}

func isPasswordPage(p *issuertest.Page) bool {
	return p.Response.StatusCode == http.StatusOK && strings.Contains(p.Body, `type="password"`) && p.Form.Get("authRequestID") != ""
}

// idClaims decodes an ID token's claims (the token endpoint just issued it
// over a loopback connection; other tests verify signatures).
func idClaims(t *testing.T, tr tokenResponse) map[string]any {
	t.Helper()
	_, claims := jwtParts(t, tr.IDToken)
	return claims
}

// TestSingleSignOn: after a password login to one app, another first-party
// app's login completes without a page, with the first login's auth_time
// and amr; a second browser has no session; the broker's app gets one
// "Continue as" page; prompt=none, prompt=login and max_age are obeyed.
func TestSingleSignOn(t *testing.T) {
	t.Parallel()
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			h := newSSOHarness(t, b)
			alice := issuertest.NewBrowser(t)
			first := idClaims(t, h.signIn(t, alice, appWeb))
			authTime := first["auth_time"]
			if got := anySlice(first["amr"]); !slices.Equal(got, []string{"pwd"}) {
				t.Fatalf("first login's amr = %v", got)
			}
			h.clock.Advance(time.Minute)

			t.Run("another first-party app, no page", func(t *testing.T) {
				c := idClaims(t, h.ssoLogin(t, alice, appDocs, nil))
				if c["aud"] != appDocs && !slices.Contains(anySlice(c["aud"]), appDocs) {
					t.Errorf("aud = %v, want %s", c["aud"], appDocs)
				}
				if c["auth_time"] != authTime || c["sub"] != first["sub"] {
					t.Errorf("auth_time %v sub %v, want the first login's %v %v", c["auth_time"], c["sub"], authTime, first["sub"])
				}
				if got := anySlice(c["amr"]); !slices.Equal(got, []string{"pwd"}) {
					t.Errorf("amr = %v, want [pwd]", got)
				}
			})
			t.Run("prompt=none with the session", func(t *testing.T) {
				h.ssoLogin(t, alice, appDocs, url.Values{"prompt": {"none"}})
			})
			t.Run("another browser has no session", func(t *testing.T) {
				other := issuertest.NewBrowser(t)
				if p := other.Open(t, h.appAuthorizeURL(appDocs, oauth2.GenerateVerifier(), nil)); !isPasswordPage(p) {
					t.Fatalf("want the password page, got HTTP %d\n%s", p.Response.StatusCode, p.Body)
				}
				p := other.Open(t, h.appAuthorizeURL(appDocs, oauth2.GenerateVerifier(), url.Values{"prompt": {"none"}}))
				h.errorOf(t, appDocs, p, "login_required")
			})
			t.Run("prompt=login asks the password", func(t *testing.T) {
				p := alice.Open(t, h.appAuthorizeURL(appDocs, oauth2.GenerateVerifier(), url.Values{"prompt": {"login"}}))
				if !isPasswordPage(p) {
					t.Fatalf("want the password page, got HTTP %d\n%s", p.Response.StatusCode, p.Body)
				}
			})
			t.Run("max_age", func(t *testing.T) {
				p := alice.Open(t, h.appAuthorizeURL(appDocs, oauth2.GenerateVerifier(), url.Values{"max_age": {"30"}}))
				if !isPasswordPage(p) {
					t.Fatalf("max_age=30 a minute after the login: want the password page, got HTTP %d\n%s", p.Response.StatusCode, p.Body)
				}
				h.ssoLogin(t, alice, appDocs, url.Values{"max_age": {"3600"}})
				p = alice.Open(t, h.appAuthorizeURL(appDocs, oauth2.GenerateVerifier(), url.Values{"max_age": {"30"}, "prompt": {"none"}}))
				h.errorOf(t, appDocs, p, "login_required")
			})
			t.Run("nsauth-cli: one Continue page", func(t *testing.T) {
				v := oauth2.GenerateVerifier()
				p := alice.Open(t, h.authorizeURL(v, nil))
				if p.Response.StatusCode != http.StatusOK || strings.Contains(p.Body, `type="password"`) ||
					!strings.Contains(p.Body, `action="/login/continue"`) || !strings.Contains(p.Body, "Continue as alice") {
					t.Fatalf("want the Continue page, got HTTP %d\n%s", p.Response.StatusCode, p.Body)
				}
				if n := strings.Count(p.Body, "<button"); n != 1 {
					t.Errorf("the Continue page has %d buttons, want 1", n)
				}
				continuePage := p
				res := alice.Post(t, p, "/login/continue", nil)
				loc, err := issuertest.RedirectOf(res)
				if err != nil {
					t.Fatal(err)
				}
				if loc.Query().Get("iss") != h.url || loc.Query().Get("state") != "the-state" {
					t.Errorf("redirect %s lacks iss or state", loc)
				}
				tr := h.exchange(loc.Query().Get("code"), v)
				if tr.status != http.StatusOK {
					t.Fatalf("exchange: HTTP %d %s", tr.status, tr.Error)
				}
				if c := idClaims(t, tr); c["auth_time"] != authTime {
					t.Errorf("auth_time %v, want %v", c["auth_time"], authTime)
				}
				// Never without the click.
				p = alice.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), url.Values{"prompt": {"none"}}))
				if loc, err := issuertest.RedirectOf(p); err != nil || loc.Query().Get("error") != "interaction_required" {
					t.Errorf("prompt=none for nsauth-cli: %v %v, want interaction_required", loc, err)
				}
				// Another browser cannot click it.
				other := issuertest.NewBrowser(t)
				if res := other.Post(t, continuePage, "/login/continue", nil); res.Response.StatusCode < 400 {
					t.Errorf("another browser's post of the Continue page: HTTP %d", res.Response.StatusCode)
				}
			})
			t.Run("the session's grants are recorded", func(t *testing.T) {
				sessions, err := h.st.ListSessions(ctx, h.alice.ID)
				if err != nil || len(sessions) != 1 {
					t.Fatalf("sessions = %v, %v; want one", sessions, err)
				}
				grants, err := h.st.SessionGrants(ctx, sessions[0].ID)
				if err != nil {
					t.Fatal(err)
				}
				apps := map[string]int{}
				for _, g := range grants {
					apps[g.ClientID]++
					if g.Offline != (g.ClientID == h.client) {
						t.Errorf("grant of %s: Offline %v", g.ClientID, g.Offline)
					}
				}
				if apps[appWeb] != 1 || apps[appDocs] < 3 || apps[h.client] != 1 {
					t.Errorf("grants by app = %v", apps)
				}
			})
		})
	}
}

func anySlice(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestSessionIsTruthful: a session started with a password stays a
// password session (amr, auth_time) even after the user adds a second
// factor; a fresh login with prompt=login gets a fresh auth_time.
func TestSessionIsTruthful(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, sqlite())
	alice := issuertest.NewBrowser(t)
	first := idClaims(t, h.signIn(t, alice, appWeb))
	if err := h.st.EnrollTOTP(ctx, h.alice.ID, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", 0, nil); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour)
	c := idClaims(t, h.ssoLogin(t, alice, appDocs, nil))
	if got := anySlice(c["amr"]); !slices.Equal(got, []string{"pwd"}) || c["auth_time"] != first["auth_time"] {
		t.Errorf("amr %v auth_time %v, want [pwd] %v", got, c["auth_time"], first["auth_time"])
	}
	// prompt=login: the password, then the second factor she now has.
	p := alice.Open(t, h.appAuthorizeURL(appDocs, oauth2.GenerateVerifier(), url.Values{"prompt": {"login"}}))
	if !isPasswordPage(p) {
		t.Fatalf("want the password page, got HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
	if res := alice.Submit(t, p, "alice", alicePassword); res.Response.StatusCode != http.StatusOK || !strings.Contains(res.Body, `action="/login/mfa"`) {
		t.Errorf("after the password: want the second-factor page, got HTTP %d\n%s", res.Response.StatusCode, res.Body)
	}
}

// TestSessionBoundToBrowser: the session cookie copied into another
// browser, without the device cookie it is bound to, is not honoured; a
// disabled user's session is not honoured, and stays ended when the user
// is enabled again.
func TestSessionBoundToBrowser(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, sqlite())
	alice := issuertest.NewBrowser(t)
	h.signIn(t, alice, appWeb)
	u, _ := url.Parse(h.url)
	var sessionCookie *http.Cookie
	for _, c := range alice.Client.Jar.Cookies(u) {
		if c.Name == "nsauth_session" {
			sessionCookie = c
		}
	}
	if sessionCookie == nil {
		t.Fatal("no nsauth_session cookie after the login")
	}
	thief := issuertest.NewBrowser(t)
	thief.Client.Jar.SetCookies(u, []*http.Cookie{sessionCookie})
	if p := thief.Open(t, h.appAuthorizeURL(appDocs, oauth2.GenerateVerifier(), nil)); !isPasswordPage(p) {
		t.Fatalf("the copied session cookie was honoured: HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
	h.ssoLogin(t, alice, appDocs, nil) // the owner's browser still has it

	if err := h.st.SetDisabled(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	if p := alice.Open(t, h.appAuthorizeURL(appDocs, oauth2.GenerateVerifier(), nil)); !isPasswordPage(p) {
		t.Fatalf("a disabled user's session was honoured: HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
	if err := h.st.SetDisabled(ctx, "alice", false); err != nil {
		t.Fatal(err)
	}
	if p := alice.Open(t, h.appAuthorizeURL(appDocs, oauth2.GenerateVerifier(), nil)); !isPasswordPage(p) {
		t.Fatalf("the session survived disabling the user: HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
}

// TestStolenCookieKeepsNoSessionAlive: the session cookie copied into
// another browser is refused, and its use there is no sign of life: only
// the victim's own browser extends the idle timeout, so the session ends
// one idle timeout after the victim last used it, however often the
// copy is presented.
func TestStolenCookieKeepsNoSessionAlive(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newSSOHarness(t, b)
		alice := issuertest.NewBrowser(t)
		h.signIn(t, alice, appWeb)
		u, _ := url.Parse(h.url)
		thief := issuertest.NewBrowser(t)
		for _, c := range alice.Client.Jar.Cookies(u) {
			if c.Name == "nsauth_session" {
				thief.Client.Jar.SetCookies(u, []*http.Cookie{c})
			}
		}
		idle := browsersession.DefaultIdleTimeout
		h.clock.Advance(idle / 2)
		h.ssoLogin(t, alice, appDocs, nil) // her own use: the session lives on
		lastUse := h.clock.Now()
		list, err := h.st.ListSessions(ctx, h.alice.ID)
		if err != nil || len(list) != 1 {
			t.Fatalf("alice's sessions: %+v, %v", list, err)
		}
		sess := list[0]

		// The thief presents the copy every quarter of the idle timeout,
		// the last a second before the session idles out.
		for _, at := range []time.Duration{idle / 4, idle / 2, idle * 3 / 4, idle - time.Second} {
			h.clock.Advance(lastUse.Add(at).Sub(h.clock.Now()))
			if p := thief.Open(t, h.appAuthorizeURL(appWeb, oauth2.GenerateVerifier(), nil)); !isPasswordPage(p) {
				t.Fatalf("the copied session cookie was honoured: HTTP %d\n%s", p.Response.StatusCode, p.Body)
			}
			if got, err := h.st.SessionByID(ctx, sess.ID); err != nil || !got.LastSeenAt.Equal(lastUse) {
				t.Fatalf("after the thief's request %v past her last use: %+v, %v; want it last seen at %v", at, got, err, lastUse)
			}
		}
		h.clock.Advance(2 * time.Second) // a second past her last use's idle timeout
		if p := alice.Open(t, h.appAuthorizeURL(appWeb, oauth2.GenerateVerifier(), nil)); !isPasswordPage(p) {
			t.Fatalf("the session outlived its idle timeout: HTTP %d\n%s", p.Response.StatusCode, p.Body)
		}
	})
}

// TestThirdPartyConsent: a third-party app gets a consent page listing its
// scopes, after the password and within a session, until allowed; then
// never again; denied, the app gets access_denied; prompt=none never
// shows the page.
func TestThirdPartyConsent(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, sqlite())
	alice := issuertest.NewBrowser(t)
	v := oauth2.GenerateVerifier()
	scopes := url.Values{"scope": {"openid email"}}
	p := alice.Open(t, h.appAuthorizeURL(appThird, v, scopes))
	p = alice.Submit(t, p, "alice", alicePassword)
	if p.Response.StatusCode != http.StatusOK || !strings.Contains(p.Body, `action="/login/consent"`) ||
		!strings.Contains(p.Body, "<code>email</code>") || !strings.Contains(p.Body, "The partner app") {
		t.Fatalf("after the password: want the consent page, got HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
	h.errorOf(t, appThird, alice.Post(t, p, "/login/consent", url.Values{"decision": {"deny"}}), "access_denied")

	// Within the session now: the page again, no password.
	p = alice.Open(t, h.appAuthorizeURL(appThird, v, scopes))
	if p.Response.StatusCode != http.StatusOK || !strings.Contains(p.Body, `action="/login/consent"`) {
		t.Fatalf("within the session: want the consent page, got HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
	h.errorOf(t, appThird, alice.Open(t, h.appAuthorizeURL(appThird, v, url.Values{"scope": {"openid email"}, "prompt": {"none"}})), "consent_required")
	h.appExchange(appThird, h.codeOf(t, appThird, alice.Post(t, p, "/login/consent", url.Values{"decision": {"allow"}})), v)

	// Allowed once: never asked again for those scopes.
	h.ssoLogin(t, alice, appThird, scopes)
	h.ssoLogin(t, alice, appThird, url.Values{"scope": {"openid email"}, "prompt": {"none"}})
	if got, err := h.st.ConsentedScopes(ctx, h.alice.ID, appThird); err != nil || !slices.Contains(got, "email") {
		t.Errorf("consented scopes = %v, %v", got, err)
	}
	// Asking for more scopes, or for consent again (prompt=consent), shows
	// the page once more.
	for _, extra := range []url.Values{{"scope": {"openid email profile"}}, {"scope": {"openid email"}, "prompt": {"consent"}}} {
		v := oauth2.GenerateVerifier()
		p := alice.Open(t, h.appAuthorizeURL(appThird, v, extra))
		if p.Response.StatusCode != http.StatusOK || !strings.Contains(p.Body, `action="/login/consent"`) {
			t.Fatalf("%v: want the consent page, got HTTP %d\n%s", extra, p.Response.StatusCode, p.Body)
		}
		h.appExchange(appThird, h.codeOf(t, appThird, alice.Post(t, p, "/login/consent", url.Values{"decision": {"allow"}})), v)
	}
	// A first-party app never shows it.
	h.ssoLogin(t, alice, appDocs, url.Values{"prompt": {"consent"}})
}

// TestSingleSignOnInChromium: in a real browser, with the apps on another
// site (localhost) than the provider (127.0.0.1), the session and the
// device cookie it is bound to reach the provider on the apps' top-level
// navigations (SameSite=Lax): after a password login to one app, a link
// from the other app's site signs in without a page, prompt=none too.
func TestSingleSignOnInChromium(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, sqlite())
	// The apps' site: a page linking to an authorize URL, and the callback.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /start", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><a id="go" href="`+html.EscapeString(r.URL.Query().Get("to"))+`">Sign in</a>`)
	})
	mux.HandleFunc("GET /cb", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><p id="cb">`+html.EscapeString(r.URL.RawQuery)+`</p>`)
	})
	site := httptest.NewServer(mux)
	t.Cleanup(site.Close)
	base := strings.Replace(site.URL, "127.0.0.1", "localhost", 1)
	for _, app := range []string{"site-a", "site-b"} {
		if err := h.st.AddApp(ctx, &store.Client{ID: app, Public: true, RedirectURIs: []string{base + "/cb"}}); err != nil {
			t.Fatal(err)
		}
	}
	authorize := func(app string, extra url.Values) string {
		q := url.Values{"client_id": {app}, "response_type": {"code"}, "redirect_uri": {base + "/cb"}, "scope": {"openid"},
			"state": {"s-" + app}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
		for k, v := range extra {
			q[k] = v
		}
		return base + "/start?" + url.Values{"to": {h.url + "/authorize?" + q.Encode()}}.Encode()
	}
	callback := func(c *issuertest.Chromium, app string) {
		t.Helper()
		raw := issuertest.Get(t, c, chromedp.Text(chromedp.CSS("#cb")))
		q, _ := url.ParseQuery(raw)
		if q.Get("code") == "" || q.Get("state") != "s-"+app || q.Get("iss") != h.url {
			t.Fatalf("%s's callback got %q, want a code, its state and iss", app, raw)
		}
	}

	c := issuertest.NewChromium(t, 90*time.Second)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	c.Do(t, "signing in to site-a with the password",
		chromedp.Navigate(authorize("site-a", nil)),
		chromedp.Click(css("#go")),
		chromedp.WaitVisible(css("#password")),
		chromedp.SendKeys(css("#username"), "alice"),
		chromedp.SendKeys(css("#password"), alicePassword),
		chromedp.Click(css("button[type=submit]")),
		chromedp.WaitVisible(css("#cb")),
	)
	callback(c, "site-a")
	for _, extra := range []url.Values{nil, {"prompt": {"none"}}} {
		c.Do(t, "signing in to site-b from its site",
			chromedp.Navigate(authorize("site-b", extra)),
			chromedp.Click(css("#go")),
			chromedp.WaitVisible(css("#cb")),
		)
		callback(c, "site-b")
	}
}

// TestSessionReplacedAndEnded: a login as another user in the same browser
// replaces the session, and the replaced session ends (recorded as
// session.ended, reason replaced) while the tokens its apps got stay
// valid; a password login of the same user replaces and ends the
// session too; changing the user's password ends it.
func TestSessionReplacedAndEnded(t *testing.T) {
	t.Parallel()
	var trail *auditTrail
	h := newSSOHarnessWith(t, sqlite(), func(c *issuer.Config) { trail = withAudit(t, c) })
	hash, err := password.Hash("bob-password-123")
	if err != nil {
		t.Fatal(err)
	}
	bob := &store.User{Username: "bob", PasswordHash: hash}
	if err := h.st.CreateUser(ctx, bob); err != nil {
		t.Fatal(err)
	}
	b := issuertest.NewBrowser(t)
	aliceTokens := h.signIn(t, b, appWeb)
	aliceSessions, err := h.st.ListSessions(ctx, h.alice.ID)
	if err != nil || len(aliceSessions) != 1 {
		t.Fatalf("alice's sessions: %+v, %v", aliceSessions, err)
	}
	replaced := aliceSessions[0]
	h.clock.Advance(time.Second)

	v := oauth2.GenerateVerifier()
	p := b.Open(t, h.appAuthorizeURL(appDocs, v, url.Values{"prompt": {"login"}}))
	if !isPasswordPage(p) {
		t.Fatalf("prompt=login: want the password page, got HTTP %d", p.Response.StatusCode)
	}
	if c := idClaims(t, h.appExchange(appDocs, h.codeOf(t, appDocs, b.Submit(t, p, "bob", "bob-password-123")), v)); c["sub"] != bob.ID {
		t.Fatalf("sub = %v, want bob's", c["sub"])
	}
	if c := idClaims(t, h.ssoLogin(t, b, appWeb, nil)); c["sub"] != bob.ID {
		t.Fatalf("after bob's login the session is %v's, want bob's", c["sub"])
	}

	// Alice's session ended, and nothing else: the web app's grant
	// within it is not revoked.
	if got, err := h.st.ListSessions(ctx, h.alice.ID); err != nil || len(got) != 0 {
		t.Errorf("alice's sessions after bob's login: %+v, %v; want none", got, err)
	}
	if got, err := h.st.SessionByID(ctx, replaced.ID); err != nil || !got.EndedAt.Equal(h.clock.Now()) {
		t.Errorf("the replaced session: %+v, %v; want it ended at bob's login", got, err)
	}
	grants, err := h.st.SessionGrants(ctx, replaced.ID)
	if err != nil || len(grants) != 1 || grants[0].ClientID != appWeb || grants[0].Revoked {
		t.Errorf("the replaced session's grants: %+v, %v; want the web app's, not revoked", grants, err)
	}
	if status, _ := h.userinfo(aliceTokens.AccessToken); status != http.StatusOK {
		t.Errorf("alice's access token after the replacement: userinfo HTTP %d", status)
	}
	events, _ := trail.records(t)
	var ended []audit.Event
	for _, e := range events {
		if e.Type == audit.SessionEnded {
			ended = append(ended, e)
		}
	}
	if len(ended) != 1 || ended[0].Reason != "replaced" || ended[0].Target != replaced.ID || ended[0].Subject != h.alice.ID ||
		ended[0].Username != "alice" || ended[0].Outcome != audit.Success {
		t.Errorf("session.ended events: %+v; want one for alice's session, reason replaced", ended)
	}

	// Bob's password again (prompt=login): his first session is replaced
	// and ends too.
	bobSessions, err := h.st.ListSessions(ctx, bob.ID)
	if err != nil || len(bobSessions) != 1 {
		t.Fatalf("bob's sessions: %+v, %v", bobSessions, err)
	}
	h.clock.Advance(time.Second)
	v = oauth2.GenerateVerifier()
	p = b.Open(t, h.appAuthorizeURL(appDocs, v, url.Values{"prompt": {"login"}}))
	if !isPasswordPage(p) {
		t.Fatalf("prompt=login: want the password page, got HTTP %d", p.Response.StatusCode)
	}
	h.appExchange(appDocs, h.codeOf(t, appDocs, b.Submit(t, p, "bob", "bob-password-123")), v)
	if got, err := h.st.ListSessions(ctx, bob.ID); err != nil || len(got) != 1 || got[0].ID == bobSessions[0].ID {
		t.Errorf("bob's sessions after his second login: %+v, %v; want only the new one", got, err)
	}

	if err := h.st.SetPassword(ctx, "bob", hash); err != nil {
		t.Fatal(err)
	}
	if p := b.Open(t, h.appAuthorizeURL(appWeb, oauth2.GenerateVerifier(), nil)); !isPasswordPage(p) {
		t.Fatalf("the session survived a password change: HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
}

// TestSingleSignOnAcrossReplicas: a session started on one replica serves
// the next app's login on another, and the Continue page posted there.
func TestSingleSignOnAcrossReplicas(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newSSOHarness(t, b)
		other := h.replica(nil)
		br := issuertest.NewBrowser(t)
		h.signIn(t, br, appWeb)
		br.Rewrite = func(u *url.URL) {
			if u.Host == h.host() {
				u.Host = other
			}
		}
		h.ssoLogin(t, br, appDocs, nil)
		v := oauth2.GenerateVerifier()
		p := br.Open(t, h.authorizeURL(v, nil))
		if !strings.Contains(p.Body, `action="/login/continue"`) {
			t.Fatalf("want the Continue page on the other replica, got HTTP %d\n%s", p.Response.StatusCode, p.Body)
		}
		br.Rewrite = nil
		loc, err := issuertest.RedirectOf(br.Post(t, p, "/login/continue", nil))
		if err != nil {
			t.Fatal(err)
		}
		if tr := h.exchange(loc.Query().Get("code"), v); tr.status != http.StatusOK {
			t.Fatalf("exchange: HTTP %d %s", tr.status, tr.Error)
		}
	})
}
