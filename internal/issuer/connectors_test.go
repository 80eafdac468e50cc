package issuer_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/connector"
	"github.com/nsauth/nsauth/internal/connector/connectortest"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
)

// connectorHarness is a provider with connectors: fake OpenID upstreams
// (connectortest) reached through the real OIDC connector, and a fake
// directory behind the connector builder.
type connectorHarness struct {
	*harness
	trail *auditTrail
	dir   *fakeDirectory
}

func newConnectorHarness(t *testing.T, mod func(*issuer.Config)) *connectorHarness {
	t.Helper()
	ch := &connectorHarness{dir: newFakeDirectory()}
	ch.harness = newHarness(t, sqlite(), func(c *issuer.Config) {
		ch.trail = withAudit(t, c)
		c.BuildConnector = func(sc *store.Connector, env connector.Env) (any, error) {
			if sc.Type == store.ConnectorLDAP {
				return ch.dir, nil
			}
			return connector.Build(sc.Type, sc.Settings, sc.Secret, env)
		}
		if mod != nil {
			mod(c)
		}
	})
	return ch
}

// addOIDC adds connector name for a new fake upstream.
func (h *connectorHarness) addOIDC(t *testing.T, name string, mod func(*store.Connector)) *connectortest.OIDC {
	t.Helper()
	up := connectortest.NewOIDC(t, connectortest.WithOIDCClock(h.clock.Now), connectortest.WithRedirectURI(h.url+"/login/connector/"+name+"/callback"))
	settings, err := json.Marshal(up.Settings())
	if err != nil {
		t.Fatal(err)
	}
	c := &store.Connector{Name: name, Type: store.ConnectorOIDC, DisplayName: "Corp " + name, Settings: settings, Secret: up.ClientSecret}
	if mod != nil {
		mod(c)
	}
	if err := h.st.CreateConnector(ctx, c); err != nil {
		t.Fatal(err)
	}
	return up
}

// addLDAP adds an LDAP connector, which the fake directory answers.
func (h *connectorHarness) addLDAP(t *testing.T, name string, mod func(*store.Connector)) {
	t.Helper()
	c := &store.Connector{Name: name, Type: store.ConnectorLDAP, DisplayName: "Directory " + name, CreateUsers: true, Secret: "bind-password",
		Settings: []byte(`{"url":"ldap://127.0.0.1:389","bind_dn":"cn=svc,dc=example","user_base_dn":"ou=people,dc=example","user_filter":"(uid=%s)"}`)}
	if mod != nil {
		mod(c)
	}
	if err := h.st.CreateConnector(ctx, c); err != nil {
		t.Fatal(err)
	}
}

func (h *connectorHarness) link(t *testing.T, user *store.User, name, subject string) {
	t.Helper()
	if err := h.st.LinkIdentity(ctx, &store.Identity{Connector: name, Subject: subject, UserID: user.ID}); err != nil {
		t.Fatal(err)
	}
}

var metaRefresh = regexp.MustCompile(`<meta http-equiv="refresh" content="0;url=([^"]+)">`)

// refreshTarget is the URL a connector_redirect page sends the browser to.
func refreshTarget(t *testing.T, p *issuertest.Page) string {
	t.Helper()
	m := metaRefresh.FindStringSubmatch(p.Body)
	if p.Response.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("not a redirecting page: HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
	return html.UnescapeString(m[1])
}

func (h *connectorHarness) get(t *testing.T, b *issuertest.Browser, target string) *issuertest.Page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.Do(t, req)
}

// toUpstream opens a login in b (a fresh browser when nil), presses
// "Continue with" name, and returns the browser and the callback URL the
// upstream sends it back to.
func (h *connectorHarness) toUpstream(t *testing.T, b *issuertest.Browser, name string, extra url.Values) (*issuertest.Browser, string) {
	t.Helper()
	if b == nil {
		b = issuertest.NewBrowser(t)
	}
	page := b.Open(t, h.authorizeURL(connectorVerifier, extra))
	if !strings.Contains(page.Body, `value="`+name+`">Continue with`) {
		t.Fatalf("the login page has no button for %s:\n%s", name, page.Body)
	}
	up := h.get(t, b, refreshTarget(t, b.Post(t, page, "/login/connector", url.Values{"connector": {name}})))
	back, err := issuertest.RedirectOf(up)
	if err != nil {
		t.Fatalf("the upstream did not send the browser back: %v", err)
	}
	return b, back.String()
}

// signIn goes through connector name and returns nsauth's answer to the
// callback.
func (h *connectorHarness) signIn(t *testing.T, name string, extra url.Values) (*issuertest.Browser, *issuertest.Page) {
	t.Helper()
	b, callback := h.toUpstream(t, nil, name, extra)
	return b, h.get(t, b, callback)
}

// wantCode checks p is the redirect to the client with a code, and
// returns the code's tokens' claims.
func (h *connectorHarness) wantCode(t *testing.T, p *issuertest.Page) map[string]any {
	t.Helper()
	tr := h.redeem(t, p)
	_, claims := jwtParts(t, tr.IDToken)
	return claims
}

