package issuer_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// totpSecret is alice's TOTP secret in these tests (base32 of
// "12345678901234567890", RFC 6238's SHA-1 test key).
const totpSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

// totpAt computes the RFC 6238 code of secret at t, on its own (RFC 4226
// dynamic truncation), so the tests do not judge the provider with the
// library it uses.
func totpAt(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
	if err != nil {
		t.Fatal(err)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1000000)
}

func TestTOTPOracleMatchesRFC6238(t *testing.T) {
	t.Parallel()
	// RFC 6238 appendix B, SHA-1, last six digits.
	cases := []struct {
		unix int64
		want string
	}{{59, "287082"}, {1111111109, "081804"}, {1234567890, "005924"}, {2000000000, "279037"}}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.unix), func(t *testing.T) {
			if got := totpAt(t, totpSecret, time.Unix(c.unix, 0)); got != c.want {
				t.Fatalf("code at %d = %s, want %s", c.unix, got, c.want)
			}
		})
	}
}

// enrollAlice gives alice the test TOTP secret and recovery codes.
func (h *harness) enrollAlice(codes ...string) {
	h.t.Helper()
	if err := h.st.EnrollTOTP(ctx, h.alice.ID, totpSecret, 0, codes); err != nil {
		h.t.Fatal(err)
	}
}

// passwordStep opens a login and submits alice's password, returning the
// page that follows.
func (h *harness) passwordStep(b *issuertest.Browser, verifier string) *issuertest.Page {
	h.t.Helper()
	page := b.Open(h.t, h.authorizeURL(verifier, nil))
	if page.Response.StatusCode != http.StatusOK {
		h.t.Fatalf("authorize: HTTP %d", page.Response.StatusCode)
	}
	return b.Submit(h.t, page, "alice", alicePassword)
}

func totpForm(code string) url.Values {
	return url.Values{"method": {"totp"}, "code": {code}}
}

// recoveryCodes are alice's recovery codes in these tests.
var recoveryCodes = []string{"AAAA-BBBB-CCCC-DDDD", "EEEE-FFFF-GGGG-HHHH", "JJJJ-KKKK-LLLL-MMMM"}

// mfaPage opens a login in a fresh browser and gets past the password,
// failing unless the second-factor page follows.
func (h *harness) mfaPage(verifier string) (*issuertest.Browser, *issuertest.Page) {
	h.t.Helper()
	b := issuertest.NewBrowser(h.t)
	page := h.passwordStep(b, verifier)
	if page.Response.StatusCode != http.StatusOK || !strings.Contains(page.Body, `action="/login/mfa"`) || page.Form.Get("token") == "" {
		h.t.Fatalf("the password did not lead to the second-factor page: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	return b, page
}

// amrOf returns a JWT's amr claim.
func amrOf(t *testing.T, token string) []string {
	t.Helper()
	_, claims := jwtParts(t, token)
	var out []string
	list, _ := claims["amr"].([]any)
	for _, a := range list {
		s, _ := a.(string)
		out = append(out, s)
	}
	return out
}

func stringsOf(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, a := range list {
		s, _ := a.(string)
		out = append(out, s)
	}
	return out
}

var wantMFA = []string{"pwd", "otp", "mfa"}

func TestSecondFactorTOTPLogin(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		h.enrollAlice(recoveryCodes...)
		v := oauth2.GenerateVerifier()
		br, page := h.mfaPage(v)
		if strings.Contains(page.Body, "passkey") {
			t.Error("the page offers a passkey to a user without one")
		}
		if !strings.Contains(page.Body, "recovery code") {
			t.Error("the page offers no recovery code to a user with some")
		}
		if csp := page.Response.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("second-factor page CSP = %q", csp)
		}
		res := br.Post(t, page, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
		loc, err := issuertest.RedirectOf(res)
		if err != nil {
			t.Fatal(err)
		}
		if loc.Query().Get("state") != "the-state" {
			t.Fatalf("redirect %s lost the state", loc)
		}
		tr := h.exchange(loc.Query().Get("code"), v)
		if tr.status != http.StatusOK {
			t.Fatalf("exchange: HTTP %d %s", tr.status, tr.Error)
		}
		if got := amrOf(t, tr.IDToken); !slices.Equal(got, wantMFA) {
			t.Errorf("ID token amr = %v, want %v", got, wantMFA)
		}
		if got := amrOf(t, tr.AccessToken); !slices.Equal(got, wantMFA) {
			t.Errorf("access token amr = %v, want %v", got, wantMFA)
		}
		if got := stringsOf(h.introspect(tr.AccessToken)["amr"]); !slices.Equal(got, wantMFA) {
			t.Errorf("introspection amr = %v, want %v", got, wantMFA)
		}
		h.clock.Advance(time.Minute)
		rt := h.refresh(tr.RefreshToken)
		if rt.status != http.StatusOK {
			t.Fatalf("refresh: HTTP %d %s", rt.status, rt.Error)
		}
		if got := amrOf(t, rt.AccessToken); !slices.Equal(got, wantMFA) {
			t.Errorf("refreshed access token amr = %v, want %v", got, wantMFA)
		}
		if rt.IDToken != "" {
			if got := amrOf(t, rt.IDToken); !slices.Equal(got, wantMFA) {
				t.Errorf("refreshed ID token amr = %v, want %v", got, wantMFA)
			}
		}
	})
}

