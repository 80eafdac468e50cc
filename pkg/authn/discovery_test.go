package authn_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

func TestDiscover(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	md, err := authn.Discover(context.Background(), p.Issuer, nil)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	want := authn.ProviderMetadata{
		Issuer:            p.Issuer,
		JWKSURL:           p.Server.URL + oidctest.PathJWKS,
		IntrospectionURL:  p.Server.URL + oidctest.PathIntrospect,
		SigningAlgorithms: []string{"RS256", "ES256"},
	}
	if md.Issuer != want.Issuer || md.JWKSURL != want.JWKSURL || md.IntrospectionURL != want.IntrospectionURL || !slices.Equal(md.SigningAlgorithms, want.SigningAlgorithms) {
		t.Errorf("Discover = %+v, want %+v", *md, want)
	}
}

// discoveryServer answers every request with status and body (in which
// "{base}" stands for its own URL), and counts the requests.
func discoveryServer(t *testing.T, tls bool, status int, contentType, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	var srv *httptest.Server
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(strings.ReplaceAll(body, "{base}", srv.URL)))
	})
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestDiscoverRefuses(t *testing.T) {
	t.Parallel()
	const jsonType = "application/json"
	tests := []struct {
		name        string
		tls         bool
		status      int
		contentType string
		body        string
		// issuer is the URL given to Discover; "{base}" is the server's.
		issuer          string
		want            string
		wantUnavailable bool
	}{
		{name: "issuer mismatch", status: 200, contentType: jsonType,
			body: `{"issuer":"https://evil.example","jwks_uri":"{base}/jwks"}`, issuer: "{base}", want: `names the issuer "https://evil.example"`},
		{name: "issuer differs by a trailing slash", status: 200, contentType: jsonType,
			body: `{"issuer":"{base}","jwks_uri":"{base}/jwks"}`, issuer: "{base}/", want: "names the issuer"},
		{name: "issuer repeated", status: 200, contentType: jsonType,
			body: `{"issuer":"https://evil.example","issuer":"{base}","jwks_uri":"{base}/jwks"}`, issuer: "{base}", want: "not a JSON object"},
		{name: "HTML instead of JSON", status: 200, contentType: "text/html; charset=utf-8",
			body: "<html>" + oidctest.LeakBait + "</html>", issuer: "{base}", want: `not a JSON object (Content-Type "text/html")`},
		{name: "a JSON array", status: 200, contentType: jsonType, body: `["{base}"]`, issuer: "{base}", want: "not a JSON object"},
		{name: "issuer not a string", status: 200, contentType: jsonType, body: `{"issuer":42}`, issuer: "{base}", want: `"issuer" is not a string`},
		{name: "algorithms not a list", status: 200, contentType: jsonType,
			body: `{"issuer":"{base}","jwks_uri":"{base}/jwks","id_token_signing_alg_values_supported":"RS256"}`, issuer: "{base}", want: "not a list of strings"},
		{name: "no jwks_uri", status: 200, contentType: jsonType, body: `{"issuer":"{base}"}`, issuer: "{base}", want: "jwks_uri is missing"},
		{name: "relative jwks_uri", status: 200, contentType: jsonType, body: `{"issuer":"{base}","jwks_uri":"/jwks"}`, issuer: "{base}", want: "not an absolute http(s) URL"},
		{name: "jwks_uri downgraded to http", tls: true, status: 200, contentType: jsonType,
			body: `{"issuer":"{base}","jwks_uri":"http://keys.example/jwks"}`, issuer: "{base}", want: "is not https"},
		{name: "introspection downgraded to http", tls: true, status: 200, contentType: jsonType,
			body: `{"issuer":"{base}","jwks_uri":"{base}/jwks","introspection_endpoint":"http://x.example/introspect"}`, issuer: "{base}", want: "introspection_endpoint"},
		{name: "too large", status: 200, contentType: jsonType,
			body: `{"issuer":"{base}","jwks_uri":"{base}/jwks","padding":"` + strings.Repeat("x", 1<<20) + `"}`, issuer: "{base}", want: "larger than"},
		{name: "not found", status: 404, contentType: "text/plain", body: "not found", issuer: "{base}", want: "HTTP 404"},
		{name: "server error", status: 500, contentType: "text/plain", body: oidctest.LeakBait, issuer: "{base}", want: "HTTP 500", wantUnavailable: true},
		{name: "rate limited", status: 429, contentType: "text/plain", body: "slow down", issuer: "{base}", want: "HTTP 429", wantUnavailable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := discoveryServer(t, tt.tls, tt.status, tt.contentType, tt.body)
			issuer := strings.ReplaceAll(tt.issuer, "{base}", srv.URL)
			md, err := authn.Discover(context.Background(), issuer, srv.Client())
			if err == nil {
				t.Fatalf("Discover accepted it: %+v", *md)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to say %q", err, tt.want)
			}
			if errors.Is(err, authn.ErrUnavailable) != tt.wantUnavailable {
				t.Errorf("err = %v; matches ErrUnavailable: %v, want %v", err, !tt.wantUnavailable, tt.wantUnavailable)
			}
			if strings.Contains(err.Error(), oidctest.LeakBait) {
				t.Errorf("err quotes the provider's answer: %v", err)
			}
		})
	}
}

