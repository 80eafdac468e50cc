package cli_test

import (
	"net/url"
	"regexp"
	"slices"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

var (
	enrolSecret    = regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`)
	enrolRecovery  = regexp.MustCompile(`<li><code>([A-Z2-7-]+)</code></li>`)
	wantAMRWithOTP = []string{"pwd", "otp", "mfa"}
)

// TestBuiltinSecondFactorCheckToken: nsauth serve with NSAUTH_MFA=required
// takes the administrator through TOTP enrolment at the login page, and
// CheckToken reports the login's amr (pwd, otp, mfa) in both token modes,
// after a refresh too; on each backend.
func TestBuiltinSecondFactorCheckToken(t *testing.T) {
	t.Parallel()
	for _, b := range storetest.Backends() {
		for _, mode := range []string{"jwt", "introspection"} {
			t.Run(b.Name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				env := storeEnv(t, b)
				env["NSAUTH_MFA"] = "required"
				env["NSAUTH_TOKEN_MODE"] = mode
				s := startBuiltinServe(t, env, time.Now)
				s.waitReady(t)

				v := oauth2.GenerateVerifier()
				br := issuertest.NewBrowser(t)
				page := br.Submit(t, br.Open(t, s.authorize(t, v)), "admin", biAdminPassword)
				m := enrolSecret.FindStringSubmatch(page.Body)
				if m == nil {
					t.Fatalf("the password did not lead to enrolment: HTTP %d\n%s", page.Response.StatusCode, page.Body)
				}
				codes := br.Post(t, page, "/login/mfa/enroll", url.Values{"code": {rfc6238(t, m[1], time.Now())}})
				if n := len(enrolRecovery.FindAllString(codes.Body, -1)); n != 10 {
					t.Fatalf("enrolment showed %d recovery codes: HTTP %d\n%s", n, codes.Response.StatusCode, codes.Body)
				}
				loc, err := issuertest.RedirectOf(br.Post(t, codes, "/login/mfa/continue", nil))
				if err != nil {
					t.Fatal(err)
				}
				tok, err := s.loginCli(t, loc.Query().Get("code"), v)
				if err != nil {
					t.Fatalf("LoginCli: %v", err)
				}
				ct, err := s.checkToken(tok.GetAccessToken())
				if err != nil {
					t.Fatalf("CheckToken: %v", err)
				}
				if !slices.Equal(ct.GetAmr(), wantAMRWithOTP) {
					t.Errorf("CheckToken amr = %v, want %v", ct.GetAmr(), wantAMRWithOTP)
				}
				refreshed, err := s.refreshCli(tok.GetRefreshToken())
				if err != nil {
					t.Fatalf("RefreshCli: %v", err)
				}
				if ct, err := s.checkToken(refreshed.GetAccessToken()); err != nil || !slices.Equal(ct.GetAmr(), wantAMRWithOTP) {
					t.Errorf("CheckToken after a refresh: amr %v, %v", ct.GetAmr(), err)
				}
			})
		}
	}
}