func TestSecondFactorNotAskedWithoutOne(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	tr := h.tokens(nil)
	for name, tok := range map[string]string{"ID": tr.IDToken, "access": tr.AccessToken} {
		if got := amrOf(t, tok); !slices.Equal(got, []string{"pwd"}) {
			t.Errorf("%s token amr = %v, want [pwd]", name, got)
		}
	}
}

// TestSecondFactorReplayRefused: a right code works once; the same code
// (or an earlier one) in its window is refused at the next login; the
// next step's code works.
func TestSecondFactorReplayRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	h.enrollAlice()
	now := h.clock.Now()
	code := totpAt(t, totpSecret, now)
	br, page := h.mfaPage(oauth2.GenerateVerifier())
	if _, err := issuertest.RedirectOf(br.Post(t, page, "/login/mfa", totpForm(code))); err != nil {
		t.Fatal(err)
	}
	br, page = h.mfaPage(oauth2.GenerateVerifier())
	for _, c := range []struct{ name, code string }{
		{"the same code", code},
		{"the previous step's code", totpAt(t, totpSecret, now.Add(-30*time.Second))},
	} {
		res := br.Post(t, page, "/login/mfa", totpForm(c.code))
		if res.Response.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Body, "not right") {
			t.Fatalf("%s replayed: HTTP %d\n%s", c.name, res.Response.StatusCode, res.Body)
		}
	}
	h.clock.Advance(30 * time.Second)
	if _, err := issuertest.RedirectOf(br.Post(t, page, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))); err != nil {
		t.Fatalf("the next step's code: %v", err)
	}
}

func TestSecondFactorCodeWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.LoginAttempts = 50 })
	h.enrollAlice()
	for _, c := range []struct {
		name   string
		offset time.Duration
		ok     bool
	}{
		{"two steps late", -60 * time.Second, false},
		{"two steps early", 60 * time.Second, false},
		{"one step late", -30 * time.Second, true},
		{"one step early", 30 * time.Second, true},
		{"not digits", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.clock.Advance(2 * time.Minute) // a fresh step each time
			br, page := h.mfaPage(oauth2.GenerateVerifier())
			code := totpAt(t, totpSecret, h.clock.Now().Add(c.offset))
			if c.name == "not digits" {
				code = "12a456"
			}
			res := br.Post(t, page, "/login/mfa", totpForm(code))
			_, err := issuertest.RedirectOf(res)
			if (err == nil) != c.ok {
				t.Fatalf("accepted = %v, want %v (HTTP %d)", err == nil, c.ok, res.Response.StatusCode)
			}
		})
	}
}

