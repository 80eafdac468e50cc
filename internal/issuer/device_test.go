package issuer_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// deviceAuth is the device authorization endpoint's answer.
type deviceAuth struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
	Error                   string `json:"error"`
}

// newLoggedHarness is a harness whose issuer logs into the returned
// buffer.
func newLoggedHarness(t *testing.T, b storetest.Backend, mod func(*issuer.Config)) (*harness, *servetest.Buffer) {
	t.Helper()
	logs := &servetest.Buffer{}
	h := newHarness(t, b, func(c *issuer.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if mod != nil {
			mod(c)
		}
	})
	return h, logs
}

// startDevice asks for a device authorization as a client does.
func (h *harness) startDevice(scope string) deviceAuth {
	h.t.Helper()
	resp, body := h.post("/oauth/device_authorization", url.Values{"scope": {scope}}, true)
	var d deviceAuth
	if err := json.Unmarshal(body, &d); err != nil || resp.StatusCode != http.StatusOK {
		h.t.Fatalf("device authorization: HTTP %d %s (%v)", resp.StatusCode, body, err)
	}
	return d
}

func (h *harness) pollDevice(deviceCode string) tokenResponse {
	h.t.Helper()
	return h.token(url.Values{"grant_type": {deviceGrant}, "device_code": {deviceCode}})
}

// wantPoll polls and checks the error (empty: tokens).
func (h *harness) wantPoll(deviceCode, wantErr string) tokenResponse {
	h.t.Helper()
	tr := h.pollDevice(deviceCode)
	if tr.Error != wantErr {
		h.t.Fatalf("poll: HTTP %d error %q (%s), want %q", tr.status, tr.Error, tr.ErrorDescription, wantErr)
	}
	if wantErr == "" && (tr.status != http.StatusOK || tr.AccessToken == "") {
		h.t.Fatalf("poll: HTTP %d without tokens", tr.status)
	}
	if wantErr != "" && tr.status != http.StatusBadRequest {
		h.t.Fatalf("poll: HTTP %d for %s, want 400", tr.status, wantErr)
	}
	return tr
}