func TestDiscoverRefusesBadIssuerURLsWithoutARequest(t *testing.T) {
	t.Parallel()
	srv, hits := discoveryServer(t, false, 200, "application/json", `{}`)
	for _, issuer := range []string{
		"", "auth.example.com", "/relative", "ftp://auth.example.com", "https://",
		"https://auth.example.com?tenant=a", "https://auth.example.com#frag", "https://user:pw@auth.example.com",
		srv.URL + "?x=1",
	} {
		if _, err := authn.Discover(context.Background(), issuer, nil); err == nil || !strings.Contains(err.Error(), "authn: issuer") {
			t.Errorf("Discover(%q) = %v, want an error about the issuer URL", issuer, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests made for unusable issuer URLs", n)
	}
}

func TestDiscoverUnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	_, err := authn.Discover(context.Background(), srv.URL, nil)
	if !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestNewFromIssuer(t *testing.T) {
	t.Parallel()
	// ES256: the verifier takes its algorithms from the discovery document
	// when the configuration names none, so no Algorithms are given.
	p := oidctest.New(t, oidctest.WithES256())
	v, err := authn.NewFromIssuer(context.Background(), p.Issuer, authn.VerifierConfig{Audiences: []string{p.Audience}})
	if err != nil {
		t.Fatalf("NewFromIssuer: %v", err)
	}
	claims, err := v.Verify(context.Background(), p.AccessToken())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if claims.Subject != p.Subject || claims.Issuer != p.Issuer {
		t.Errorf("claims = %+v", claims)
	}
	if n := p.Count(oidctest.PathDiscovery); n != 1 {
		t.Errorf("discovery requests = %d, want 1", n)
	}
	forged := p.Sign(p.AccessClaims("alice"), map[string]any{"alg": "HS256"})
	if _, err := v.Verify(context.Background(), forged); !errors.Is(err, authn.ErrInvalidToken) {
		t.Errorf("HS256 token: err = %v, want ErrInvalidToken", err)
	}
}

func TestNewFromIssuerRefuses(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	tests := []struct {
		name   string
		issuer string
		cfg    authn.VerifierConfig
		setup  func(*oidctest.Provider)
		want   string
		// wantRequest: the error needs the discovery document.
		wantRequest bool
	}{
		{name: "configured issuer differs", issuer: p.Issuer, cfg: authn.VerifierConfig{Issuer: "https://other.example", Audiences: []string{"a"}}, want: "differs from the issuer URL"},
		{name: "key set given", issuer: p.Issuer, cfg: authn.VerifierConfig{KeySet: staticKeys{}, Audiences: []string{"a"}}, want: "leave VerifierConfig.KeySet nil"},
		{name: "no audience", issuer: p.Issuer, cfg: authn.VerifierConfig{}, want: "audience is required"},
		{name: "symmetric algorithm", issuer: p.Issuer, cfg: authn.VerifierConfig{Audiences: []string{"a"}, Algorithms: []string{"HS256"}}, want: "not allowed"},
		{name: "document names another issuer", issuer: p.Issuer, cfg: authn.VerifierConfig{Audiences: []string{"a"}},
			setup: func(p *oidctest.Provider) { p.SetDiscoveredIssuer("https://evil.example") }, want: "names the issuer", wantRequest: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the cases share the provider's request count.
			before := p.Count(oidctest.PathDiscovery)
			if tt.setup != nil {
				tt.setup(p)
				t.Cleanup(func() { p.SetDiscoveredIssuer("") })
			}
			_, err := authn.NewFromIssuer(context.Background(), tt.issuer, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to say %q", err, tt.want)
			}
			if made := p.Count(oidctest.PathDiscovery) > before; made != tt.wantRequest {
				t.Errorf("discovery request made: %v, want %v", made, tt.wantRequest)
			}
		})
	}
}