// redeem redeems the code of p, the redirect to the client.
func (h *connectorHarness) redeem(t *testing.T, p *issuertest.Page) tokenResponse {
	t.Helper()
	loc, err := issuertest.RedirectOf(p)
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code for the client: %v %v", loc, err)
	}
	tr := h.exchange(loc.Query().Get("code"), connectorVerifier)
	if tr.status != http.StatusOK {
		t.Fatalf("exchange: HTTP %d %s %s", tr.status, tr.Error, tr.ErrorDescription)
	}
	return tr
}

// connectorVerifier is the PKCE verifier of the connector tests'
// authorize requests.
var connectorVerifier = oauth2.GenerateVerifier()

func (h *connectorHarness) lastRefusal(t *testing.T) audit.Event {
	t.Helper()
	events, _ := h.trail.records(t)
	for j := len(events) - 1; j >= 0; j-- {
		if events[j].Type == audit.LoginFailed {
			return events[j]
		}
	}
	return audit.Event{}
}

// fakeDirectory is an LDAP connector's stand-in: people by username, and
// whether Check still finds them.
type fakeDirectory struct {
	mu          sync.Mutex
	people      map[string]fakePerson // by username
	gone        map[string]bool       // by subject
	unreachable bool
	checks      int
}

type fakePerson struct {
	password, subject string
	groups            []string
}

func newFakeDirectory() *fakeDirectory {
	return &fakeDirectory{people: map[string]fakePerson{}, gone: map[string]bool{}}
}

func (d *fakeDirectory) add(username, password, subject string, groups ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.people[username] = fakePerson{password: password, subject: subject, groups: groups}
}

func (d *fakeDirectory) Login(_ context.Context, username, password string) (connector.Identity, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.unreachable {
		return connector.Identity{}, errDirectoryDown
	}
	p, ok := d.people[username]
	if !ok || p.password != password {
		return connector.Identity{}, connector.Refused(connector.ReasonWrongCredentials, "wrong username or password")
	}
	if d.gone[p.subject] {
		return connector.Identity{}, connector.Refused(connector.ReasonUserGone, "disabled in the directory")
	}
	return connector.Identity{Subject: p.subject, Username: username, Groups: p.groups, State: "uid=" + username + ",ou=people,dc=example"}, nil
}

func (d *fakeDirectory) Check(_ context.Context, subject, state string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.checks++
	if d.unreachable {
		return errDirectoryDown
	}
	if d.gone[subject] || state == "" {
		return connector.Refused(connector.ReasonUserGone, "gone")
	}
	return nil
}

func (d *fakeDirectory) CheckInterval() time.Duration { return 5 * time.Minute }

type directoryError string

func (e directoryError) Error() string { return string(e) }

const errDirectoryDown = directoryError("dial tcp 127.0.0.1:389: connection refused")

func hasAll(got []any, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(got, any(w)) {
			return false
		}
	}
	return true
}