// enterCode opens the code-entry page in b and submits code.
func (h *harness) enterCode(b *issuertest.Browser, code string) *issuertest.Page {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+"/device", nil)
	page := b.Do(h.t, req)
	if page.Response.StatusCode != http.StatusOK || page.Form.Get("csrf") == "" {
		h.t.Fatalf("code entry page: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	return h.postForm(b, "/device", url.Values{"csrf": {page.Form.Get("csrf")}, "user_code": {code}})
}

func (h *harness) postForm(b *issuertest.Browser, path string, form url.Values) *issuertest.Page {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.Do(h.t, req)
}

// approvalPage enters code, logs alice in and returns the approval page.
func (h *harness) approvalPage(b *issuertest.Browser, code string) *issuertest.Page {
	h.t.Helper()
	login := h.enterCode(b, code)
	if login.URL.Path != "/login" || login.Form.Get("authRequestID") == "" {
		h.t.Fatalf("code entry did not lead to the login page: %s HTTP %d\n%s", login.URL, login.Response.StatusCode, login.Body)
	}
	if !strings.Contains(login.Body, "Sign in to connect a device") {
		h.t.Fatalf("the login page does not say it is for a device:\n%s", login.Body)
	}
	page := b.Submit(h.t, login, "alice", alicePassword)
	if page.Response.StatusCode != http.StatusOK || page.Form.Get("ticket") == "" {
		h.t.Fatalf("login did not lead to the approval page: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	return page
}

func decide(h *harness, b *issuertest.Browser, page *issuertest.Page, decision string) *issuertest.Page {
	h.t.Helper()
	form := url.Values{"ticket": {page.Form.Get("ticket")}, "csrf": {page.Form.Get("csrf")}, "decision": {decision}}
	return h.postForm(b, "/device/decision", form)
}

var userCodeShape = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

// TestDeviceFlowInChromium runs the whole device flow on each backend: a
// client asks for a device authorization over HTTP and polls; the user,
// in headless Chromium, opens the verification URI the client shows,
// confirms the code, logs in and approves; the client's next poll gets
// tokens, once.
func TestDeviceFlowInChromium(t *testing.T) {
	t.Parallel()
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			h, logs := newLoggedHarness(t, b, nil)
			d := h.startDevice("openid profile offline_access")
			if !userCodeShape.MatchString(d.UserCode) || d.ExpiresIn != 600 || d.Interval != 5 ||
				d.VerificationURI != h.url+"/device" || d.VerificationURIComplete != h.url+"/device?user_code="+d.UserCode {
				t.Fatalf("device authorization = %+v", d)
			}
			h.wantPoll(d.DeviceCode, "authorization_pending")

			c := issuertest.NewChromium(t, 90*time.Second)
			css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
			c.Do(t, "opening the verification URI",
				chromedp.Navigate(d.VerificationURIComplete),
				chromedp.WaitVisible(css("#user_code")),
			)
			if prefilled := issuertest.Get(t, c, chromedp.Value(css("#user_code"))); prefilled != d.UserCode {
				t.Fatalf("code field = %q, want %q filled in", prefilled, d.UserCode)
			}
			// The link fills the code in and does nothing more.
			h.clock.Advance(5 * time.Second)
			h.wantPoll(d.DeviceCode, "authorization_pending")
			c.Do(t, "confirming the code, logging in",
				chromedp.Click(css("button[type=submit]")),
				chromedp.WaitVisible(css("#password")),
				chromedp.SendKeys(css("#username"), "alice"),
				chromedp.SendKeys(css("#password"), alicePassword),
				chromedp.Click(css("button[type=submit]")),
				chromedp.WaitVisible(css("#approve")),
			)
			client := issuertest.Get(t, c, chromedp.Text(css("#device-client")))
			scopes := issuertest.Get(t, c, chromedp.Text(css("#device-scopes")))
			if client != h.client || !strings.Contains(scopes, "offline_access") || !strings.Contains(scopes, "profile") {
				t.Fatalf("approval page names client %q and scopes %q", client, scopes)
			}
			h.clock.Advance(5 * time.Second)
			h.wantPoll(d.DeviceCode, "authorization_pending")
			c.Do(t, "approving",
				chromedp.Click(css("#approve")),
				chromedp.WaitVisible(css("#message")),
			)
			if result := issuertest.Get(t, c, chromedp.Text(css("main"))); !strings.Contains(result, "Device approved") {
				t.Fatalf("result page: %q", result)
			}

			h.clock.Advance(5 * time.Second)
			tr := h.wantPoll(d.DeviceCode, "")
			_, claims := jwtParts(t, tr.AccessToken)
			if claims["sub"] != h.alice.ID || claims["client_id"] != h.client || tr.RefreshToken == "" || tr.IDToken == "" {
				t.Fatalf("tokens: claims %v, refresh %v, id token %v", claims, tr.RefreshToken != "", tr.IDToken != "")
			}
			_, idClaims := jwtParts(t, tr.IDToken)
			if amr, _ := idClaims["amr"].([]any); !slices.Contains(amr, any("pwd")) {
				t.Errorf("ID token amr = %v", idClaims["amr"])
			}
			if got := h.refresh(tr.RefreshToken); got.status != http.StatusOK {
				t.Fatalf("refreshing the device's token: HTTP %d %s", got.status, got.Error)
			}

			// Single use: the device code does not give tokens twice, and
			// the approved user code cannot be entered again.
			h.clock.Advance(5 * time.Second)
			h.wantPoll(d.DeviceCode, "invalid_grant")
			again := h.enterCode(issuertest.NewBrowser(t), d.UserCode)
			if again.Response.StatusCode != http.StatusBadRequest || !strings.Contains(again.Body, "not valid") {
				t.Fatalf("entering the approved code again: HTTP %d\n%s", again.Response.StatusCode, again.Body)
			}
			checkNoSecrets(t, logs.String(), d.DeviceCode, d.UserCode, strings.ReplaceAll(d.UserCode, "-", ""),
				tr.AccessToken, tr.RefreshToken, tr.IDToken)
		})
	}
}

func checkNoSecrets(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	if logs == "" {
		t.Fatal("nothing was logged")
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("a secret (%.6s…) reached the logs:\n%s", s, logs)
		}
	}
}

