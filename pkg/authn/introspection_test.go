package authn_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// opaqueToken logs in at the fake (configured for opaque tokens) and
// returns the access and refresh tokens.
func opaqueToken(t *testing.T, p *oidctest.Provider) (access, refresh string) {
	t.Helper()
	q := url.Values{"client_id": {p.ClientID}, "response_type": {"code"}, "redirect_uri": {"http://127.0.0.1:1/cb"}, "scope": {"openid offline_access"}, "state": {"s"}}
	code := p.Authorize(t, p.Server.URL+oidctest.PathAuthorize+"?"+q.Encode()).Get("code")
	resp, err := http.PostForm(p.Server.URL+oidctest.PathToken, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:1/cb"},
		"client_id": {p.ClientID}, "client_secret": {p.ClientSecret},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := decodeJSON(resp, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token response: %v", err)
	}
	return tok.AccessToken, tok.RefreshToken
}

func newIntrospector(t *testing.T, p *oidctest.Provider, clock *fakeClock) *authn.Introspector {
	t.Helper()
	return newIntrospectorWith(t, p, func(c *authn.IntrospectorConfig) { c.Now = clock.Now })
}

// newIntrospectorWith returns an introspector asking p, with a 30 s cache,
// its configuration changed by mutate.
func newIntrospectorWith(t *testing.T, p *oidctest.Provider, mutate func(*authn.IntrospectorConfig)) *authn.Introspector {
	t.Helper()
	cfg := authn.IntrospectorConfig{
		URL:          authn.StaticURL(p.Server.URL + oidctest.PathIntrospect),
		ClientID:     p.ClientID,
		ClientSecret: p.ClientSecret,
		Issuer:       p.Issuer,
		Audiences:    []string{p.Audience},
		CacheTTL:     30 * time.Second,
	}
	mutate(&cfg)
	in, err := authn.NewIntrospector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestIntrospectorAcceptsActiveTokensAndCaches(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithOpaqueAccessTokens())
	clock := &fakeClock{t: time.Now()}
	in := newIntrospector(t, p, clock)
	access, _ := opaqueToken(t, p)
	for range 5 {
		c, err := in.Verify(context.Background(), access)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if c.Subject != p.Subject {
			t.Errorf("subject = %q", c.Subject)
		}
	}
	if n := p.Count(oidctest.PathIntrospect); n != 1 {
		t.Errorf("introspection requests = %d, want 1 (cached)", n)
	}
	clock.Advance(31 * time.Second) // past the cache bound
	if _, err := in.Verify(context.Background(), access); err != nil {
		t.Fatal(err)
	}
	if n := p.Count(oidctest.PathIntrospect); n != 2 {
		t.Errorf("introspection requests after the cache bound = %d, want 2", n)
	}
}

func TestIntrospectorRefusals(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithOpaqueAccessTokens())
	in := newIntrospector(t, p, &fakeClock{t: time.Now()})
	_, refresh := opaqueToken(t, p)
	tests := []struct {
		name, token string
	}{
		{"unknown token", "opaque-unknown"},
		{"refresh token presented as access token", refresh},
		{"control characters", "abc\x00def"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := in.Verify(context.Background(), tt.token)
			if !errors.Is(err, authn.ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestIntrospectionEndpointDownIsUnavailable(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]oidctest.Failure{"500": oidctest.Status500, "garbage": oidctest.Garbage, "dropped": oidctest.Drop} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := oidctest.New(t, oidctest.WithOpaqueAccessTokens())
			in := newIntrospector(t, p, &fakeClock{t: time.Now()})
			access, _ := opaqueToken(t, p)
			p.SetFailure(oidctest.PathIntrospect, f)
			_, err := in.Verify(context.Background(), access)
			if !errors.Is(err, authn.ErrUnavailable) || errors.Is(err, authn.ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrUnavailable only", err)
			}
			p.SetFailure(oidctest.PathIntrospect, oidctest.Healthy)
			if _, err := in.Verify(context.Background(), access); err != nil {
				t.Fatalf("after recovery: %v (an outage must not be cached)", err)
			}
		})
	}
}

func TestChainVerifierNeverIntrospectsJWTs(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithOpaqueAccessTokens())
	clock := &fakeClock{t: time.Now()}
	jwtVerifier, _ := newVerifier(t, p, nil)
	chain := authn.ChainVerifier{JWT: jwtVerifier, Introspection: newIntrospector(t, p, clock)}
	forged := p.Sign(map[string]any{"iss": "x"}, nil)
	if _, err := chain.Verify(context.Background(), forged); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("forged JWT: %v", err)
	}
	if _, err := chain.Verify(context.Background(), p.AccessToken()); err != nil {
		t.Fatalf("valid JWT: %v", err)
	}
	access, _ := opaqueToken(t, p)
	if _, err := chain.Verify(context.Background(), access); err != nil {
		t.Fatalf("opaque token: %v", err)
	}
	if n := p.Count(oidctest.PathIntrospect); n != 1 {
		t.Errorf("introspection requests = %d, want 1 (only the opaque token)", n)
	}
}

// TestIntrospectionSharedRequestSurvivesOneCallerLeaving: when the caller
// that started a shared introspection gives up, the others still get the
// answer.
func TestIntrospectionSharedRequestSurvivesOneCallerLeaving(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithOpaqueAccessTokens())
	in := newIntrospector(t, p, &fakeClock{t: time.Now()})
	access, _ := opaqueToken(t, p)
	p.SetFailure(oidctest.PathIntrospect, oidctest.Slow)
	leaving, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := in.Verify(leaving, access)
		first <- err
	}()
	for p.Count(oidctest.PathIntrospect) == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := in.Verify(context.Background(), access); err != nil {
		t.Fatalf("the staying caller: %v", err)
	}
	if err := <-first; !errors.Is(err, authn.ErrUnavailable) {
		t.Errorf("the leaving caller: %v, want ErrUnavailable", err)
	}
	if n := p.Count(oidctest.PathIntrospect); n != 1 {
		t.Errorf("introspection requests = %d, want 1 (shared)", n)
	}
}

// TestChainVerifierWithOneVerifier leaves one of the two verifiers out:
// the tokens it would have checked are refused, not a nil dereference.
func TestChainVerifierWithOneVerifier(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithES256())
	jwtVerifier, _ := newVerifier(t, p, nil)
	jwtOnly := authn.ChainVerifier{JWT: jwtVerifier}
	if _, err := jwtOnly.Verify(context.Background(), p.AccessToken()); err != nil {
		t.Errorf("JWT through a JWT-only chain: %v", err)
	}
	if _, err := jwtOnly.Verify(context.Background(), "opaque-token"); !errors.Is(err, authn.ErrInvalidToken) {
		t.Errorf("opaque token through a JWT-only chain: %v, want ErrInvalidToken", err)
	}
	var none authn.ChainVerifier
	if _, err := none.Verify(context.Background(), p.AccessToken()); !errors.Is(err, authn.ErrInvalidToken) {
		t.Errorf("JWT through an empty chain: %v, want ErrInvalidToken", err)
	}
}
