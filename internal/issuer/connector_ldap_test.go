package issuer_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
)

// directoryLogin posts the login form with an LDAP connector chosen.
func (h *connectorHarness) directoryLogin(t *testing.T, b *issuertest.Browser, name, username, password string) *issuertest.Page {
	t.Helper()
	if b == nil {
		b = issuertest.NewBrowser(t)
	}
	page := b.Open(t, h.authorizeURL(connectorVerifier, nil))
	if name != "" && !strings.Contains(page.Body, `<option value="`+name+`"`) {
		t.Fatalf("the login form offers no %s:\n%s", name, page.Body)
	}
	return b.Post(t, page, "/login", url.Values{"username": {username}, "password": {password}, "connector": {name}})
}

// TestConnectorLDAPLogin: the password form with an LDAP connector chosen
// signs in through the directory; every refusal says the same as a wrong
// password, and the audit trail tells them apart.
func TestConnectorLDAPLogin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, connector, username, password string
		setup                               func(t *testing.T, h *connectorHarness)
		wantReason                          string // "" for a sign-in
		unreachable                         bool
	}{
		{name: "directory unreachable: named, not a wrong password", connector: "dir", username: "bob", password: "bob-password", unreachable: true,
			setup: func(t *testing.T, h *connectorHarness) { h.dir.unreachable = true }},
		{name: "right password", connector: "dir", username: "bob", password: "bob-password"},
		{name: "wrong password", connector: "dir", username: "bob", password: "guess", wantReason: "wrong_credentials"},
		{name: "unknown user", connector: "dir", username: "nobody", password: "guess", wantReason: "wrong_credentials"},
		{name: "no such connector", connector: "nope", username: "bob", password: "bob-password", wantReason: "connector_unavailable"},
		{name: "gone from the directory", connector: "dir", username: "bob", password: "bob-password", wantReason: "user_gone",
			setup: func(t *testing.T, h *connectorHarness) { h.dir.gone["bob-uuid"] = true }},
		{name: "disabled in nsauth", connector: "dir", username: "bob", password: "bob-password", wantReason: "disabled",
			setup: func(t *testing.T, h *connectorHarness) {
				if p := h.directoryLogin(t, nil, "dir", "bob", "bob-password"); p.Response.StatusCode != http.StatusSeeOther {
					t.Fatalf("first sign-in: HTTP %d\n%s", p.Response.StatusCode, p.Body)
				}
				if err := h.st.SetDisabled(ctx, "bob", true); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "not linked, the connector creates no users", connector: "dir", username: "bob", password: "bob-password", wantReason: "not_linked",
			setup: func(t *testing.T, h *connectorHarness) {
				if err := h.st.UpdateConnector(ctx, "dir", func(c *store.Connector) error { c.CreateUsers = false; return nil }); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newConnectorHarness(t, nil)
			h.addLDAP(t, "dir", nil)
			h.dir.add("bob", "bob-password", "bob-uuid", "staff")
			if tc.setup != nil {
				tc.setup(t, h)
			}
			b := issuertest.NewBrowser(t)
			page := b.Open(t, h.authorizeURL(connectorVerifier, nil))
			p := b.Post(t, page, "/login", url.Values{"username": {tc.username}, "password": {tc.password}, "connector": {tc.connector}})
			if tc.unreachable {
				if p.Response.StatusCode != http.StatusBadGateway || !strings.Contains(p.Body, "dir is unreachable; try again later.") {
					t.Fatalf("HTTP %d, want 502 naming the connector:\n%s", p.Response.StatusCode, p.Body)
				}
				return
			}
			if tc.wantReason == "" {
				claims := h.wantCode(t, p)
				bob, err := h.st.UserByUsername(ctx, "bob")
				if err != nil || claims["sub"] != bob.ID || !slices.Equal(claims["amr"].([]any), []any{"pwd"}) {
					t.Fatalf("claims %v, user %v %v: want bob with amr [pwd]", claims, bob, err)
				}
				if e := h.lastEvent(t, "login.succeeded"); e.Target != "dir" {
					t.Fatalf("login.succeeded %+v: want target dir", e)
				}
				return
			}
			if p.Response.StatusCode != http.StatusUnauthorized || !strings.Contains(p.Body, "Wrong username or password.") {
				t.Fatalf("HTTP %d, want 401 wrong credentials:\n%s", p.Response.StatusCode, p.Body)
			}
			if e := h.lastRefusal(t); e.Reason != tc.wantReason {
				t.Fatalf("refusal %+v, want reason %s", e, tc.wantReason)
			}
		})
	}
}