// TestDeviceFlowOutcomes covers what can happen to a device authorization
// besides approval, over HTTP as a browser without JavaScript sends it.
func TestDeviceFlowOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, h *harness, d deviceAuth)
		// metrics, when set, is exactly what the Observer is told.
		metrics map[string]int
	}{
		{name: "denial ends the login", run: func(t *testing.T, h *harness, d deviceAuth) {
			b := issuertest.NewBrowser(t)
			res := decide(h, b, h.approvalPage(b, d.UserCode), "deny")
			if res.Response.StatusCode != http.StatusOK || !strings.Contains(res.Body, "denied") {
				t.Fatalf("deny: HTTP %d\n%s", res.Response.StatusCode, res.Body)
			}
			h.wantPoll(d.DeviceCode, "access_denied")
			h.clock.Advance(time.Minute)
			h.wantPoll(d.DeviceCode, "access_denied")
			if again := h.enterCode(b, d.UserCode); again.Response.StatusCode != http.StatusBadRequest {
				t.Fatalf("entering a denied code: HTTP %d", again.Response.StatusCode)
			}
		}},
		{name: "expiry", run: func(t *testing.T, h *harness, d deviceAuth) {
			h.clock.Advance(issuer.DeviceCodeTTL - time.Second)
			h.wantPoll(d.DeviceCode, "authorization_pending")
			b := issuertest.NewBrowser(t)
			page := h.approvalPage(b, d.UserCode)
			h.clock.Advance(time.Second)
			h.wantPoll(d.DeviceCode, "expired_token")
			if res := decide(h, b, page, "approve"); res.Response.StatusCode != http.StatusBadRequest || !strings.Contains(res.Body, "expired") {
				t.Fatalf("approving after expiry: HTTP %d\n%s", res.Response.StatusCode, res.Body)
			}
			h.wantPoll(d.DeviceCode, "expired_token")
			if again := h.enterCode(b, d.UserCode); again.Response.StatusCode != http.StatusBadRequest {
				t.Fatalf("entering an expired code: HTTP %d", again.Response.StatusCode)
			}
		}},
		{name: "slow down", run: func(t *testing.T, h *harness, d deviceAuth) {
			h.wantPoll(d.DeviceCode, "authorization_pending")
			h.clock.Advance(4 * time.Second)
			h.wantPoll(d.DeviceCode, "slow_down")
			// The interval is now 10 s, counted from the last poll.
			h.clock.Advance(9 * time.Second)
			h.wantPoll(d.DeviceCode, "slow_down")
			h.clock.Advance(15 * time.Second)
			h.wantPoll(d.DeviceCode, "authorization_pending")
		}},
		{name: "one decision per code", run: func(t *testing.T, h *harness, d deviceAuth) {
			b := issuertest.NewBrowser(t)
			page := h.approvalPage(b, d.UserCode)
			if res := decide(h, b, page, "approve"); res.Response.StatusCode != http.StatusOK {
				t.Fatalf("approve: HTTP %d\n%s", res.Response.StatusCode, res.Body)
			}
			for _, decision := range []string{"deny", "approve"} {
				if res := decide(h, b, page, decision); res.Response.StatusCode != http.StatusConflict {
					t.Fatalf("%s after approval: HTTP %d\n%s", decision, res.Response.StatusCode, res.Body)
				}
			}
			tr := h.wantPoll(d.DeviceCode, "")
			h.wantPoll(d.DeviceCode, "invalid_grant")
			// A device code presented again revokes what it gave.
			if got := h.refresh(tr.RefreshToken); got.Error != "invalid_grant" {
				t.Fatalf("refresh after the device code was replayed: %d %s", got.status, got.Error)
			}
		}, metrics: map[string]int{"login:success": 1, "replay:device_code": 1}},
		{name: "another client's device code", run: func(t *testing.T, h *harness, d deviceAuth) {
			b := issuertest.NewBrowser(t)
			decide(h, b, h.approvalPage(b, d.UserCode), "approve")
			if _, err := h.st.EnsureClient(ctx, &store.Client{ID: "other", SecretHash: store.HashSecret("other-secret"),
				GrantTypes: []string{"authorization_code", store.DeviceCodeGrantType}}); err != nil {
				t.Fatal(err)
			}
			owner, secret := h.client, h.secret
			h.client, h.secret = "other", "other-secret"
			h.wantPoll(d.DeviceCode, "invalid_grant")
			h.client, h.secret = owner, "wrong"
			if tr := h.pollDevice(d.DeviceCode); tr.status != http.StatusUnauthorized {
				t.Fatalf("poll with a wrong secret: HTTP %d %s", tr.status, tr.Error)
			}
			h.secret = secret
			h.wantPoll(d.DeviceCode, "")
		}},
	}
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				m := &metricTally{}
				h, logs := newLoggedHarness(t, b, func(c *issuer.Config) { c.Observer = m.observer() })
				d := h.startDevice("openid offline_access")
				tt.run(t, h, d)
				checkNoSecrets(t, logs.String(), d.DeviceCode, d.UserCode, strings.ReplaceAll(d.UserCode, "-", ""))
				if tt.metrics != nil {
					m.expect(t, tt.metrics)
				}
			})
		}
	})
}