// TestSecondFactorWrongCodesLockOut: wrong codes count on the login
// limits with the password: the password took one place, so the fourth
// wrong code takes the last and even the right code is then refused,
// until the window ends. Logging in with the password again does not
// reset the count.
func TestSecondFactorWrongCodesLockOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	h.enrollAlice()
	br, page := h.mfaPage(oauth2.GenerateVerifier())
	for _, c := range wrongCodes(t, h.clock.Now(), 3) {
		res := br.Post(t, page, "/login/mfa", totpForm(c))
		if res.Response.StatusCode != http.StatusUnauthorized || strings.Contains(res.Body, "Try again in") {
			t.Fatalf("wrong code %s: HTTP %d\n%s", c, res.Response.StatusCode, res.Body)
		}
	}
	// A new password attempt from another browser takes the last place
	// of the account's counter, and its second-factor page comes up.
	br2, page2 := h.mfaPage(oauth2.GenerateVerifier())
	res := br2.Post(t, page2, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
	if res.Response.StatusCode != http.StatusTooManyRequests || res.Response.Header.Get("Retry-After") == "" || !strings.Contains(res.Body, "Try again in") {
		t.Fatalf("the right code after the limit: HTTP %d\n%s", res.Response.StatusCode, res.Body)
	}
	res = br.Post(t, page, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
	if res.Response.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the right code in the first browser after the limit: HTTP %d", res.Response.StatusCode)
	}
	h.clock.Advance(issuer.LoginWindow + time.Second)
	// The pending login expired meanwhile? No: PendingMFATTL is longer
	// than the window.
	res = br.Post(t, page, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
	if _, err := issuertest.RedirectOf(res); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestSecondFactorWrongCodeAnnouncesLockout: the wrong code that takes the
// last place says so at once.
func TestSecondFactorWrongCodeAnnouncesLockout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	h.enrollAlice()
	br, page := h.mfaPage(oauth2.GenerateVerifier())
	for i := 2; i <= issuer.DefaultLoginAttempts; i++ {
		res := br.Post(t, page, "/login/mfa", url.Values{"method": {"recovery"}, "recovery_code": {"ZZZZ-ZZZZ-ZZZZ-ZZZZ"}})
		locked := strings.Contains(res.Body, "Try again in") && res.Response.Header.Get("Retry-After") != ""
		if res.Response.StatusCode != http.StatusUnauthorized || locked != (i == issuer.DefaultLoginAttempts) {
			t.Fatalf("attempt %d: HTTP %d, lockout announced %v", i, res.Response.StatusCode, locked)
		}
	}
}

func TestSecondFactorRecoveryCodeOnce(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		h.enrollAlice(recoveryCodes...)
		v := oauth2.GenerateVerifier()
		br, page := h.mfaPage(v)
		// Typed in lower case with spaces: still the code.
		typed := strings.ToLower(strings.ReplaceAll(recoveryCodes[1], "-", " "))
		loc, err := issuertest.RedirectOf(br.Post(t, page, "/login/mfa", url.Values{"method": {"recovery"}, "recovery_code": {typed}}))
		if err != nil {
			t.Fatal(err)
		}
		tr := h.exchange(loc.Query().Get("code"), v)
		if got := amrOf(t, tr.IDToken); !slices.Equal(got, wantMFA) {
			t.Errorf("amr after a recovery code = %v, want %v", got, wantMFA)
		}
		br, page = h.mfaPage(oauth2.GenerateVerifier())
		res := br.Post(t, page, "/login/mfa", url.Values{"method": {"recovery"}, "recovery_code": {recoveryCodes[1]}})
		if res.Response.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Body, "already used") {
			t.Fatalf("a used recovery code: HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
		if f, _ := h.st.SecondFactors(ctx, h.alice.ID); f.RecoveryCodes != len(recoveryCodes)-1 {
			t.Errorf("%d recovery codes left, want %d", f.RecoveryCodes, len(recoveryCodes)-1)
		}
	})
}

