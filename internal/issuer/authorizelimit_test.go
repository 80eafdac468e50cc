package issuer_test

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer"
)

// TestAuthorizeRateLimitPerAddress runs requests from several client
// addresses, behind a trusted proxy, against a limit of 2 a minute.
func TestAuthorizeRateLimitPerAddress(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) {
		c.AuthorizePerMinute = 2
		c.Clients = clientaddr.NewResolver([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	})
	authorize := h.authorizeURL(oauth2.GenerateVerifier(), nil)
	u, _ := url.Parse(authorize)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(t *testing.T, method, path, from string) *http.Response {
		t.Helper()
		target, body := authorize, ""
		if method == http.MethodPost {
			target, body = h.url+"/authorize", u.RawQuery
		}
		if path != "" {
			target = h.url + path
		}
		req, _ := http.NewRequest(method, target, strings.NewReader(body))
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("X-Forwarded-For", from)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, tc := range []struct {
		name    string
		method  string
		path    string // default: the authorize URL
		from    string
		advance time.Duration
		want    int
	}{
		{"first request", http.MethodGet, "", "198.51.100.7", 0, http.StatusFound},
		{"second request", http.MethodGet, "", "198.51.100.7", 0, http.StatusFound},
		{"third request is refused", http.MethodGet, "", "198.51.100.7", 0, http.StatusTooManyRequests},
		{"a POST shares the budget", http.MethodPost, "", "198.51.100.7", 0, http.StatusTooManyRequests},
		{"so does a request the provider would refuse", http.MethodGet, "/authorize?client_id=nobody", "198.51.100.7", 0, http.StatusTooManyRequests},
		{"the login page is not limited", http.MethodGet, "/login?authRequestID=x", "198.51.100.7", 0, http.StatusBadRequest},
		{"another address behind the proxy has its own budget", http.MethodPost, "", "198.51.100.8", 0, http.StatusFound},
		{"IPv6: first host of a /64", http.MethodGet, "", "2001:db8::1", 0, http.StatusFound},
		{"IPv6: second host of the /64", http.MethodGet, "", "2001:db8::2", 0, http.StatusFound},
		{"IPv6: the /64 shares one budget", http.MethodGet, "", "2001:db8::3", 0, http.StatusTooManyRequests},
		{"the budget refills at 2 a minute", http.MethodGet, "", "198.51.100.7", 30 * time.Second, http.StatusFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.clock.Advance(tc.advance)
			resp := send(t, tc.method, tc.path, tc.from)
			if resp.StatusCode != tc.want {
				t.Fatalf("HTTP %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "30" {
				t.Fatalf("Retry-After = %q, want 30 (one request every 30 s)", resp.Header.Get("Retry-After"))
			}
		})
	}
}
