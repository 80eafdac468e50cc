package issuer_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// callbackServer is a client's redirect URI on a loopback port: it keeps
// the codes it receives.
func callbackServer(t *testing.T) (string, <-chan url.Values) {
	t.Helper()
	got := make(chan url.Values, 4)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/auth/callback" {
			http.NotFound(w, r) // the browser's favicon
			return
		}
		got <- r.URL.Query()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>Logged in</title><p id="done">You are logged in. You can close this window.</p>`))
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL + "/api/auth/callback", got
}

// screenshot saves the page as dir/name.png when $NSAUTH_TEST_SCREENSHOTS
// names a directory (the pictures in docs/ are made so).
func screenshot(t *testing.T, c *issuertest.Chromium, name string) {
	t.Helper()
	dir := os.Getenv("NSAUTH_TEST_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := issuertest.Get(t, c, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSecondFactorInChromium: in headless Chromium, with NSAUTH_MFA=required,
// a user without a second factor cannot finish a login with the password;
// through an enrolment link and the password they are shown the QR code
// and the key, type the first code and see the ten recovery codes once.
// The next login asks for a code from the app, a replayed one is refused,
// and a fresh one goes on to the client with tokens that say pwd, otp,
// mfa. The pages run
// under their strict CSP (Chromium enforces form-action on the redirect to
// the client).
func TestSecondFactorInChromium(t *testing.T) {
	t.Parallel()
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			h := newHarness(t, b, func(c *issuer.Config) { c.RequireSecondFactor = true })
			cb, codes := callbackServer(t)
			c := issuertest.NewChromium(t, 90*time.Second)
			css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
			login := func(what string) string {
				v := oauth2.GenerateVerifier()
				c.Do(t, what+": password",
					chromedp.Navigate(h.authorizeURL(v, url.Values{"redirect_uri": {cb}})),
					chromedp.WaitVisible(css("#password")),
					chromedp.SendKeys(css("#username"), "alice"),
					chromedp.SendKeys(css("#password"), alicePassword),
				)
				return v
			}
			redeem := func(v string) tokenResponse {
				t.Helper()
				var q url.Values
				select {
				case q = <-codes:
				case <-time.After(30 * time.Second):
					t.Fatal("the browser did not reach the client's redirect URI")
				}
				tr := h.token(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {cb}, "code_verifier": {v}})
				if tr.status != http.StatusOK {
					t.Fatalf("exchange: HTTP %d %s", tr.status, tr.Error)
				}
				return tr
			}

			login("first login")
			screenshot(t, c, "mfa-1-password")
			c.Do(t, "first login: refused without a second factor",
				chromedp.Click(css("button[type=submit]")),
				chromedp.WaitVisible(css("#message")),
			)
			if msg := issuertest.Get(t, c, chromedp.Text(css("#message"))); !strings.Contains(msg, "nsauth users enrol-link alice") {
				t.Fatalf("the password alone under a required policy says %q", msg)
			}
			c.Do(t, "enrolment link: password",
				chromedp.Navigate(h.enrolLink()),
				chromedp.WaitVisible(css("#password")),
				chromedp.SendKeys(css("#password"), alicePassword),
				chromedp.Click(css("button[type=submit]")),
				chromedp.WaitVisible(css("#totp-secret")),
				chromedp.WaitVisible(css(".qr svg")),
			)
			screenshot(t, c, "mfa-2-enrol")
			secret := strings.TrimSpace(issuertest.Get(t, c, chromedp.Text(css("#totp-secret"))))
			if !regexp.MustCompile(`^[A-Z2-7]{32}$`).MatchString(secret) {
				t.Fatalf("the page shows the key %q", secret)
			}
			c.Do(t, "enrolment link: first code",
				chromedp.SendKeys(css("#code"), totpAt(t, secret, h.clock.Now())),
				chromedp.Click(css("button[type=submit]")),
				chromedp.WaitVisible(css("#recovery-codes")),
			)
			screenshot(t, c, "mfa-3-recovery-codes")
			shown := strings.Fields(issuertest.Get(t, c, chromedp.Text(css("#recovery-codes"))))
			if len(shown) != 10 {
				t.Fatalf("the page shows %d recovery codes: %q", len(shown), shown)
			}
			c.Do(t, "enrolment link: continue",
				chromedp.Click(css("button[type=submit]")),
				chromedp.WaitVisible(css("#message")),
			)
			if msg := issuertest.Get(t, c, chromedp.Text(css("#message"))); !strings.Contains(msg, msgLinkEnrolled) {
				t.Fatalf("the end of the enrolment says %q", msg)
			}

			// Second login, in the same browser: the code page.
			used := totpAt(t, secret, h.clock.Now())
			v := login("second login")
			c.Do(t, "second login: to the code page",
				chromedp.Click(css("button[type=submit]")),
				chromedp.WaitVisible(css("#code")),
			)
			c.Do(t, "second login: the enrolment's code again",
				chromedp.SendKeys(css("#code"), used),
				chromedp.Click(css("button[type=submit]")),
				chromedp.WaitVisible(css("#mfa-error")),
			)
			h.clock.Advance(30 * time.Second)
			screenshot(t, c, "mfa-4-code-refused")
			c.Do(t, "second login: a fresh code",
				chromedp.SendKeys(css("#code"), totpAt(t, secret, h.clock.Now())),
				chromedp.Click(css("button[type=submit]")),
				chromedp.WaitVisible(css("#done")),
			)
			if got := amrOf(t, redeem(v).AccessToken); !slices.Equal(got, wantMFA) {
				t.Errorf("access token amr after a code = %v, want %v", got, wantMFA)
			}
		})
	}
}