// TestDeviceAuthorizationEndpoint checks what the endpoint accepts.
func TestDeviceAuthorizationEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	tests := []struct {
		name       string
		method     string
		query      string
		form       url.Values
		secret     string // "" sends no credentials
		wantStatus int
		wantError  string
	}{
		{"GET is refused", http.MethodGet, "", nil, h.secret, http.StatusMethodNotAllowed, ""},
		{"parameters in the query are refused", http.MethodPost, "scope=openid", url.Values{}, h.secret, http.StatusBadRequest, "invalid_request"},
		{"a request without a client is refused", http.MethodPost, "", url.Values{"scope": {"openid"}}, "", http.StatusBadRequest, "invalid_request"},
		{"a wrong client secret is refused", http.MethodPost, "", url.Values{"scope": {"openid"}}, "wrong", http.StatusUnauthorized, "invalid_client"},
		{"openid is required", http.MethodPost, "", url.Values{"scope": {"profile"}}, h.secret, http.StatusBadRequest, "invalid_scope"},
		{"too many scopes", http.MethodPost, "", url.Values{"scope": {"openid" + strings.Repeat(" x", 40)}}, h.secret, http.StatusBadRequest, "invalid_scope"},
		{"unknown scopes are dropped", http.MethodPost, "", url.Values{"scope": {"openid admin"}}, h.secret, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := h.url + "/oauth/device_authorization"
			if tt.query != "" {
				target += "?" + tt.query
			}
			req, _ := http.NewRequest(tt.method, target, strings.NewReader(tt.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.secret != "" {
				req.SetBasicAuth(h.client, tt.secret)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body deviceAuth
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.wantStatus || body.Error != tt.wantError {
				t.Fatalf("HTTP %d %q, want %d %q", resp.StatusCode, body.Error, tt.wantStatus, tt.wantError)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", resp.Header.Get("Cache-Control"))
			}
		})
	}
	// The dropped scope is not granted.
	d := h.startDevice("openid admin")
	b := issuertest.NewBrowser(t)
	page := h.approvalPage(b, d.UserCode)
	if strings.Contains(page.Body, "admin</code>") {
		t.Fatal("the approval page lists a scope the client may not have")
	}
}

// TestDevicePagesStandards checks the device pages keep the login page's
// rules: the strict CSP, no caching, no framing, CSRF tokens, same-origin
// posts, escaping, and a link that cannot approve by itself.
func TestDevicePagesStandards(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	d := h.startDevice("openid")

	checkHeaders := func(t *testing.T, resp *http.Response) {
		t.Helper()
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe") {
			t.Errorf("CSP %q allows scripts", csp)
		}
		if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("Cache-Control %q, X-Frame-Options %q", resp.Header.Get("Cache-Control"), resp.Header.Get("X-Frame-Options"))
		}
	}

	t.Run("entry page escapes the code from the link and changes nothing", func(t *testing.T) {
		resp, body := h.get("/device?user_code="+url.QueryEscape(`"><script>alert(1)</script>`), nil)
		checkHeaders(t, resp)
		if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "<script>") || !strings.Contains(string(body), "&lt;script&gt;") {
			t.Fatalf("HTTP %d\n%s", resp.StatusCode, body)
		}
		if strings.Contains(string(body), "<script") {
			t.Fatal("the page carries a script")
		}
		resp, _ = h.get("/device?user_code="+url.QueryEscape(d.UserCode), nil)
		checkHeaders(t, resp)
		h.wantPoll(d.DeviceCode, "authorization_pending")
	})

	b := issuertest.NewBrowser(t)
	req, _ := http.NewRequest(http.MethodGet, h.url+"/device", nil)
	entry := b.Do(t, req)
	csrf := entry.Form.Get("csrf")
	forged := []struct {
		name   string
		path   string
		form   url.Values
		header http.Header
	}{
		{"code without a CSRF token", "/device", url.Values{"user_code": {d.UserCode}}, nil},
		{"code with another CSRF token", "/device", url.Values{"user_code": {d.UserCode}, "csrf": {strings.Repeat("A", 43)}}, nil},
		{"code from another origin", "/device", url.Values{"user_code": {d.UserCode}, "csrf": {csrf}}, http.Header{"Origin": {"https://evil.example"}}},
		{"code from another site", "/device", url.Values{"user_code": {d.UserCode}, "csrf": {csrf}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"decision without a CSRF token", "/device/decision", url.Values{"decision": {"approve"}, "ticket": {"x"}}, nil},
		{"decision from another origin", "/device/decision", url.Values{"decision": {"approve"}, "ticket": {"x"}, "csrf": {csrf}}, http.Header{"Origin": {"https://evil.example"}}},
	}
	for _, f := range forged {
		t.Run(f.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.url+f.path, strings.NewReader(f.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range f.header {
				req.Header[k] = v
			}
			page := b.Do(t, req)
			checkHeaders(t, page.Response)
			if page.Response.StatusCode != http.StatusForbidden {
				t.Fatalf("HTTP %d\n%s", page.Response.StatusCode, page.Body)
			}
		})
	}

	t.Run("a ticket works only in the browser it was issued to", func(t *testing.T) {
		page := h.approvalPage(b, d.UserCode)
		checkHeaders(t, page.Response)
		if !strings.Contains(page.Body, h.client) || !strings.Contains(page.Body, "alice") {
			t.Fatalf("approval page does not name the client and the account:\n%s", page.Body)
		}
		// Another browser, with its own CSRF cookie, presents the ticket.
		other := issuertest.NewBrowser(t)
		req, _ := http.NewRequest(http.MethodGet, h.url+"/device", nil)
		otherCSRF := other.Do(t, req).Form.Get("csrf")
		res := h.postForm(other, "/device/decision", url.Values{"ticket": {page.Form.Get("ticket")}, "csrf": {otherCSRF}, "decision": {"approve"}})
		if res.Response.StatusCode != http.StatusBadRequest {
			t.Fatalf("a stolen ticket: HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
		h.clock.Advance(5 * time.Second)
		h.wantPoll(d.DeviceCode, "authorization_pending")
		// A tampered ticket does not open.
		ticket := page.Form.Get("ticket")
		tampered := ticket[:10] + strings.Map(func(r rune) rune {
			if r == 'A' {
				return 'B'
			}
			return 'A'
		}, ticket[10:11]) + ticket[11:]
		res = h.postForm(b, "/device/decision", url.Values{"ticket": {tampered}, "csrf": {page.Form.Get("csrf")}, "decision": {"approve"}})
		if res.Response.StatusCode != http.StatusBadRequest {
			t.Fatalf("a tampered ticket: HTTP %d", res.Response.StatusCode)
		}
		if res := decide(h, b, page, "maybe"); res.Response.StatusCode != http.StatusBadRequest {
			t.Fatalf("an unknown decision: HTTP %d", res.Response.StatusCode)
		}
		checkHeaders(t, decide(h, b, page, "approve").Response)
	})
}

// TestDeviceCodeGuessing: wrong user codes are refused with a clear
// message and counted per client address; past the limit an address is
// refused (429, Retry-After) before any lookup, even with a right code,
// until its window ends. Attackers sending at once from many addresses
// to two replicas get no more guesses than the limit per address.
func TestDeviceCodeGuessing(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h, logs := newLoggedHarness(t, b, nil)
		d := h.startDevice("openid")
		limit := issuer.DefaultLoginAttempts

		guesser := browserFrom(t, "127.0.0.20")
		wrong := []struct{ name, code string }{
			{"a well-formed code that is not issued", "BCDF-BCDF"},
			{"a code with vowels", "ABCD-EFGH"},
			{"a short code", "BCD"},
			{"lower case, no dash, not issued", "bcdfbcdg"},
		}
		for i, w := range wrong {
			page := h.enterCode(guesser, w.code)
			if page.Response.StatusCode != http.StatusBadRequest || !strings.Contains(page.Body, "That code is not valid") {
				t.Fatalf("%s: HTTP %d\n%s", w.name, page.Response.StatusCode, page.Body)
			}
			if i < limit-1 && page.Response.Header.Get("Retry-After") != "" {
				t.Fatalf("%s: Retry-After before the limit", w.name)
			}
		}
		last := h.enterCode(guesser, "CDFG-CDFG")
		if last.Response.StatusCode != http.StatusBadRequest || last.Response.Header.Get("Retry-After") == "" || !strings.Contains(last.Body, "Try again in") {
			t.Fatalf("the last allowed guess: HTTP %d Retry-After %q\n%s", last.Response.StatusCode, last.Response.Header.Get("Retry-After"), last.Body)
		}
		refused := h.enterCode(guesser, d.UserCode)
		if refused.Response.StatusCode != http.StatusTooManyRequests || refused.Response.Header.Get("Retry-After") == "" || !strings.Contains(refused.Body, "Too many codes") {
			t.Fatalf("the right code past the limit: HTTP %d\n%s", refused.Response.StatusCode, refused.Body)
		}

		// Many addresses at once, half the connections to a replica.
		replica := h.replica(nil)
		targets := []string{h.host(), replica}
		const addresses, perAddress = 6, 3 * issuer.DefaultLoginAttempts
		results := make(chan map[int]int, addresses)
		for a := range addresses {
			ip := fmt.Sprintf("127.0.0.%d", 30+a)
			br := browserFrom(t, ip)
			req, _ := http.NewRequest(http.MethodGet, h.url+"/device", nil)
			csrf := br.Do(t, req).Form.Get("csrf")
			reqs := make([][]byte, perAddress)
			for i := range reqs {
				body := url.Values{"csrf": {csrf}, "user_code": {fmt.Sprintf("BCDF-%s", fourLetters(a*perAddress+i))}}.Encode()
				reqs[i] = []byte(fmt.Sprintf("POST /device HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
					"Cookie: nsauth_csrf=%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", h.host(), csrf, len(body), body))
			}
			results <- tally(sendTogether(t, ip, targets, reqs, nil))
		}
		close(results)
		for counts := range results {
			checkOnly(t, "simultaneous guesses", counts, http.StatusBadRequest, http.StatusTooManyRequests)
			if counts[http.StatusBadRequest] > limit {
				t.Fatalf("%d guesses checked from one address, limit %d: %v", counts[http.StatusBadRequest], limit, counts)
			}
		}

		// The window ends: the right code goes through.
		h.clock.Advance(issuer.LoginWindow)
		if page := h.enterCode(guesser, strings.ToLower(strings.ReplaceAll(d.UserCode, "-", " "))); page.URL.Path != "/login" {
			t.Fatalf("the right code after the window: %s HTTP %d\n%s", page.URL, page.Response.StatusCode, page.Body)
		}
		checkNoSecrets(t, logs.String(), d.DeviceCode, d.UserCode, strings.ReplaceAll(d.UserCode, "-", ""))
	})
}