// TestConnectorLDAPLoginDefence: wrong directory passwords take places in
// the same counters as local ones: the last place locks the account out,
// and then even the right password waits.
func TestConnectorLDAPLoginDefence(t *testing.T) {
	t.Parallel()
	h := newConnectorHarness(t, func(c *issuer.Config) { c.LoginAttempts = 3 })
	h.addLDAP(t, "dir", nil)
	h.dir.add("bob", "bob-password", "bob-uuid")
	for i, want := range []struct {
		password string
		status   int
		text     string
	}{
		{"guess-1", http.StatusUnauthorized, "Wrong username or password."},
		{"guess-2", http.StatusUnauthorized, "Wrong username or password."},
		{"guess-3", http.StatusUnauthorized, "Too many sign-in attempts"},
		{"bob-password", http.StatusTooManyRequests, "Too many sign-in attempts"},
	} {
		p := h.directoryLogin(t, nil, "dir", "bob", want.password)
		if p.Response.StatusCode != want.status || !strings.Contains(p.Body, want.text) {
			t.Fatalf("attempt %d: HTTP %d, want %d %q:\n%s", i+1, p.Response.StatusCode, want.status, want.text, p.Body)
		}
	}
	if e := h.lastEvent(t, "login.locked_out"); e.Type == "" {
		t.Fatal("no lockout recorded")
	}
	h.clock.Advance(2 * time.Minute)
	h.wantCode(t, h.directoryLogin(t, nil, "dir", "bob", "bob-password"))
}

// TestPasswordLoginOff: NSAUTH_PASSWORD_LOGIN=false drops the nsauth
// account from the form and refuses a post without a connector; with no
// LDAP connector either, there is no password form at all.
func TestPasswordLoginOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		ldap     bool
		wantForm bool
	}{
		{"with an LDAP connector", true, true},
		{"without", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newConnectorHarness(t, func(c *issuer.Config) { c.NoPasswordLogin = true })
			h.addOIDC(t, "corp", nil)
			if tc.ldap {
				h.addLDAP(t, "dir", nil)
			}
			b := issuertest.NewBrowser(t)
			page := b.Open(t, h.authorizeURL(connectorVerifier, nil))
			if got := strings.Contains(page.Body, `action="/login"`); got != tc.wantForm || strings.Contains(page.Body, "nsauth account") ||
				!strings.Contains(page.Body, "Continue with Corp corp") {
				t.Fatalf("password form %v (want %v), or the nsauth account offered, or no button:\n%s", got, tc.wantForm, page.Body)
			}
			p := b.Submit(t, page, "alice", alicePassword)
			if p.Response.StatusCode != http.StatusBadRequest || !strings.Contains(p.Body, "does not take nsauth passwords") {
				t.Fatalf("a local password: HTTP %d\n%s", p.Response.StatusCode, p.Body)
			}
		})
	}
}

// TestConnectorLDAPRefresh: a refresh asks the directory, at most once per
// check interval, whether the user may still sign in: gone, the refresh
// is refused; unreachable, it fails, never passes silently.
func TestConnectorLDAPRefresh(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		change    func(d *fakeDirectory)
		advance   time.Duration
		wantError string
		wantCheck bool
	}{
		{"within the interval: not asked", func(d *fakeDirectory) { d.gone["bob-uuid"] = true }, time.Minute, "", false},
		{"still there", nil, 6 * time.Minute, "", true},
		{"gone from the directory", func(d *fakeDirectory) { d.gone["bob-uuid"] = true }, 6 * time.Minute, "invalid_grant", true},
		{"directory unreachable", func(d *fakeDirectory) { d.unreachable = true }, 6 * time.Minute, "server_error", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newConnectorHarness(t, nil)
			h.addLDAP(t, "dir", nil)
			h.dir.add("bob", "bob-password", "bob-uuid")
			tr := h.redeem(t, h.directoryLogin(t, nil, "dir", "bob", "bob-password"))
			if tr.RefreshToken == "" {
				t.Fatal("no refresh token")
			}
			if tc.change != nil {
				h.dir.mu.Lock()
				tc.change(h.dir)
				h.dir.mu.Unlock()
			}
			h.clock.Advance(tc.advance)
			got := h.refresh(tr.RefreshToken)
			if got.Error != tc.wantError {
				t.Fatalf("refresh: %s %s, want %q", got.Error, got.ErrorDescription, tc.wantError)
			}
			if tc.wantError == "invalid_grant" && !strings.Contains(got.ErrorDescription, "can no longer sign in upstream") {
				t.Fatalf("description %q", got.ErrorDescription)
			}
			h.dir.mu.Lock()
			checked := h.dir.checks > 0
			h.dir.mu.Unlock()
			if checked != tc.wantCheck {
				t.Fatalf("directory asked: %v, want %v", checked, tc.wantCheck)
			}
		})
	}
}
