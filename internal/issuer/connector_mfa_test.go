package issuer_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/connector/connectortest"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
)

// TestConnectorSecondFactor: a connector's sign-in is a first factor like
// a password. NSAUTH_MFA=required stops a user without a second factor
// unless the connector trusts the upstream's and the upstream says it did
// one; a user with an authenticator app is asked for its code; a passkey
// is offered only after a proven second factor, never after "fed" alone.
func TestConnectorSecondFactor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		required bool
		passkeys bool // an issuer whose host can be a WebAuthn relying party
		trusted  bool // --trust-upstream-mfa, and the upstream's amr says mfa
		totp     bool
		check    func(t *testing.T, h *connectorHarness, p *issuertest.Page)
	}{
		{name: "required, no second factor: refused", required: true, check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
			if p.Response.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "nsauth users enrol-link alice") {
				t.Fatalf("HTTP %d, want the enrolment refusal:\n%s", p.Response.StatusCode, p.Body)
			}
		}},
		{name: "required, upstream second factor trusted: signed in", required: true, trusted: true, check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
			if claims := h.wantCode(t, p); !slices.Contains(claims["amr"].([]any), any("mfa")) {
				t.Fatalf("amr %v", claims["amr"])
			}
		}},
		{name: "an authenticator app: its code is asked", totp: true, check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
			if p.Response.StatusCode != http.StatusOK || !strings.Contains(p.Body, `action="/login/mfa"`) {
				t.Fatalf("HTTP %d, want the second factor's page:\n%s", p.Response.StatusCode, p.Body)
			}
		}},
		{name: "fed alone: no passkey offer", passkeys: true, check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
			h.wantCode(t, p)
		}},
		{name: "trusted upstream second factor: a passkey is offered", passkeys: true, trusted: true, check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
			if p.Response.StatusCode != http.StatusOK || !strings.Contains(p.Body, `action="/login/passkey/skip"`) {
				t.Fatalf("HTTP %d, want the passkey offer:\n%s", p.Response.StatusCode, p.Body)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newConnectorHarness(t, func(c *issuer.Config) {
				c.RequireSecondFactor = tc.required
				if tc.passkeys {
					c.Issuer = strings.Replace(c.Issuer, "127.0.0.1", "localhost", 1)
				}
			})
			fake := h.addOIDC(t, "corp", func(c *store.Connector) { c.TrustUpstreamMFA = tc.trusted })
			u := connectortest.DefaultUser()
			if tc.trusted {
				u.AMR = []string{"pwd", "mfa"}
			}
			fake.SetUser(u)
			h.link(t, h.alice, "corp", u.Subject)
			if tc.totp {
				if err := h.st.EnrollTOTP(ctx, h.alice.ID, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", 0, nil); err != nil {
					t.Fatal(err)
				}
			}
			_, p := h.signIn(t, "corp", nil)
			tc.check(t, h, p)
		})
	}
}
