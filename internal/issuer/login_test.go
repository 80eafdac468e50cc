package issuer_test

import (
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
)

func TestLoginPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	b := issuertest.NewBrowser(t)
	page := b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
	resp := page.Response
	if resp.StatusCode != http.StatusOK || page.URL.Path != "/login" {
		t.Fatalf("authorize led to HTTP %d at %s", resp.StatusCode, page.URL)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self' http://127.0.0.1:4242", "style-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for k, want := range map[string]string{
		"Cache-Control":          "no-store",
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "same-origin",
		"Content-Type":           "text/html; charset=utf-8",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode || cookies[0].Secure || cookies[0].Path != "/" {
		t.Errorf("cookies = %+v", cookies)
	}
	for _, want := range []string{`<label for="username">`, `<label for="password">`, `id="username"`, `id="password"`, `type="password"`,
		`autocomplete="current-password"`, `<html lang="en">`, `action="/login"`} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// No scripts, and nothing fetched from elsewhere.
	if strings.Contains(page.Body, "<script") {
		t.Error("page has a script")
	}
	if m := regexp.MustCompile(`(?:src|href)="(https?:)?//`).FindString(page.Body); m != "" {
		t.Errorf("page refers to another origin: %s", m)
	}
	if page.Form.Get("csrf") != cookies[0].Value {
		t.Error("the form's CSRF token is not the cookie's")
	}
	css, body := h.get("/assets/login.css", nil)
	if css.StatusCode != http.StatusOK || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") || len(body) == 0 {
		t.Errorf("stylesheet: HTTP %d %q", css.StatusCode, css.Header.Get("Content-Type"))
	}
}

func TestLoginSecureCookieUnderTLS(t *testing.T) {
	t.Parallel()
	// The harness serves plain HTTP; an https issuer is enough to decide the
	// cookie's attributes, which is all this test looks at.
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.Issuer = strings.Replace(c.Issuer, "http://", "https://", 1) })
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	v := oauth2.GenerateVerifier()
	authURL := strings.Replace(h.authorizeURL(v, nil), "https://", "http://", 1)
	resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	loc.Scheme = "http"
	resp, err = http.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c := resp.Cookies()
	if len(c) != 1 || !c[0].Secure || !strings.HasPrefix(c[0].Name, "__Host-") {
		t.Fatalf("cookies under TLS = %+v", c)
	}
}

func TestLoginFailures(t *testing.T) {
	t.Parallel()
	// Every case fails from the same address: raise the limit out of the way.
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.LoginAttempts = 100 })
	hash, _ := password.Hash("bob-password-123")
	if err := h.st.CreateUser(ctx, &store.User{Username: "bob", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	if err := h.st.SetDisabled(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, username, password string
	}{
		{"wrong password", "alice", "not-her-password"},
		{"unknown user", "mallory", alicePassword},
		{"disabled user, right password", "bob", "bob-password-123"},
		{"malformed username", "a b;c", alicePassword},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := issuertest.NewBrowser(t)
			page := b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
			res := b.Submit(t, page, tc.username, tc.password)
			if res.Response.StatusCode != http.StatusUnauthorized {
				t.Fatalf("HTTP %d, want 401", res.Response.StatusCode)
			}
			if !strings.Contains(res.Body, "Wrong username or password.") || !strings.Contains(res.Body, `role="alert"`) {
				t.Fatalf("page does not say the credentials are wrong:\n%s", res.Body)
			}
			if tc.password != "" && strings.Contains(res.Body, tc.password) {
				t.Fatal("page echoes the password")
			}
			// The form is there to try again, with the username kept.
			if res.Form.Get("authRequestID") == "" || (tc.username == "alice" && !strings.Contains(res.Body, `value="alice"`)) {
				t.Fatal("the form was not rendered again")
			}
		})
	}
}

func TestLoginRateLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	b := issuertest.NewBrowser(t)
	page := b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
	for i := 1; i <= issuer.DefaultLoginAttempts; i++ {
		res := b.Submit(t, page, "alice", "guess-"+string(rune('a'+i)))
		if res.Response.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: HTTP %d, want 401", i, res.Response.StatusCode)
		}
		// The attempt that uses the last place says so at once.
		locked := strings.Contains(res.Body, "Try again in 1m0s.") && res.Response.Header.Get("Retry-After") == "60"
		if locked != (i == issuer.DefaultLoginAttempts) {
			t.Fatalf("attempt %d: lockout announced %v (Retry-After %q)", i, locked, res.Response.Header.Get("Retry-After"))
		}
	}
	// Even the right password is refused now, with a clear message.
	res := b.Submit(t, page, "alice", alicePassword)
	if res.Response.StatusCode != http.StatusTooManyRequests || !strings.Contains(res.Body, "Try again in") || res.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("locked account: HTTP %d\n%s", res.Response.StatusCode, res.Body)
	}
	// After the window it works again.
	h.clock.Advance(issuer.LoginWindow + time.Second)
	res = b.Submit(t, page, "alice", alicePassword)
	if _, err := issuertest.RedirectOf(res); err != nil {
		t.Fatal(err)
	}
}

