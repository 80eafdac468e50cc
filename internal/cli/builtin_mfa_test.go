package cli_test

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
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
// refuses the administrator's password alone; a link from nsauth users
// enrol-link takes them through TOTP enrolment, and CheckToken reports the login's amr (pwd, otp, mfa) in both token modes,
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

				// The password alone cannot finish a login without a
				// second factor, nor add one.
				br := issuertest.NewBrowser(t)
				refused := br.Submit(t, br.Open(t, s.authorize(t, oauth2.GenerateVerifier())), "admin", biAdminPassword)
				if refused.Response.StatusCode != http.StatusForbidden || !strings.Contains(refused.Body, "nsauth users enrol-link admin") ||
					enrolSecret.MatchString(refused.Body) {
					t.Fatalf("the password alone under NSAUTH_MFA=required: HTTP %d\n%s", refused.Response.StatusCode, refused.Body)
				}
				// An enrolment link from the command line, and the password.
				r := runUsers(env, nil, "enrol-link", "admin")
				if r.code != 0 || !strings.HasPrefix(r.out, s.issuer+"/login/enrol?link=") {
					t.Fatalf("nsauth users enrol-link admin: exit %d\n%s%s", r.code, r.out, r.errOut)
				}
				link := issuertest.NewBrowser(t)
				form := link.Open(t, strings.TrimSpace(r.out))
				page := link.Post(t, form, "/login/enrol", url.Values{"password": {biAdminPassword}})
				m := enrolSecret.FindStringSubmatch(page.Body)
				if m == nil {
					t.Fatalf("the link and the password did not lead to enrolment: HTTP %d\n%s", page.Response.StatusCode, page.Body)
				}
				codes := link.Post(t, page, "/login/mfa/enroll", url.Values{"code": {rfc6238(t, m[1], time.Now())}})
				recovery := enrolRecovery.FindAllStringSubmatch(codes.Body, -1)
				if len(recovery) != 10 {
					t.Fatalf("enrolment showed %d recovery codes: HTTP %d\n%s", len(recovery), codes.Response.StatusCode, codes.Body)
				}
				if done := link.Post(t, codes, "/login/mfa/continue", nil); !strings.Contains(done.Body, "second factor is set up") {
					t.Fatalf("the end of the enrolment: HTTP %d\n%s", done.Response.StatusCode, done.Body)
				}
				// Then a login with the password and a recovery code (the
				// app's code of this time step was used by the enrolment).
				v := oauth2.GenerateVerifier()
				mfa := br.Submit(t, br.Open(t, s.authorize(t, v)), "admin", biAdminPassword)
				// The default issuer, http://localhost:PORT, has passkeys:
				// a login with a second factor offers one; not now.
				offer := br.Post(t, mfa, "/login/mfa", url.Values{"method": {"recovery"}, "recovery_code": {recovery[0][1]}})
				if offer.Response.StatusCode != http.StatusOK || !strings.Contains(offer.Body, `action="/login/passkey/skip"`) {
					t.Fatalf("no passkey offered after the second factor: HTTP %d\n%s", offer.Response.StatusCode, offer.Body)
				}
				loc, err := issuertest.RedirectOf(br.Post(t, offer, "/login/passkey/skip", nil))
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