// TestSecondFactorSimultaneousUse: two logins sending one TOTP code, or
// one recovery code, at the same moment: exactly one gets in. And one
// login's form sent twice at once completes once.
func TestSecondFactorSimultaneousUse(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *issuer.Config) { c.LoginAttempts = 50 })
		h.enrollAlice(recoveryCodes...)
		cases := []struct {
			name     string
			sameForm bool
			form     func() url.Values
		}{
			{"one TOTP code, two logins", false, func() url.Values { return totpForm(totpAt(t, totpSecret, h.clock.Now())) }},
			{"one recovery code, two logins", false, func() url.Values {
				return url.Values{"method": {"recovery"}, "recovery_code": {recoveryCodes[2]}}
			}},
			{"one login, its form twice", true, func() url.Values { return totpForm(totpAt(t, totpSecret, h.clock.Now())) }},
		}
		for _, c := range cases {
			h.clock.Advance(time.Minute) // a fresh TOTP step
			const n = 2
			type login struct {
				br   *issuertest.Browser
				page *issuertest.Page
			}
			var logins [n]login
			for i := range logins {
				if c.sameForm && i > 0 {
					logins[i] = logins[0]
					continue
				}
				logins[i].br, logins[i].page = h.mfaPage(oauth2.GenerateVerifier())
			}
			form := c.form()
			sent := make([]issuertest.Sent, n)
			for i := range sent {
				req := logins[i].br.PostRequest(t, logins[i].page, "/login/mfa", form)
				sent[i] = issuertest.Sent{From: issuertest.Source{IP: "127.0.0.1"}, Host: req.URL.Host, Request: req}
			}
			wins := 0
			for _, r := range issuertest.SendTogether(t, sent...) {
				if _, err := r.Redirect(); err == nil {
					wins++
				} else if r.Status != http.StatusUnauthorized && r.Status != http.StatusBadRequest {
					t.Errorf("%s: the loser got HTTP %d", c.name, r.Status)
				}
			}
			if wins != 1 {
				t.Errorf("%s: %d of %d simultaneous submissions got in, want exactly 1", c.name, wins, n)
			}
		}
	})
}

