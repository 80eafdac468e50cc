package issuer_test

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// These tests present one refresh token, rotated or about to be, from a
// thief's address and from the client's, as the same client: a thief who
// copied a refresh token and the client's credentials, or any caller of
// RefreshCli, which presents every refresh token as the broker's client.
// Only a retry from where the rotation came from may get its successor
// again; anything else within the reuse grace revokes the family.

var (
	victim = issuertest.Source{IP: "127.0.0.2"}
	thief  = issuertest.Source{IP: "127.0.0.3"}
)

// presentation is one refresh request, sent to host (host:port) from by,
// asking for scope when it is set.
type presentation struct {
	by    issuertest.Source
	host  string
	rt    string
	scope string
}

// present sends every presentation at once, as an attacker racing the
// client does (issuertest.SendTogether), and returns the answers in order.
func (h *harness) present(ps ...presentation) []tokenResponse {
	h.t.Helper()
	sent := make([]issuertest.Sent, len(ps))
	for i, p := range ps {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {p.rt}}
		if p.scope != "" {
			form.Set("scope", p.scope)
		}
		req, err := http.NewRequest(http.MethodPost, "http://"+p.host+"/oauth/token", strings.NewReader(form.Encode()))
		if err != nil {
			h.t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(h.client), url.QueryEscape(h.secret))
		sent[i] = issuertest.Sent{From: p.by, Host: p.host, Request: req}
	}
	out := make([]tokenResponse, len(ps))
	for i, a := range issuertest.SendTogether(h.t, sent...) {
		if err := json.Unmarshal(a.Body, &out[i]); err != nil {
			h.t.Fatalf("presentation %d from %s: HTTP %d, not JSON: %v", i, ps[i].by.IP, a.Status, err)
		}
		out[i].status = a.Status
	}
	return out
}

// wantFamilyRevoked fails unless every token of tr's family is dead: its
// refresh token refused, its access token inactive.
func (h *harness) wantFamilyRevoked(what string, tr tokenResponse) {
	h.t.Helper()
	if r := h.refresh(tr.RefreshToken); r.status != http.StatusBadRequest || r.Error != "invalid_grant" {
		h.t.Errorf("%s's refresh token afterwards = %d %s, want invalid_grant (family revoked)", what, r.status, r.Error)
	}
	if active := h.introspect(tr.AccessToken)["active"]; active != false {
		h.t.Errorf("%s's access token afterwards: active = %v, want false", what, active)
	}
}