// fourLetters spells n in four letters of the user code alphabet.
func fourLetters(n int) string {
	const alphabet = "BCDFGHJKLMNPQRSTVWXZ"
	b := make([]byte, 4)
	for i := range b {
		b[3-i] = alphabet[n%len(alphabet)]
		n /= len(alphabet)
	}
	return string(b)
}

// TestDeviceRacesAcrossReplicas sends an approval and denials of one
// device login at the same instant to two replicas, then polls at the same
// instant: one decision wins, and the tokens are issued once.
func TestDeviceRacesAcrossReplicas(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		targets := []string{h.host(), h.replica(nil)}
		d := h.startDevice("openid offline_access")
		br := browserFrom(t, "127.0.0.1")
		page := h.approvalPage(br, d.UserCode)

		raw := func(path, auth string, form url.Values) []byte {
			body := form.Encode()
			return []byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n%s"+
				"Content-Length: %d\r\nConnection: close\r\n\r\n%s", path, h.host(), auth, len(body), body))
		}
		cookie := "Cookie: nsauth_csrf=" + page.Form.Get("csrf") + "\r\n"
		decisions := make([][]byte, 6)
		for i := range decisions {
			decision := "deny"
			if i == 0 {
				decision = "approve"
			}
			decisions[i] = raw("/device/decision", cookie, url.Values{"ticket": {page.Form.Get("ticket")}, "csrf": {page.Form.Get("csrf")}, "decision": {decision}})
		}
		counts := tally(sendTogether(t, "127.0.0.1", targets, decisions, nil))
		checkOnly(t, "simultaneous decisions", counts, http.StatusOK, http.StatusConflict)
		if counts[http.StatusOK] != 1 {
			t.Fatalf("%d decisions were recorded, want 1: %v", counts[http.StatusOK], counts)
		}
		// Whichever won, the device sees it.
		if tr := h.pollDevice(d.DeviceCode); tr.status != http.StatusOK && tr.Error != "access_denied" {
			t.Fatalf("poll after the decisions: HTTP %d %s", tr.status, tr.Error)
		}

		// A second device login, approved, polled at once from both replicas.
		d = h.startDevice("openid offline_access")
		decide(h, br, h.approvalPage(br, d.UserCode), "approve")
		basic := "Authorization: Basic " + basicAuth(h.client, h.secret) + "\r\n"
		polls := make([][]byte, 8)
		for i := range polls {
			polls[i] = raw("/oauth/token", basic, url.Values{"grant_type": {deviceGrant}, "device_code": {d.DeviceCode}})
		}
		counts = tally(sendTogether(t, "127.0.0.1", targets, polls, nil))
		checkOnly(t, "simultaneous polls", counts, http.StatusOK, http.StatusBadRequest)
		if counts[http.StatusOK] != 1 {
			t.Fatalf("%d polls got tokens, want 1: %v", counts[http.StatusOK], counts)
		}
	})
}

