package issuer_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

var ctx = context.Background()

const (
	alicePassword = "alice-password-123"
	redirectURI   = "http://127.0.0.1:4242/api/auth/callback"
)

// harness is a built-in provider on a loopback port over a fresh store,
// with a test clock, the broker's client and a user alice.
type harness struct {
	t      testing.TB
	clock  *storetest.Clock
	st     *store.Store
	iss    *issuer.Issuer
	url    string
	client string
	secret string
	alice  *store.User
}

func sqlite() storetest.Backend { return storetest.Backends()[0] }

func newHarness(t testing.TB, b storetest.Backend, mod func(*issuer.Config)) *harness {
	t.Helper()
	clock := storetest.NewClock(time.Time{})
	st := b.Open(t, store.Options{Now: clock.Now})
	boot, err := issuer.Bootstrap(ctx, st, issuer.BootstrapConfig{AdminPassword: "admin-password-1"})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := password.Hash(alicePassword)
	if err != nil {
		t.Fatal(err)
	}
	alice := &store.User{Username: "alice", Name: "Alice Liddell", Email: "alice@example.com", PasswordHash: hash}
	if err := st.CreateUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	iss, issuerURL := startIssuer(t, issuer.Config{Store: st, Now: clock.Now}, mod)
	return &harness{t: t, clock: clock, st: st, iss: iss, url: issuerURL, client: boot.ClientID, secret: boot.ClientSecret, alice: alice}
}

// startIssuer serves a provider of cfg, changed by mod, on a loopback port
// of its own (its issuer URL) until the test ends.
func startIssuer(t testing.TB, cfg issuer.Config, mod func(*issuer.Config)) (*issuer.Issuer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Issuer = "http://" + ln.Addr().String()
	if mod != nil {
		mod(&cfg)
	}
	iss, err := issuer.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(iss.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return iss, cfg.Issuer
}

// authorizeURL builds an authorize URL with PKCE; extra parameters replace
// the defaults.
func (h *harness) authorizeURL(verifier string, extra url.Values) string {
	q := url.Values{
		"client_id":             {h.client},
		"response_type":         {"code"},
		"redirect_uri":          {redirectURI},
		"scope":                 {"openid profile email offline_access"},
		"state":                 {"the-state"},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		if len(v) == 0 || v[0] == "" {
			q.Del(k)
			continue
		}
		q[k] = v
	}
	return h.url + "/authorize?" + q.Encode()
}

// login runs the browser part and returns the code.
func (h *harness) login(verifier string, extra url.Values) string {
	h.t.Helper()
	loc := issuertest.NewBrowser(h.t).Login(h.t, h.authorizeURL(verifier, extra), "alice", alicePassword)
	if loc.Query().Get("state") != "the-state" {
		h.t.Fatalf("redirect %s lost the state", loc)
	}
	code := loc.Query().Get("code")
	if code == "" {
		h.t.Fatalf("redirect %s carries no code", loc)
	}
	return code
}

// tokenResponse is the token endpoint's JSON.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	RefreshToken     string `json:"refresh_token"`
	IDToken          string `json:"id_token"`
	ExpiresIn        int64  `json:"expires_in"`
	Scope            string `json:"scope"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	status           int
}

// post posts a form to an endpoint with the client's credentials.
func (h *harness) post(path string, form url.Values, authenticate bool) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if authenticate {
		req.SetBasicAuth(url.QueryEscape(h.client), url.QueryEscape(h.secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func (h *harness) token(form url.Values) tokenResponse {
	h.t.Helper()
	resp, body := h.post("/oauth/token", form, true)
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		h.t.Fatalf("token response is not JSON (HTTP %d): %s", resp.StatusCode, body)
	}
	tr.status = resp.StatusCode
	if resp.Header.Get("Cache-Control") != "no-store" {
		h.t.Errorf("token response Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}
	return tr
}

func (h *harness) exchange(code, verifier string) tokenResponse {
	h.t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	return h.token(form)
}

func (h *harness) refresh(rt string) tokenResponse {
	h.t.Helper()
	return h.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// tokens logs alice in and redeems the code.
func (h *harness) tokens(extra url.Values) tokenResponse {
	h.t.Helper()
	v := oauth2.GenerateVerifier()
	tr := h.exchange(h.login(v, extra), v)
	if tr.status != http.StatusOK {
		h.t.Fatalf("token exchange failed: HTTP %d %s: %s", tr.status, tr.Error, tr.ErrorDescription)
	}
	return tr
}

// jwtParts decodes a JWT's header and claims without verifying it.
func jwtParts(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	decode := func(s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	return decode(parts[0]), decode(parts[1])
}

func (h *harness) introspect(token string) map[string]any {
	h.t.Helper()
	resp, body := h.post("/oauth/introspect", url.Values{"token": {token}}, true)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("introspection: HTTP %d %s", resp.StatusCode, body)
	}
	m := map[string]any{}
	if err := json.Unmarshal(body, &m); err != nil {
		h.t.Fatal(err)
	}
	return m
}

func (h *harness) userinfo(access string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (h *harness) get(path string, header http.Header) (*http.Response, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// auditTrail records the harness's audit events to its store and to a
// JSON-lines stream, as nsauth serve does with NSAUTH_AUDIT_LOG set.
type auditTrail struct {
	st      *store.Store
	stream  *lockedBuffer
	auditor *audit.Auditor
}

// withAudit sets c.Audit to a recorder writing to c.Store and to the
// returned trail's stream.
func withAudit(t testing.TB, c *issuer.Config) *auditTrail {
	t.Helper()
	return withAuditConfig(t, c, audit.Config{})
}

// withAuditConfig is withAudit with the settings of ac that it leaves
// unset.
func withAuditConfig(t testing.TB, c *issuer.Config, ac audit.Config) *auditTrail {
	t.Helper()
	tr := &auditTrail{st: c.Store, stream: &lockedBuffer{}}
	ac.Key, ac.Sink, ac.Stream, ac.Now, ac.Replica = []byte("an audit key of thirty-two bytes"), c.Store, audit.NewStream(tr.stream), c.Now, "test"
	a, err := audit.New(ac)
	if err != nil {
		t.Fatal(err)
	}
	c.Audit, tr.auditor = a, a
	return tr
}

// records returns every stored event, each as its JSON, and the stream.
func (tr *auditTrail) records(t testing.TB) ([]audit.Event, string) {
	t.Helper()
	events, err := tr.st.AuditEvents(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range events {
		j, _ := json.Marshal(e)
		b.Write(j)
		b.WriteByte('\n')
	}
	return events, b.String() + tr.stream.String()
}
