package issuer_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/connector/ldaptest"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store"
)

// TestConnectorLDAPSlapd: the password form through the real LDAP
// connector against OpenLDAP's slapd (StartTLS): a sign-in with the
// directory's groups, a wrong password and a person the filter keeps out
// refused alike, and a refresh refused once the directory disables the
// person.
func TestConnectorLDAPSlapd(t *testing.T) {
	t.Parallel()
	dir := ldaptest.Start(t)
	h := newConnectorHarness(t, func(c *issuer.Config) { c.BuildConnector = nil })
	if err := h.st.CreateConnector(ctx, &store.Connector{Name: "corp-ldap", Type: store.ConnectorLDAP, DisplayName: "Corp directory",
		Settings: dir.SettingsJSON("starttls"), Secret: ldaptest.BindPassword, CreateUsers: true}); err != nil {
		t.Fatal(err)
	}
	bob := ldaptest.Bob
	tr := h.redeem(t, h.directoryLogin(t, nil, "corp-ldap", bob.UID, bob.Password))
	_, claims := jwtParts(t, tr.IDToken)
	user, err := h.st.UserByUsername(ctx, bob.UID)
	if err != nil || claims["sub"] != user.ID || !slices.Equal(claims["amr"].([]any), []any{"pwd"}) {
		t.Fatalf("claims %v, user %v %v", claims, user, err)
	}
	if groups, err := h.st.UserGroups(ctx, user.ID); err != nil || !slices.Equal(groups, []string{"corp-ldap:developers"}) {
		t.Fatalf("groups %v %v", groups, err)
	}

	for _, tc := range []struct{ name, username, password, reason string }{
		{"wrong password", bob.UID, "guess", "wrong_credentials"},
		{"kept out by the filter", ldaptest.Carol.UID, ldaptest.Carol.Password, ""},
	} {
		p := h.directoryLogin(t, nil, "corp-ldap", tc.username, tc.password)
		if p.Response.StatusCode != http.StatusUnauthorized || !strings.Contains(p.Body, "Wrong username or password.") {
			t.Fatalf("%s: HTTP %d\n%s", tc.name, p.Response.StatusCode, p.Body)
		}
		if e := h.lastRefusal(t); tc.reason != "" && e.Reason != tc.reason {
			t.Fatalf("%s: refusal %+v", tc.name, e)
		}
	}

	dir.Disable(t, bob)
	h.clock.Advance(6 * time.Minute)
	if got := h.refresh(tr.RefreshToken); got.Error != "invalid_grant" || !strings.Contains(got.ErrorDescription, "can no longer sign in upstream") {
		t.Fatalf("refresh of a person the directory disabled: %s %s", got.Error, got.ErrorDescription)
	}
}