// TestConnectorSignIn: a sign-in through an OpenID upstream finds the
// user by (connector, subject) only, creates one only when the connector
// says so, never binds an existing account by its email or name, refuses
// a user disabled here, maps groups, and says in amr what was proven.
func TestConnectorSignIn(t *testing.T) {
	t.Parallel()
	up := connectortest.DefaultUser()
	for _, tc := range []struct {
		name  string
		conn  func(*store.Connector)
		user  func(*connectortest.User)
		setup func(t *testing.T, h *connectorHarness)
		scope string
		check func(t *testing.T, h *connectorHarness, p *issuertest.Page)
	}{
		{name: "linked user", setup: func(t *testing.T, h *connectorHarness) { h.link(t, h.alice, "corp", up.Subject) },
			check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
				claims := h.wantCode(t, p)
				if claims["sub"] != h.alice.ID || !slices.Equal(claims["amr"].([]any), []any{"fed"}) {
					t.Fatalf("claims %v: want alice's sub and amr [fed]", claims)
				}
				if e := h.lastEvent(t, audit.LoginSucceeded); e.Target != "corp" || e.Subject != h.alice.ID {
					t.Fatalf("login.succeeded %+v: want target corp, alice", e)
				}
			}},
		{name: "not linked and no create-users: the page names the command",
			check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
				want := "nsauth users link USERNAME --connector corp --subject " + up.Subject
				if p.Response.StatusCode != http.StatusForbidden || !strings.Contains(html.UnescapeString(p.Body), want) {
					t.Fatalf("HTTP %d, want 403 naming %q:\n%s", p.Response.StatusCode, want, p.Body)
				}
				if e := h.lastRefusal(t); e.Reason != "not_linked" || e.Target != "corp" {
					t.Fatalf("refusal %+v: want not_linked at corp", e)
				}
			}},
		{name: "created, never bound to the account with the same email and name",
			conn: func(c *store.Connector) { c.CreateUsers = true },
			check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
				claims := h.wantCode(t, p)
				created, err := h.st.UserByUsername(ctx, "alice-corp")
				if err != nil {
					t.Fatalf("no user alice-corp: %v", err)
				}
				if claims["sub"] == h.alice.ID || claims["sub"] != created.ID || created.HasPassword() {
					t.Fatalf("sub %v: want the new password-less user %s, never alice %s", claims["sub"], created.ID, h.alice.ID)
				}
				// The next sign-in finds the same user by its identity.
				_, again := h.signIn(t, "corp", nil)
				if c := h.wantCode(t, again); c["sub"] != created.ID {
					t.Fatalf("second sign-in as %v, want %s", c["sub"], created.ID)
				}
				// The created user has no password the form would take.
				b := issuertest.NewBrowser(t)
				if res := b.Submit(t, b.Open(t, h.authorizeURL(connectorVerifier, nil)), "alice-corp", ""); res.Response.StatusCode != http.StatusUnauthorized ||
					!strings.Contains(res.Body, "Wrong username or password.") {
					t.Fatalf("password form for a password-less user: HTTP %d\n%s", res.Response.StatusCode, res.Body)
				}
			}},
		{name: "disabled here, whatever the upstream says",
			setup: func(t *testing.T, h *connectorHarness) {
				h.link(t, h.alice, "corp", up.Subject)
				if err := h.st.SetDisabled(ctx, "alice", true); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
				if p.Response.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "disabled") {
					t.Fatalf("HTTP %d, want 403 disabled:\n%s", p.Response.StatusCode, p.Body)
				}
				if e := h.lastRefusal(t); e.Reason != "disabled" {
					t.Fatalf("refusal %+v: want disabled", e)
				}
			}},
		{name: "groups, prefixed, in the ID token and userinfo", scope: "openid profile groups",
			user:  func(u *connectortest.User) { u.Groups = []string{"ops", "dev"} },
			setup: func(t *testing.T, h *connectorHarness) { h.link(t, h.alice, "corp", up.Subject) },
			check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
				tr := h.redeem(t, p)
				_, claims := jwtParts(t, tr.IDToken)
				if g, _ := claims["groups"].([]any); !slices.Equal(g, []any{"corp:dev", "corp:ops"}) {
					t.Fatalf("ID token groups %v", claims["groups"])
				}
				if _, info := h.userinfo(tr.AccessToken); !hasAll(asList(info["groups"]), "corp:dev", "corp:ops") {
					t.Fatalf("userinfo groups %v", info["groups"])
				}
			}},
		{name: "no groups claim without the scope",
			user:  func(u *connectortest.User) { u.Groups = []string{"ops"} },
			setup: func(t *testing.T, h *connectorHarness) { h.link(t, h.alice, "corp", up.Subject) },
			check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
				if claims := h.wantCode(t, p); claims["groups"] != nil {
					t.Fatalf("groups %v without the scope", claims["groups"])
				}
			}},
		{name: "trusted upstream second factor", conn: func(c *store.Connector) { c.TrustUpstreamMFA = true },
			user:  func(u *connectortest.User) { u.AMR = []string{"pwd", "otp", "made-up"} },
			setup: func(t *testing.T, h *connectorHarness) { h.link(t, h.alice, "corp", up.Subject) },
			check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
				if claims := h.wantCode(t, p); !slices.Equal(claims["amr"].([]any), []any{"fed", "mfa", "pwd", "otp"}) {
					t.Fatalf("amr %v, want [fed mfa pwd otp]", claims["amr"])
				}
			}},
		{name: "upstream second factor not trusted",
			user:  func(u *connectortest.User) { u.AMR = []string{"mfa"} },
			setup: func(t *testing.T, h *connectorHarness) { h.link(t, h.alice, "corp", up.Subject) },
			check: func(t *testing.T, h *connectorHarness, p *issuertest.Page) {
				if claims := h.wantCode(t, p); !slices.Equal(claims["amr"].([]any), []any{"fed"}) {
					t.Fatalf("amr %v, want [fed]", claims["amr"])
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newConnectorHarness(t, nil)
			fake := h.addOIDC(t, "corp", tc.conn)
			u := connectortest.DefaultUser()
			if tc.user != nil {
				tc.user(&u)
			}
			fake.SetUser(u)
			if tc.setup != nil {
				tc.setup(t, h)
			}
			var extra url.Values
			if tc.scope != "" {
				extra = url.Values{"scope": {tc.scope}}
			}
			_, p := h.signIn(t, "corp", extra)
			tc.check(t, h, p)
		})
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

func (h *connectorHarness) lastEvent(t *testing.T, typ audit.Type) audit.Event {
	t.Helper()
	events, _ := h.trail.records(t)
	for j := len(events) - 1; j >= 0; j-- {
		if events[j].Type == typ {
			return events[j]
		}
	}
	return audit.Event{}
}
