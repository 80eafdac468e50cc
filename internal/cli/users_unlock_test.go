package cli_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// browserFrom is a browser whose connections come from ip (a loopback
// address such as 127.0.0.41: Linux routes the whole 127/8 to lo).
func browserFrom(t *testing.T, ip string) *issuertest.Browser {
	t.Helper()
	b := issuertest.NewBrowser(t)
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	b.Client.Transport = &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}
	return b
}

// TestUsersUnlockLetsTheSameAddressIn is `nsauth users unlock` as a user
// meets it: wrong passwords typed on the login page of a running server,
// from one address, lock the account; the administrator runs the command;
// the owner's next sign-in from that same address, in that same browser,
// gets in (it was answered "Too many sign-in attempts" while the unlock
// left the address's counter full of the account's failures).
func TestUsersUnlockLetsTheSameAddressIn(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env := storeEnv(t, b)
		s := startBuiltinServe(t, env, time.Now)
		ip := map[string]string{"sqlite": "127.0.0.41", "postgres": "127.0.0.42"}[b.Name]
		browser := browserFrom(t, ip)
		login := func() *issuertest.Page {
			t.Helper()
			page := browser.Open(t, s.authorize(t, oauth2.GenerateVerifier()))
			if page.Response.StatusCode != http.StatusOK {
				t.Fatalf("authorize: HTTP %d\n%s", page.Response.StatusCode, page.Body)
			}
			return page
		}
		for i := range issuer.DefaultLoginAttempts {
			if res := browser.Submit(t, login(), "admin", fmt.Sprintf("wrong-password-%d", i)); res.Response.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong password %d: HTTP %d, want 401", i+1, res.Response.StatusCode)
			}
		}
		res := browser.Submit(t, login(), "admin", biAdminPassword)
		if res.Response.StatusCode != http.StatusTooManyRequests || !strings.Contains(res.Body, "Too many sign-in attempts") {
			t.Fatalf("the right password after %d wrong ones: HTTP %d, want 429 Too many sign-in attempts", issuer.DefaultLoginAttempts, res.Response.StatusCode)
		}

		unlocked := runUsers(env, nil, "unlock", "admin")
		if unlocked.code != 0 || !strings.Contains(unlocked.errOut, `Unlocked "admin"`) {
			t.Fatalf("unlock: exit %d\n%s", unlocked.code, unlocked.errOut)
		}
		t.Logf("unlock said: %s", unlocked.errOut)

		loc := browser.Login(t, s.authorize(t, oauth2.GenerateVerifier()), "admin", biAdminPassword)
		if loc.Query().Get("code") == "" {
			t.Fatalf("after unlock, the sign-in from %s returned no code: %s", ip, loc.Redacted())
		}
	})
}