func TestSecondFactorPendingStateRules(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.LoginAttempts = 50 })
	h.enrollAlice()
	t.Run("expires", func(t *testing.T) {
		br, page := h.mfaPage(oauth2.GenerateVerifier())
		h.clock.Advance(issuer.PendingMFATTL + time.Second)
		res := br.Post(t, page, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
		if res.Response.StatusCode != http.StatusBadRequest || !strings.Contains(res.Body, "took too long") {
			t.Fatalf("an expired pending login: HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
	})
	t.Run("belongs to its auth request", func(t *testing.T) {
		h.clock.Advance(time.Minute)
		_, pageA := h.mfaPage(oauth2.GenerateVerifier())
		brB, pageB := h.mfaPage(oauth2.GenerateVerifier())
		res := brB.Post(t, pageB, "/login/mfa", url.Values{"token": {pageA.Form.Get("token")}, "method": {"totp"}, "code": {totpAt(t, totpSecret, h.clock.Now())}})
		if res.Response.StatusCode != http.StatusBadRequest {
			t.Fatalf("another login's pending state: HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
		// Nor is an enrolment step open to a verify state.
		res = brB.Post(t, pageB, "/login/mfa/continue", nil)
		if res.Response.StatusCode != http.StatusBadRequest {
			t.Fatalf("continue with a verify state: HTTP %d", res.Response.StatusCode)
		}
		if _, err := issuertest.RedirectOf(brB.Post(t, pageB, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))); err != nil {
			t.Fatalf("its own state still works: %v", err)
		}
	})
	t.Run("belongs to its browser", func(t *testing.T) {
		h.clock.Advance(time.Minute)
		_, page := h.mfaPage(oauth2.GenerateVerifier())
		// Another browser, with its own CSRF cookie, sends the form.
		other := issuertest.NewBrowser(t)
		otherPage := other.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
		form := url.Values{"authRequestID": {page.Form.Get("authRequestID")}, "token": {page.Form.Get("token")}, "csrf": {otherPage.Form.Get("csrf")},
			"method": {"totp"}, "code": {totpAt(t, totpSecret, h.clock.Now())}}
		res := other.Post(t, otherPage, "/login/mfa", form)
		if res.Response.StatusCode != http.StatusBadRequest {
			t.Fatalf("a pending state sent from another browser: HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
	})
	t.Run("malformed token", func(t *testing.T) {
		br, page := h.mfaPage(oauth2.GenerateVerifier())
		for _, tok := range []string{"", "short", strings.Repeat("A", 44), strings.Repeat("A", 42) + "=", strings.Repeat("x", 5000)} {
			res := br.Post(t, page, "/login/mfa", url.Values{"token": {tok}, "method": {"totp"}, "code": {"123456"}})
			if res.Response.StatusCode != http.StatusBadRequest {
				t.Fatalf("token %.10q: HTTP %d", tok, res.Response.StatusCode)
			}
		}
	})
	t.Run("disabled meanwhile", func(t *testing.T) {
		h.clock.Advance(time.Minute)
		br, page := h.mfaPage(oauth2.GenerateVerifier())
		if err := h.st.SetDisabled(ctx, "alice", true); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = h.st.SetDisabled(ctx, "alice", false) }()
		res := br.Post(t, page, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
		if res.Response.StatusCode != http.StatusBadRequest {
			t.Fatalf("a user disabled while on the page: HTTP %d", res.Response.StatusCode)
		}
	})
}

func TestSecondFactorCSRF(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.LoginAttempts = 50; c.RequireSecondFactor = true })
	h.enrollAlice()
	// The CSRF check comes first on every second-factor form: each is
	// refused with 403 before its state is looked at.
	for _, path := range []string{"/login/mfa", "/login/mfa/enroll", "/login/mfa/continue"} {
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
			t.Run(path+" "+tc.name, func(t *testing.T) {
				h.clock.Advance(time.Minute)
				b := issuertest.NewBrowser(t)
				page := b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
				page = b.Submit(t, page, "alice", alicePassword)
				form := url.Values{}
				for k, v := range page.Form {
					form[k] = v
				}
				form.Set("method", "totp")
				form.Set("code", totpAt(t, totpSecret, h.clock.Now()))
				hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
				for _, c := range b.Client.Jar.Cookies(page.URL) {
					hdr.Add("Cookie", c.Name+"="+c.Value)
				}
				tc.tamper(form, hdr)
				req, _ := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(form.Encode()))
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
	}
	// Untampered, the same request gets in: the refusals above are the
	// tampering's doing.
	h.clock.Advance(time.Minute)
	br, page := h.mfaPage(oauth2.GenerateVerifier())
	if _, err := issuertest.RedirectOf(br.Post(t, page, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))); err != nil {
		t.Fatal(err)
	}
}

var (
	secretOnPage  = regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`)
	codesOnPage   = regexp.MustCompile(`<li><code>([A-Z2-7-]+)</code></li>`)
	svgQROnPage   = regexp.MustCompile(`<svg [^>]*role="img"[^>]*>.*<path fill="#000" d="M`)
	enrollFormURL = "/login/mfa/enroll"
)

// TestSecondFactorRequiredEnrolment: with the policy required, a user
// without a second factor cannot finish a login with the password alone;
// an enrolment link and the password take them through TOTP enrolment: a
// wrong first code is refused, the right one shows ten recovery codes
// once, and continuing ends the enrolment. The next login asks for a
// code.
func TestSecondFactorRequiredEnrolment(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		var trail *auditTrail
		h := newHarness(t, b, func(c *issuer.Config) { c.RequireSecondFactor = true; trail = withAudit(t, c) })
		br := issuertest.NewBrowser(t)
		if page := h.passwordStep(br, oauth2.GenerateVerifier()); page.Response.StatusCode != http.StatusForbidden ||
			!strings.Contains(page.Body, "nsauth users enrol-link alice") || secretOnPage.MatchString(page.Body) {
			t.Fatalf("the password alone under a required policy: HTTP %d\n%s", page.Response.StatusCode, page.Body)
		}
		// That refused login keeps its place in the counters: let its
		// window pass.
		h.clock.Advance(issuer.LoginWindow + time.Second)
		page := h.enrolPage(br)
		m := secretOnPage.FindStringSubmatch(page.Body)
		if page.Response.StatusCode != http.StatusOK || m == nil || !svgQROnPage.MatchString(page.Body) || !strings.Contains(page.Body, `action="`+enrollFormURL+`"`) {
			t.Fatalf("the password did not lead to the enrolment page with a QR code and the key: HTTP %d\n%s", page.Response.StatusCode, page.Body)
		}
		secret := m[1]
		if f, _ := h.st.SecondFactors(ctx, h.alice.ID); f.TOTP {
			t.Fatal("the secret was stored before it was confirmed")
		}
		res := br.Post(t, page, enrollFormURL, url.Values{"code": {"000000"}})
		if res.Response.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Body, secret) {
			t.Fatalf("a wrong first code: HTTP %d, want 401 and the same key again\n%s", res.Response.StatusCode, res.Body)
		}
		res = br.Post(t, page, enrollFormURL, url.Values{"code": {totpAt(t, secret, h.clock.Now())}})
		codes := codesOnPage.FindAllStringSubmatch(res.Body, -1)
		if res.Response.StatusCode != http.StatusOK || len(codes) != 10 {
			t.Fatalf("the right first code: HTTP %d, %d recovery codes\n%s", res.Response.StatusCode, len(codes), res.Body)
		}
		seen := map[string]bool{}
		for _, c := range codes {
			seen[c[1]] = true
		}
		if len(seen) != 10 {
			t.Fatalf("the recovery codes repeat: %v", codes)
		}
		// The confirming code is used: the enrolment form cannot be sent
		// again, nor can it come back as a login code.
		if again := br.Post(t, page, enrollFormURL, url.Values{"code": {totpAt(t, secret, h.clock.Now())}}); again.Response.StatusCode != http.StatusBadRequest {
			t.Fatalf("the enrolment form sent again: HTTP %d", again.Response.StatusCode)
		}
		wantLinkDone(t, br.Post(t, res, "/login/mfa/continue", nil))
		stored, _, err := h.st.TOTPSecret(ctx, h.alice.ID)
		if err != nil || stored != secret {
			t.Fatalf("stored secret %q, %v; the page showed %q", stored, err, secret)
		}

		// Next login: the second-factor page, where the enrolment's code
		// is refused (same step) and a recovery code works.
		br2, page2 := h.mfaPage(oauth2.GenerateVerifier())
		if r := br2.Post(t, page2, "/login/mfa", totpForm(totpAt(t, secret, h.clock.Now()))); r.Response.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the enrolment's code reused at login: HTTP %d", r.Response.StatusCode)
		}
		if _, err := issuertest.RedirectOf(br2.Post(t, page2, "/login/mfa", url.Values{"method": {"recovery"}, "recovery_code": {codes[3][1]}})); err != nil {
			t.Fatalf("a recovery code from enrolment: %v", err)
		}

		events, records := trail.records(t)
		var types []string
		for _, e := range events {
			if strings.HasPrefix(string(e.Type), "mfa.") || strings.HasPrefix(string(e.Type), "login.second") {
				types = append(types, string(e.Type)+":"+e.Reason)
			}
		}
		want := []string{"login.second_factor_failed:enrolment_needed", "mfa.enrol_link_used:", "login.second_factor_failed:wrong_code", "mfa.enrolled:totp",
			"login.second_factor_failed:replayed", "login.second_factor_succeeded:recovery_code"}
		if !slices.Equal(types, want) {
			t.Errorf("second-factor audit events %v, want %v", types, want)
		}
		for _, s := range append([]string{secret}, codes[0][1], codes[3][1]) {
			if strings.Contains(records, s) {
				t.Fatalf("the audit records contain a secret or recovery code:\n%s", records)
			}
		}
	})
}

