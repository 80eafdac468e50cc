package issuer_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/connector/connectortest"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
)

const msgBadStateText = "started in another browser"

// wantBadState checks p refuses a callback as of another browser,
// connector or sign-in, recorded as bad_state at connector name.
func (h *connectorHarness) wantBadState(t *testing.T, p *issuertest.Page, name string) {
	t.Helper()
	if p.Response.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, msgBadStateText) {
		t.Fatalf("HTTP %d, want 403 refusing the callback:\n%s", p.Response.StatusCode, p.Body)
	}
	if e := h.lastRefusal(t); e.Reason != "bad_state" || e.Target != name {
		t.Fatalf("refusal %+v: want bad_state at %s", e, name)
	}
}

// TestConnectorCallbackBoundToBrowser: the attacker signs in at the
// upstream with their own account and hands the callback URL to the
// victim's browser (login CSRF, session fixation). The victim's browser
// holds its own CSRF cookie, not the attacker's: the pending sign-in is
// not found, nothing is signed in, and the attacker's own sign-in is not
// used up by it. A callback used once is refused the second time.
func TestConnectorCallbackBoundToBrowser(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// victim returns the browser the callback is opened in, and the
		// header it sends.
		victim func(t *testing.T, h *connectorHarness) (*issuertest.Browser, http.Header)
	}{
		{"the victim's browser, on a login page of its own", func(t *testing.T, h *connectorHarness) (*issuertest.Browser, http.Header) {
			b := issuertest.NewBrowser(t)
			b.Open(t, h.authorizeURL(connectorVerifier, nil))
			return b, nil
		}},
		{"a browser without a CSRF cookie", func(t *testing.T, h *connectorHarness) (*issuertest.Browser, http.Header) {
			return issuertest.NewBrowser(t), nil
		}},
		{"a browser without a CSRF cookie, navigated from another site", func(t *testing.T, h *connectorHarness) (*issuertest.Browser, http.Header) {
			return issuertest.NewBrowser(t), http.Header{"Sec-Fetch-Site": {"cross-site"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newConnectorHarness(t, nil)
			fake := h.addOIDC(t, "corp", func(c *store.Connector) { c.CreateUsers = true })
			mallory := connectortest.DefaultUser()
			mallory.Subject, mallory.PreferredUsername, mallory.Email = "mallory-sub", "mallory", "mallory@example.com"
			fake.SetUser(mallory)
			attacker, callback := h.toUpstream(t, nil, "corp", nil)

			victim, header := tc.victim(t, h)
			req, err := http.NewRequest(http.MethodGet, callback, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range header {
				req.Header[k] = v
			}
			p := victim.Do(t, req)
			if header != nil {
				// The cross-site navigation is sent once more from our page;
				// then the browser's cookie (none) decides.
				p = h.get(t, victim, h.url+refreshTarget(t, p))
			}
			h.wantBadState(t, p, "corp")
			if _, err := h.st.UserByUsername(ctx, "mallory"); err == nil {
				t.Fatal("the victim's browser signed in as the attacker")
			}

			// The attacker's browser still finishes its own sign-in, once.
			if loc, err := issuertest.RedirectOf(h.get(t, attacker, callback)); err != nil || loc.Query().Get("code") == "" {
				t.Fatalf("the attacker's own browser lost its sign-in: %v %v", loc, err)
			}
			h.wantBadState(t, h.get(t, attacker, callback), "corp")
		})
	}
}

// TestConnectorMixUp: a response for one connector is never taken by
// another: the pending sign-in names its connector, so a callback of
// corp's delivered at other's path (and the reverse) is refused before
// any code is redeemed, and uses the sign-in up.
func TestConnectorMixUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ start, deliverAt string }{
		{"corp", "other"},
		{"other", "corp"},
	} {
		t.Run(tc.start+" answered at "+tc.deliverAt, func(t *testing.T) {
			t.Parallel()
			h := newConnectorHarness(t, nil)
			fakes := map[string]*connectortest.OIDC{}
			for _, name := range []string{"corp", "other"} {
				fakes[name] = h.addOIDC(t, name, nil)
				h.link(t, h.alice, name, connectortest.DefaultUser().Subject)
			}
			b, callback := h.toUpstream(t, nil, tc.start, nil)
			u, err := url.Parse(callback)
			if err != nil {
				t.Fatal(err)
			}
			moved := strings.Replace(u.String(), "/login/connector/"+tc.start+"/", "/login/connector/"+tc.deliverAt+"/", 1)
			h.wantBadState(t, h.get(t, b, moved), tc.deliverAt)
			for name, f := range fakes {
				if n := f.Count(connectortest.OIDCPathToken); n != 0 {
					t.Fatalf("%d code redemptions at %s", n, name)
				}
			}
			// Used up: the right path refuses it now too.
			h.wantBadState(t, h.get(t, b, callback), tc.start)
		})
	}
}

// TestConnectorDisabled: a disabled connector's button is gone, its
// start and callback refused, even for a sign-in begun before.
func TestConnectorDisabled(t *testing.T) {
	t.Parallel()
	h := newConnectorHarness(t, nil)
	h.addOIDC(t, "corp", nil)
	h.link(t, h.alice, "corp", connectortest.DefaultUser().Subject)
	b, callback := h.toUpstream(t, nil, "corp", nil)
	if err := h.st.SetConnectorDisabled(ctx, "corp", true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		do   func() *issuertest.Page
		want int
	}{
		{"a callback begun before", func() *issuertest.Page { return h.get(t, b, callback) }, http.StatusForbidden},
		{"a start", func() *issuertest.Page {
			page := b.Open(t, h.authorizeURL(connectorVerifier, nil))
			if strings.Contains(page.Body, "Continue with") {
				t.Errorf("the login page still offers the disabled connector:\n%s", page.Body)
			}
			return b.Post(t, page, "/login/connector", url.Values{"connector": {"corp"}})
		}, http.StatusForbidden},
	} {
		if p := tc.do(); p.Response.StatusCode != tc.want || !strings.Contains(p.Body, "not available") {
			t.Errorf("%s: HTTP %d, want %d not available:\n%s", tc.name, p.Response.StatusCode, tc.want, p.Body)
		}
	}
	if e := h.lastRefusal(t); e.Reason != "connector_unavailable" || e.Target != "corp" {
		t.Fatalf("refusal %+v", e)
	}
}
