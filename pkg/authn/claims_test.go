package authn_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// introspectionEndpoint answers answer for the token "opaque-token" and
// `active: false` for others, after delay (so that concurrent callers share
// a request).
func introspectionEndpoint(t *testing.T, delay time.Duration, answer map[string]any) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("token") != "opaque-token" {
			_, _ = w.Write([]byte(`{"active":false}`))
			return
		}
		_ = json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestClaimsDecodeJWT(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithES256())
	v, _ := newVerifier(t, p, nil)
	c := p.AccessClaims("alice")
	c["email"] = "alice@example.test"
	c["roles"] = []string{"admin", "billing"}
	c["tenant"] = map[string]any{"id": "t-42", "plan": "team"}
	tok := p.Sign(c, map[string]any{"typ": "at+jwt"})

	type custom struct {
		Subject string   `json:"sub"`
		Email   string   `json:"email"`
		Roles   []string `json:"roles"`
		Tenant  struct {
			ID string `json:"id"`
		} `json:"tenant"`
	}
	for _, round := range []string{"verified", "from the cache"} {
		claims, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("%s: Verify: %v", round, err)
		}
		var got custom
		if err := claims.Decode(&got); err != nil {
			t.Fatalf("%s: Decode: %v", round, err)
		}
		if got.Subject != "alice" || got.Email != "alice@example.test" || !slices.Equal(got.Roles, []string{"admin", "billing"}) || got.Tenant.ID != "t-42" {
			t.Errorf("%s: decoded %+v", round, got)
		}
		// Decoding into a map shows every claim, registered ones included.
		var all map[string]any
		if err := claims.Decode(&all); err != nil || all["iss"] != p.Issuer || all["scope"] != "openid profile" {
			t.Errorf("%s: Decode into a map = %v, %v", round, all, err)
		}
	}
}

func TestClaimsDecodeIntrospection(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(time.Hour).Unix()
	srv := introspectionEndpoint(t, 0, map[string]any{
		"active": true, "sub": "alice", "username": "alice", "client_id": "svc",
		"scope": "read write", "exp": exp, "token_type": "Bearer",
		"ext": map[string]any{"roles": []string{"admin"}},
	})
	in, err := authn.NewIntrospector(authn.IntrospectorConfig{URL: authn.StaticURL(srv.URL)})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := in.Verify(context.Background(), "opaque-token")
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	var got struct {
		Active   bool   `json:"active"`
		Username string `json:"username"`
		Exp      int64  `json:"exp"`
		Ext      struct {
			Roles []string `json:"roles"`
		} `json:"ext"`
	}
	if err := claims.Decode(&got); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !got.Active || got.Username != "alice" || got.Exp != exp || !slices.Equal(got.Ext.Roles, []string{"admin"}) {
		t.Errorf("decoded %+v", got)
	}
}

func TestClaimsDecodeErrors(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithES256())
	v, _ := newVerifier(t, p, nil)
	claims, err := v.Verify(context.Background(), p.AccessToken())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		claims *authn.Claims
		into   any
		want   string
	}{
		{"claims built by hand", &authn.Claims{Subject: "alice"}, &map[string]any{}, "no verified payload"},
		{"nil claims", nil, &map[string]any{}, "no verified payload"},
		{"wrong type", claims, &struct {
			Subject int `json:"sub"`
		}{}, "decoding claims"},
		{"not a pointer", claims, map[string]any{}, "decoding claims"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.claims.Decode(tt.into)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

// TestReturnedClaimsAreCopies has many callers verify one token at once and
// change what they get back, as a handler sorting Scopes would. Under -race
// any sharing between callers, or with the cache, is reported; without it,
// a caller seeing another's change fails the test.
func TestReturnedClaimsAreCopies(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithES256())
	jwtVerifier, _ := newVerifier(t, p, nil)
	srv := introspectionEndpoint(t, 20*time.Millisecond, map[string]any{
		"active": true, "sub": p.Subject, "scope": "openid profile", "aud": p.Audience,
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	introspector, err := authn.NewIntrospector(authn.IntrospectorConfig{URL: authn.StaticURL(srv.URL)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		verifier authn.TokenVerifier
		token    string
	}{
		{"JWT", jwtVerifier, p.AccessToken()},
		// The first callers share one introspection request, the later ones
		// the cached answer: both paths are exercised.
		{"introspection", introspector, "opaque-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var wg sync.WaitGroup
			start := make(chan struct{})
			for g := range 16 {
				wg.Go(func() {
					<-start
					for range 20 {
						c, err := tt.verifier.Verify(context.Background(), tt.token)
						if err != nil {
							t.Errorf("Verify: %v", err)
							return
						}
						if !slices.Equal(c.Scopes, []string{"openid", "profile"}) || !slices.Equal(c.Audience, []string{p.Audience}) || c.Subject != p.Subject {
							t.Errorf("caller %d got claims changed by another: scopes %q, audience %q, subject %q", g, c.Scopes, c.Audience, c.Subject)
							return
						}
						// The two lists may share an array: growing one
						// must not write into the other.
						c.Audience = append(c.Audience, "appended")
						if !slices.Equal(c.Scopes, []string{"openid", "profile"}) {
							t.Errorf("appending to Audience changed Scopes to %q", c.Scopes)
							return
						}
						slices.Reverse(c.Scopes)
						c.Scopes[0] = "mutated"
						c.Scopes = append(c.Scopes, "admin")
						c.Audience[0] = "someone-else"
						c.Subject = "mallory"
					}
				})
			}
			close(start)
			wg.Wait()
			c, err := tt.verifier.Verify(context.Background(), tt.token)
			if err != nil || !slices.Equal(c.Scopes, []string{"openid", "profile"}) || c.Subject != p.Subject {
				t.Errorf("after the callers: %+v, %v", c, err)
			}
		})
	}
}

func TestClaimsMachine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		claims *authn.Claims
		want   bool
	}{
		{"nil", nil, false},
		{"a person at a client", &authn.Claims{Subject: "u-1", ClientID: "nsauth-cli"}, false},
		{"no client", &authn.Claims{Subject: "u-1"}, false},
		{"empty subject and client", &authn.Claims{}, false},
		{"the client itself", &authn.Claims{Subject: "m-abc", ClientID: "m-abc"}, true},
		{"case matters", &authn.Claims{Subject: "M-abc", ClientID: "m-abc"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.claims.Machine(); got != tt.want {
				t.Errorf("Machine() = %v, want %v", got, tt.want)
			}
		})
	}
}