// TestSecondFactorLogsNoSecrets: through wrong and right codes, recovery
// codes and an enrolment, no code, secret or recovery code reaches the
// log or the audit trail.
func TestSecondFactorLogsNoSecrets(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	var trail *auditTrail
	h := newHarness(t, sqlite(), func(c *issuer.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.RequireSecondFactor = true
		c.LoginAttempts = 50
		trail = withAudit(t, c)
	})
	br := issuertest.NewBrowser(t)
	page := h.enrolPage(br)
	secret := secretOnPage.FindStringSubmatch(page.Body)[1]
	wrongFirst := "987654"
	if wrongFirst == totpAt(t, secret, h.clock.Now()) {
		wrongFirst = "987655"
	}
	br.Post(t, page, enrollFormURL, url.Values{"code": {wrongFirst}})
	first := totpAt(t, secret, h.clock.Now())
	res := br.Post(t, page, enrollFormURL, url.Values{"code": {first}})
	var codes []string
	for _, m := range codesOnPage.FindAllStringSubmatch(res.Body, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != 10 {
		t.Fatalf("enrolment failed: HTTP %d", res.Response.StatusCode)
	}
	wantLinkDone(t, br.Post(t, res, "/login/mfa/continue", nil))
	h.clock.Advance(time.Minute)
	br, page = h.mfaPage(oauth2.GenerateVerifier())
	br.Post(t, page, "/login/mfa", url.Values{"method": {"recovery"}, "recovery_code": {"QQQQ-QQQQ-QQQQ-QQQQ"}})
	br.Post(t, page, "/login/mfa", url.Values{"method": {"recovery"}, "recovery_code": {codes[0]}})
	br, page = h.mfaPage(oauth2.GenerateVerifier())
	second := totpAt(t, secret, h.clock.Now())
	br.Post(t, page, "/login/mfa", totpForm(second))
	out := logs.String()
	_, records := trail.records(t)
	for _, s := range append([]string{secret, wrongFirst, first, second, "QQQQ-QQQQ-QQQQ-QQQQ", "QQQQQQQQQQQQQQQQ", page.Form.Get("token")}, codes...) {
		if strings.Contains(out, s) {
			t.Fatalf("the log contains %q:\n%s", s, out)
		}
		if strings.Contains(records, s) {
			t.Fatalf("the audit records contain %q:\n%s", s, records)
		}
	}
	if !strings.Contains(out, `msg="wrong second factor" username=alice`) {
		t.Errorf("the log lacks the wrong second factor:\n%s", out)
	}
	var kinds []audit.Type
	for _, e := range trailEvents(t, trail) {
		kinds = append(kinds, e.Type)
	}
	if !slices.Contains(kinds, audit.SecondFactorSucceeded) || !slices.Contains(kinds, audit.SecondFactorEnrolled) {
		t.Errorf("audit events %v lack the second factor's", kinds)
	}
}

// wrongCodes returns n codes that are not the test secret's at any step
// within the skew of now.
func wrongCodes(t *testing.T, now time.Time, n int) []string {
	t.Helper()
	right := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		right[totpAt(t, totpSecret, now.Add(d))] = true
	}
	var out []string
	for i := 0; len(out) < n; i++ {
		c := fmt.Sprintf("%06d", i*111111%1000000)
		if !right[c] && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func trailEvents(t *testing.T, tr *auditTrail) []audit.Event {
	events, _ := tr.records(t)
	return events
}

// TestSecondFactorRequiredAsksEnrolledUsers: with the policy required, a
// user who has a factor gets the code page, not enrolment.
func TestSecondFactorRequiredAsksEnrolledUsers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.RequireSecondFactor = true })
	h.enrollAlice()
	_, page := h.mfaPage(oauth2.GenerateVerifier())
	if strings.Contains(page.Body, "totp-secret") {
		t.Fatal("an enrolled user was offered a new secret")
	}
}

