package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/internal/upstream"
)

func newProvider(t *testing.T, p *oidctest.Provider, mutate func(*upstream.Config)) *upstream.Provider {
	t.Helper()
	cfg := upstream.Config{BaseURL: p.Issuer, ClientID: p.ClientID, ClientSecret: p.ClientSecret, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	up, err := upstream.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

func TestAuthorizeURLHasEachParameterOnce(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	up := newProvider(t, p, func(c *upstream.Config) { c.Audience = "https://api.example.test" })
	if err := up.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, err := up.AuthorizeURL(upstream.AuthorizeRequest{
		State:               "a&state=evil&x=",
		RedirectURI:         "http://127.0.0.1:4242/cb",
		Scope:               "openid&scope=admin",
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
	})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := map[string]string{
		"client_id":             p.ClientID,
		"response_type":         "code",
		"state":                 "a&state=evil&x=",
		"scope":                 "openid&scope=admin",
		"redirect_uri":          "http://127.0.0.1:4242/cb",
		"audience":              "https://api.example.test",
		"code_challenge":        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		"code_challenge_method": "S256",
	}
	for k, v := range want {
		if got := q[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want exactly [%q]", k, got, v)
		}
	}
	if len(q) != len(want) {
		t.Errorf("unexpected parameters: %v", q)
	}
	if !strings.HasPrefix(raw, p.Server.URL+oidctest.PathAuthorize+"?") {
		t.Errorf("URL %s is not at the authorization endpoint", raw)
	}
}

func TestClientAuthenticationStyle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		methods   []string
		public    bool
		wantBasic bool
	}{
		{"advertised basic", []string{"client_secret_basic", "client_secret_post"}, false, true},
		{"nothing advertised means basic", nil, false, true},
		{"post only", []string{"client_secret_post"}, false, false},
		{"public client", nil, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := []oidctest.Option{oidctest.WithAuthMethods(tt.methods...)}
			if tt.methods == nil {
				opts = nil
			}
			if tt.public {
				opts = append(opts, oidctest.WithPublicClient())
			}
			p := oidctest.New(t, opts...)
			up := newProvider(t, p, nil)
			if err := up.Init(context.Background()); err != nil {
				t.Fatal(err)
			}
			raw, err := up.AuthorizeURL(upstream.AuthorizeRequest{State: "s", RedirectURI: "http://127.0.0.1:1/cb", Scope: "openid offline_access"})
			if err != nil {
				t.Fatal(err)
			}
			code := p.Authorize(t, raw).Get("code")
			if _, err := up.Exchange(context.Background(), code, "http://127.0.0.1:1/cb", ""); err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			var tokenReq *http.Request
			for _, r := range p.Requests() {
				if r.URL.Path == oidctest.PathToken {
					tokenReq = r
				}
			}
			if _, _, basic := tokenReq.BasicAuth(); basic != tt.wantBasic {
				t.Errorf("basic auth used = %v, want %v", basic, tt.wantBasic)
			}
		})
	}
}

func TestSlowProviderTimesOutAsUnavailable(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	up := newProvider(t, p, func(c *upstream.Config) { c.HTTPClient = &http.Client{Timeout: 200 * time.Millisecond} })
	if err := up.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.SetFailure(oidctest.PathToken, oidctest.Hang)
	start := time.Now()
	_, err := up.Refresh(context.Background(), "rt-x")
	if !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v despite a 200 ms timeout", d)
	}
}

func TestRunRetriesDiscoveryUntilItSucceeds(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	p.SetFailure(oidctest.PathDiscovery, oidctest.Garbage)
	up := newProvider(t, p, nil)
	if err := up.Init(context.Background()); !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("Init = %v, want ErrUnavailable", err)
	}
	if _, err := up.Metadata(); !errors.Is(err, upstream.ErrNotReady) {
		t.Fatalf("Metadata before success = %v, want ErrNotReady", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go up.Run(ctx)
	// Wait for Run's second request: its first attempt has then been
	// answered with garbage and handled, rather than hoping a sleep was
	// long enough for that.
	initAttempts := p.Count(oidctest.PathDiscovery)
	deadline := time.Now().Add(5 * time.Second)
	for p.Count(oidctest.PathDiscovery) < initAttempts+2 {
		if time.Now().After(deadline) {
			t.Fatalf("Run made %d discovery attempts in 5 s, want 2", p.Count(oidctest.PathDiscovery)-initAttempts)
		}
		time.Sleep(time.Millisecond)
	}
	if up.Ready() {
		t.Fatal("ready while discovery still fails")
	}
	p.SetFailure(oidctest.PathDiscovery, oidctest.Healthy)
	waitCtx, waitCancel := context.WithTimeout(ctx, 5*time.Second)
	defer waitCancel()
	if err := up.WaitReady(waitCtx); err != nil {
		t.Fatalf("not ready after the provider recovered: %v", err)
	}
	if n := p.Count(oidctest.PathDiscovery); n < 3 {
		t.Errorf("discovery attempts = %d, want several (retries with backoff)", n)
	}
}

func TestRevokeWithoutEndpointReportsFalse(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	up := newProvider(t, p, nil)
	if err := up.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	ok, err := up.Revoke(context.Background(), "rt-unknown")
	if err != nil || !ok {
		t.Fatalf("Revoke = %v, %v; want true, nil (RFC 7009: unknown tokens are fine)", ok, err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]upstream.Config{
		"relative base URL": {BaseURL: "auth.example.test", ClientID: "c"},
		"ftp base URL":      {BaseURL: "ftp://auth.example.test", ClientID: "c"},
		"no client id":      {BaseURL: "https://auth.example.test"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := upstream.New(cfg); err == nil {
				t.Fatal("New accepted a bad configuration")
			}
		})
	}
}

// brokerOfDocument serves the discovery document doc(base) at a plain-http
// loopback issuer base, and returns a broker for it (not yet discovered)
// and base.
func brokerOfDocument(t *testing.T, doc func(base string) string) (*upstream.Provider, string) {
	t.Helper()
	var base string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(doc(base)))
	}))
	t.Cleanup(srv.Close)
	base = srv.URL
	up, err := upstream.New(upstream.Config{BaseURL: base, ClientID: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	return up, base
}

// TestAuthorizeURLKeepsEndpointQuery: an authorization endpoint with a
// query of its own keeps it, minus any parameter nsauth sets itself.
func TestAuthorizeURLKeepsEndpointQuery(t *testing.T) {
	t.Parallel()
	up, _ := brokerOfDocument(t, func(base string) string {
		return fmt.Sprintf(`{"issuer":%q,"authorization_endpoint":"%s/authorize?tenant=a%%20b&state=planted&client_id=evil","token_endpoint":"%s/token","jwks_uri":"%s/jwks"}`, base, base, base, base)
	})
	if err := up.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, err := up.AuthorizeURL(upstream.AuthorizeRequest{State: "s", RedirectURI: "http://127.0.0.1:1/cb", Scope: "openid"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("tenant") != "a b" || len(q["state"]) != 1 || q.Get("state") != "s" || len(q["client_id"]) != 1 || q.Get("client_id") != "cli" {
		t.Errorf("query = %v", q)
	}
	if u.Path != "/authorize" {
		t.Errorf("path = %q", u.Path)
	}
}

func TestTokenTypeIsNormalized(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithTokenType("bearer"))
	up := newProvider(t, p, nil)
	if err := up.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok, err := up.Refresh(context.Background(), p.MintRefreshToken("offline_access"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" {
		t.Errorf("token_type = %q, want Bearer", tok.TokenType)
	}
}