// newThiefHarness is a harness with a replica, both trusting 127.0.0.1
// as a proxy (the thief's and the client's own addresses are not), and no
// login limit in the way of the many logins of one test.
func newThiefHarness(t *testing.T, b storetest.Backend) (h *harness, replica string) {
	t.Helper()
	mod := func(c *issuer.Config) {
		c.Clients = clientaddr.NewResolver([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
		c.LoginAttempts = 1000
	}
	h = newHarness(t, b, mod)
	return h, h.replica(mod)
}

// in is h for the subtest t.
func (h *harness) in(t *testing.T) *harness {
	sub := *h
	sub.t = t
	return &sub
}

// TestRefreshGraceThief is the attack as found: one refresh token, rotated
// by first, presented again within the grace by second, as the same
// client. The session may continue only when second is where first was
// (the client retrying an answer it lost); from anywhere else, whoever
// came first, the second presentation gets nothing and the family is
// revoked, the first one's new tokens with it.
func TestRefreshGraceThief(t *testing.T) {
	t.Parallel()
	// Through the proxy both replicas trust.
	proxied := func(xff string) issuertest.Source { return issuertest.Source{IP: "127.0.0.1", ForwardedFor: xff} }
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h, replica := newThiefHarness(t, b)
		for _, tc := range []struct {
			name          string
			first, second issuertest.Source
			// scope is what the second presentation asks for.
			scope string
			// onReplica sends the second presentation to the replica.
			onReplica bool
			sameToken bool // second gets first's successor; otherwise the family is revoked
		}{
			{name: "thief first, then the client's retry", first: thief, second: victim},
			{name: "client first, then the thief", first: victim, second: thief},
			{name: "client first, then the thief on another replica", first: victim, second: thief, onReplica: true},
			{name: "thief first, then the client's retry on another replica", first: thief, second: victim, onReplica: true},
			{name: "the client's retry from its own address", first: victim, second: victim, sameToken: true},
			{name: "the client's retry on another replica", first: victim, second: victim, onReplica: true, sameToken: true},
			{name: "through the proxy, the client's retry", first: proxied("198.51.100.20"), second: proxied("198.51.100.20"), sameToken: true},
			{name: "through the proxy, another client address", first: proxied("198.51.100.20"), second: proxied("198.51.100.21")},
			{name: "a forged X-Forwarded-For from an untrusted peer", first: proxied("198.51.100.20"), second: issuertest.Source{IP: thief.IP, ForwardedFor: "198.51.100.20"}},
			{name: "IPv6 through the proxy, the same /64", first: proxied("2001:db8:5:6::1"), second: proxied("2001:db8:5:6:a:b:c:d"), sameToken: true},
			{name: "IPv6 through the proxy, another /64", first: proxied("2001:db8:5:6::1"), second: proxied("2001:db8:5:7::1")},
			{name: "the client's address changed before its retry", first: victim, second: issuertest.Source{IP: "127.0.0.4"}},
			// Reuse is decided before anything else about the request.
			{name: "client first, then the thief asking for more scopes", first: victim, second: thief, scope: "openid profile email offline_access admin"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := h.in(t)
				target := h.host()
				if tc.onReplica {
					target = replica
				}
				rt := h.tokens(nil).RefreshToken
				first := h.present(presentation{tc.first, h.host(), rt, ""})[0]
				if first.status != http.StatusOK {
					t.Fatalf("first presentation = %d %s (%s)", first.status, first.Error, first.ErrorDescription)
				}
				h.clock.Advance(issuer.DefaultRefreshReuseGrace / 2)
				second := h.present(presentation{tc.second, target, rt, tc.scope})[0]
				if tc.sameToken {
					if second.status != http.StatusOK || second.RefreshToken != first.RefreshToken {
						t.Fatalf("retry = %d %s, same refresh token: %v; want the first answer's", second.status, second.Error, second.RefreshToken == first.RefreshToken)
					}
					if r := h.refresh(second.RefreshToken); r.status != http.StatusOK {
						t.Fatalf("the new token after the retry = %d %s", r.status, r.Error)
					}
					return
				}
				if second.status != http.StatusBadRequest || second.Error != "invalid_grant" || second.RefreshToken != "" || second.AccessToken != "" {
					t.Fatalf("second presentation = %d %s, refresh token given: %v; want invalid_grant and nothing",
						second.status, second.Error, second.RefreshToken != "")
				}
				h.wantFamilyRevoked("the first presenter", first)
			})
		}
	})
}

// TestRefreshGraceThiefSimultaneous presents one refresh token from the
// thief's and the client's addresses at once, half to each of two
// replicas: one presentation rotates, every other from the other address
// is reuse. Whoever got tokens got them from one address only, and at the
// end the whole family is revoked, including what the first rotation
// issued.
func TestRefreshGraceThiefSimultaneous(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h, replica := newThiefHarness(t, b)
		hosts := []string{h.host(), replica}
		for _, tc := range []struct {
			name    string
			rotated bool // the client rotated the token once before the race
		}{
			{"unused token", false},
			{"token rotated a moment ago", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := h.in(t)
				rt := h.tokens(nil).RefreshToken
				var issued []tokenResponse
				if tc.rotated {
					issued = append(issued, h.present(presentation{victim, hosts[0], rt, ""})...)
				}
				var ps []presentation
				for i := range 8 {
					by := victim
					if i%2 == 1 {
						by = thief
					}
					ps = append(ps, presentation{by, hosts[(i/2)%2], rt, ""})
				}
				answers := h.present(ps...)
				servedTo := map[string]bool{}
				for i, a := range answers {
					switch {
					case a.status == http.StatusOK:
						servedTo[ps[i].by.IP] = true
						issued = append(issued, a)
					case a.status != http.StatusBadRequest || a.Error != "invalid_grant" || a.RefreshToken != "":
						t.Errorf("presentation %d from %s = %d %s, want tokens or invalid_grant", i, ps[i].by.IP, a.status, a.Error)
					}
				}
				if len(servedTo) > 1 {
					t.Errorf("the thief and the client both got tokens of one family")
				}
				for _, tr := range issued {
					h.wantFamilyRevoked("a winner", tr)
				}
			})
		}
	})
}