// TestSecondFactorDeviceLogin: a device login with a second factor goes
// through the code page to the approval page, and the device's tokens
// carry the amr.
func TestSecondFactorDeviceLogin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	h.enrollAlice()
	d := h.startDevice("openid offline_access")
	b := issuertest.NewBrowser(t)
	login := h.enterCode(b, d.UserCode)
	page := b.Submit(t, login, "alice", alicePassword)
	if page.Response.StatusCode != http.StatusOK || page.Form.Get("token") == "" {
		t.Fatalf("the password did not lead to the second-factor page: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	approval := b.Post(t, page, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
	if approval.Response.StatusCode != http.StatusOK || approval.Form.Get("ticket") == "" {
		t.Fatalf("the code did not lead to the approval page: HTTP %d\n%s", approval.Response.StatusCode, approval.Body)
	}
	if res := decide(h, b, approval, "approve"); res.Response.StatusCode != http.StatusOK {
		t.Fatalf("approving: HTTP %d", res.Response.StatusCode)
	}
	tr := h.wantPoll(d.DeviceCode, "")
	for name, tok := range map[string]string{"ID": tr.IDToken, "access": tr.AccessToken} {
		if got := amrOf(t, tok); !slices.Equal(got, wantMFA) {
			t.Errorf("device %s token amr = %v, want %v", name, got, wantMFA)
		}
	}
}

// TestSecondFactorAcrossReplicas: two providers on one database (two
// processes on PostgreSQL): an enrolment link's password typed at one,
// the enrolment code at the other, the continue at the first; a code login split the same
// way; and one code sent at once to both replicas by two logins lets
// exactly one in.
func TestSecondFactorAcrossReplicas(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		require := func(c *issuer.Config) { c.RequireSecondFactor = true; c.LoginAttempts = 50 }
		h := newHarness(t, b, require)
		other := h.replica(require)
		to := func(br *issuertest.Browser, host string) {
			br.Rewrite = func(u *url.URL) {
				if u.Host == h.host() || u.Host == other {
					u.Host = host
				}
			}
		}
		br := issuertest.NewBrowser(t)
		page := h.enrolPage(br)
		m := secretOnPage.FindStringSubmatch(page.Body)
		if m == nil {
			t.Fatalf("no enrolment page: HTTP %d", page.Response.StatusCode)
		}
		to(br, other)
		codes := br.Post(t, page, enrollFormURL, url.Values{"code": {totpAt(t, m[1], h.clock.Now())}})
		if codes.Response.StatusCode != http.StatusOK || len(codesOnPage.FindAllString(codes.Body, -1)) != 10 {
			t.Fatalf("the enrolment code at the other replica: HTTP %d\n%s", codes.Response.StatusCode, codes.Body)
		}
		to(br, h.host())
		wantLinkDone(t, br.Post(t, codes, "/login/mfa/continue", nil))

		h.clock.Advance(time.Minute)
		secret := m[1]
		var logins [2]struct {
			br   *issuertest.Browser
			page *issuertest.Page
		}
		for i := range logins {
			logins[i].br = issuertest.NewBrowser(t)
			logins[i].page = h.passwordStep(logins[i].br, oauth2.GenerateVerifier())
			if logins[i].page.Form.Get("token") == "" {
				t.Fatalf("login %d: no second-factor page: HTTP %d", i, logins[i].page.Response.StatusCode)
			}
		}
		to(logins[1].br, other)
		form := totpForm(totpAt(t, secret, h.clock.Now()))
		sent := make([]issuertest.Sent, len(logins))
		for i := range logins {
			req := logins[i].br.PostRequest(t, logins[i].page, "/login/mfa", form)
			sent[i] = issuertest.Sent{From: issuertest.Source{IP: "127.0.0.1"}, Host: req.URL.Host, Request: req}
		}
		results := issuertest.SendTogether(t, sent...)
		wins := 0
		for _, r := range results {
			if _, err := r.Redirect(); err == nil {
				wins++
			}
		}
		if wins != 1 {
			t.Fatalf("one code at both replicas: %d logins got in, want 1 (HTTP %d, %d)", wins, results[0].Status, results[1].Status)
		}
	})
}