func TestLoginRateLimitPerAddress(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	b := issuertest.NewBrowser(t)
	page := b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
	// Spraying one password over many accounts trips the address limit.
	for i := 0; i < issuer.DefaultLoginAttempts; i++ {
		b.Submit(t, page, "user"+string(rune('a'+i)), "Winter2026!")
	}
	res := b.Submit(t, page, "alice", alicePassword)
	if res.Response.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("HTTP %d after spraying from one address, want 429", res.Response.StatusCode)
	}
}

func TestLoginCSRF(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	for _, tc := range []struct {
		name   string
		tamper func(form url.Values, hdr http.Header)
	}{
		{"no token", func(f url.Values, _ http.Header) { f.Del("csrf") }},
		{"other token", func(f url.Values, _ http.Header) { f.Set("csrf", strings.Repeat("A", 43)) }},
		{"no cookie", func(_ url.Values, hdr http.Header) { hdr.Del("Cookie") }},
		{"cross-site origin", func(_ url.Values, hdr http.Header) { hdr.Set("Origin", "https://evil.example.com") }},
		{"cross-site fetch", func(_ url.Values, hdr http.Header) { hdr.Set("Sec-Fetch-Site", "cross-site") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := issuertest.NewBrowser(t)
			page := b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
			form := url.Values{"authRequestID": {page.Form.Get("authRequestID")}, "csrf": {page.Form.Get("csrf")}, "username": {"alice"}, "password": {alicePassword}}
			hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
			for _, c := range b.Client.Jar.Cookies(page.URL) {
				hdr.Add("Cookie", c.Name+"="+c.Value)
			}
			tc.tamper(form, hdr)
			req, _ := http.NewRequest(http.MethodPost, h.url+"/login", strings.NewReader(form.Encode()))
			req.Header = hdr
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("HTTP %d, want 403", resp.StatusCode)
			}
		})
	}
	// The same request untampered goes through: the refusals above are the
	// tampering's doing.
	b := issuertest.NewBrowser(t)
	b.Login(t, h.authorizeURL(oauth2.GenerateVerifier(), nil), "alice", alicePassword)
}

func TestLoginLinkProblems(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	for _, tc := range []struct {
		name string
		path string
		want string
	}{
		{"no id", "/login", "incomplete"},
		{"forged id", "/login?authRequestID=nope", "incomplete"},
		{"huge id", "/login?authRequestID=" + strings.Repeat("x", issuer.MaxAuthRequestIDLen+1), "incomplete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.get(tc.path, nil)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
			}
		})
	}

	// A login request expires after 10 minutes, and completes once.
	b := issuertest.NewBrowser(t)
	page := b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
	h.clock.Advance(issuer.AuthRequestTTL + time.Second)
	res := b.Submit(t, page, "alice", alicePassword)
	if res.Response.StatusCode != http.StatusBadRequest || !strings.Contains(res.Body, "expired") {
		t.Fatalf("expired request: HTTP %d", res.Response.StatusCode)
	}
	page = b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
	if _, err := issuertest.RedirectOf(b.Submit(t, page, "alice", alicePassword)); err != nil {
		t.Fatal(err)
	}
	again := b.Submit(t, page, "alice", alicePassword)
	if again.Response.StatusCode != http.StatusBadRequest {
		t.Fatalf("second submission of one request: HTTP %d", again.Response.StatusCode)
	}
}

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLoginLogsNoSecrets logs at debug level through failed and successful
// logins, including a password typed into the username field, and looks
// for every secret in the log.
func TestLoginLogsNoSecrets(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	var trail *auditTrail
	h := newHarness(t, sqlite(), func(c *issuer.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		trail = withAudit(t, c)
	})
	b := issuertest.NewBrowser(t)
	v := oauth2.GenerateVerifier()
	page := b.Open(t, h.authorizeURL(v, nil))
	b.Submit(t, page, alicePassword, "")
	b.Submit(t, page, "alice", "wrong-secret-guess")
	loc, err := issuertest.RedirectOf(b.Submit(t, page, "alice", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	code := loc.Query().Get("code")
	tr := h.exchange(code, v)
	h.refresh(tr.RefreshToken)
	h.clock.Advance(issuer.DefaultRefreshReuseGrace) // within it, a reuse is a retry
	h.refresh(tr.RefreshToken)                       // reuse, logged as such
	out := logs.String()
	events, records := trail.records(t)
	for _, secret := range []string{alicePassword, "wrong-secret-guess", code, tr.AccessToken, tr.RefreshToken, tr.IDToken, h.secret, page.Form.Get("csrf")} {
		if secret != "" && strings.Contains(out, secret) {
			t.Fatalf("the log contains a secret:\n%s", out)
		}
		if secret != "" && strings.Contains(records, secret) {
			t.Fatalf("the audit records contain a secret:\n%s", records)
		}
	}
	var reasons []string
	for _, e := range events {
		if e.Type == audit.LoginFailed {
			reasons = append(reasons, e.Username+":"+e.Reason)
		}
	}
	// The password typed as a username names no account: the event names none.
	if want := []string{":unknown_user", "alice:bad_password"}; !slices.Equal(reasons, want) {
		t.Errorf("failed logins recorded as %v, want %v", reasons, want)
	}
	for _, want := range []string{`msg="failed login" username=(unknown)`, `msg="failed login" username=alice`, `msg=login username=alice`, "refresh token reused"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}