func basicAuth(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	r.SetBasicAuth(user, pass)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// TestDeviceAuthorizationStorage checks the library's storage interface
// keeps the token endpoint's rules: the state is read on our clock, an
// approval is redeemed once, and a code is stored only in our alphabet.
func TestDeviceAuthorizationStorage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	ds := h.iss.DeviceStorage()
	if err := ds.StoreDeviceAuthorization(ctx, h.client, "lib-device-code", "AEIO-UAEI", h.clock.Now().Add(time.Minute), []string{"openid"}); err == nil {
		t.Fatal("a user code outside the alphabet was stored")
	}
	if err := ds.StoreDeviceAuthorization(ctx, h.client, "lib-device-code", "BCDF-GHJK", h.clock.Now().Add(time.Minute), []string{"openid"}); err != nil {
		t.Fatal(err)
	}
	if err := ds.StoreDeviceAuthorization(ctx, h.client, "lib-device-code-2", "bcdfghjk", h.clock.Now().Add(time.Minute), []string{"openid"}); !errors.Is(err, op.ErrDuplicateUserCode) {
		t.Fatalf("a taken user code: %v, want op.ErrDuplicateUserCode", err)
	}
	st, err := ds.GetDeviceAuthorizatonState(ctx, h.client, "lib-device-code")
	if err != nil || st.Done || st.Denied || !st.Expires.After(time.Now()) {
		t.Fatalf("pending state = %+v, %v", st, err)
	}
	b := issuertest.NewBrowser(t)
	decide(h, b, h.approvalPage(b, "BCDF-GHJK"), "approve")
	h.clock.Advance(5 * time.Second)
	st, err = ds.GetDeviceAuthorizatonState(ctx, h.client, "lib-device-code")
	if err != nil || !st.Done || st.Subject != h.alice.ID {
		t.Fatalf("approved state = %+v, %v", st, err)
	}
	if _, err := ds.GetDeviceAuthorizatonState(ctx, h.client, "lib-device-code"); err == nil {
		t.Fatal("an approval was redeemed twice")
	}
	if _, err := ds.GetDeviceAuthorizatonState(ctx, "other", "nothing"); err == nil {
		t.Fatal("an unknown device code has a state")
	}
}
