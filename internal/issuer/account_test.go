package issuer_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// accountGet fetches path of the account page with b, without following
// redirects beyond the login page.
func (h *harness) accountGet(b *issuertest.Browser, path string) *issuertest.Page {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return b.Do(h.t, req)
}

// follow fetches the Location of a redirect page.
func (h *harness) follow(b *issuertest.Browser, p *issuertest.Page) *issuertest.Page {
	h.t.Helper()
	loc, err := issuertest.RedirectOf(p)
	if err != nil {
		h.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, p.URL.ResolveReference(loc).String(), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return b.Do(h.t, req)
}

// accountLogin opens /account in b, signs in as username with pw through
// the login it is sent to, and returns the account page it comes back to.
func (h *harness) accountLogin(b *issuertest.Browser, username, pw string) *issuertest.Page {
	h.t.Helper()
	p := h.accountGet(b, "/account")
	if loc, err := issuertest.RedirectOf(p); err != nil || loc.Path != "/authorize" {
		h.t.Fatalf("GET /account without a session: want a redirect to /authorize, got HTTP %d %v", p.Response.StatusCode, loc)
	}
	login := h.follow(b, p)
	if login.Form.Get("authRequestID") == "" {
		h.t.Fatalf("the account page's authorization did not lead to the login form: HTTP %d\n%s", login.Response.StatusCode, login.Body)
	}
	res := b.Submit(h.t, login, username, pw)
	loc, err := issuertest.RedirectOf(res)
	if err != nil {
		h.t.Fatal(err)
	}
	if loc.Path != "/account/callback" || loc.Query().Get("code") == "" {
		h.t.Fatalf("the login ended at %s, not the account page's callback", loc.Redacted())
	}
	back := h.follow(b, res)
	if loc, err := issuertest.RedirectOf(back); err != nil || loc.String() != "/account" {
		h.t.Fatalf("the callback did not go back to /account: HTTP %d %v\n%s", back.Response.StatusCode, loc, back.Body)
	}
	page := h.follow(b, back)
	if page.Response.StatusCode != http.StatusOK || !strings.Contains(page.Body, `id="sessions"`) {
		h.t.Fatalf("the account page after login: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	return page
}

func TestAccountPageSessionGate(t *testing.T) {
	t.Parallel()
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, b, nil)
			br := issuertest.NewBrowser(t)
			page := h.accountLogin(br, "alice", alicePassword)
			if !strings.Contains(page.Body, "alice") {
				t.Errorf("the account page does not name its user:\n%s", page.Body)
			}
			for k, want := range map[string]string{"Cache-Control": "no-store"} {
				if got := page.Response.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if csp := page.Response.Header.Get("Content-Security-Policy"); strings.Contains(csp, "script-src") {
				t.Errorf("the account page allows scripts without a passkey section: %s", csp)
			}
			// Again: the session is used, no login.
			again := h.accountGet(br, "/account")
			if again.Response.StatusCode != http.StatusOK {
				t.Errorf("GET /account with the session: HTTP %d", again.Response.StatusCode)
			}
			_ = url.Values{}
		})
	}
}
