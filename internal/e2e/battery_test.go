package e2e_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// TestCheckTokenBattery sends every attack of oidctest.Attacks to
// CheckToken on a running server: each must get Unauthenticated with the
// one generic message, over Connect and gRPC, with no request to the
// attacker and no JWKS refetch.
func TestCheckTokenBattery(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	p.AddKey("ES256")
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attackerHits.Add(1)
		http.NotFound(w, nil)
	}))
	t.Cleanup(attacker.Close)
	s := startServe(t, providerEnv(p))
	ctx := context.Background()
	for _, proto := range []protocol{protocols[0], protocols[2]} {
		client := newClient(s.URL, proto)
		if _, err := client.CheckToken(ctx, withBearer(&mgmtv1alpha1.CheckTokenRequest{}, p.AccessToken())); err != nil {
			t.Fatalf("%s: a valid token is refused: %v", proto.name, err)
		}
		jwksBefore := p.Count(oidctest.PathJWKS)
		for _, a := range p.Attacks(attacker.URL) {
			t.Run(proto.name+"/"+a.Name, func(t *testing.T) {
				req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
				// Header values cannot carry control characters: those
				// attacks are refused by the HTTP layer on either side,
				// which is covered by the verifier's own battery.
				if strings.ContainsAny(a.Token, "\x00\r\n") {
					t.Skip("not representable in an HTTP header")
				}
				req.Header().Set("Authorization", "Bearer "+a.Token)
				_, err := client.CheckToken(ctx, req)
				var ce *connect.Error
				if !errors.As(err, &ce) || ce.Code() != connect.CodeUnauthenticated || ce.Message() != authn.UnauthenticatedMessage {
					t.Fatalf("CheckToken = %v, want Unauthenticated %q", err, authn.UnauthenticatedMessage)
				}
			})
		}
		if n := p.Count(oidctest.PathJWKS) - jwksBefore; n != 0 {
			t.Errorf("%s: the battery caused %d JWKS refetches", proto.name, n)
		}
	}
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the attacker's server received %d requests", n)
	}
	assertClean(t, "logs", s.Logs.String(), p.AccessToken())
}

// TestOversizedAuthorizationHeader sends a 1 MB bearer token: the HTTP
// server refuses the headers before any handler runs.
func TestOversizedAuthorizationHeader(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	s := startServe(t, providerEnv(p))
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/mgmt.v1alpha1.AuthService/CheckToken", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("A", 1<<20))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status = %d, want 431", resp.StatusCode)
	}
	// A token above the verifier's 16 KiB bound but within the header
	// limit reaches the verifier and is refused there.
	client := newClient(s.URL, protocols[0])
	_, err = client.CheckToken(context.Background(), withBearer(&mgmtv1alpha1.CheckTokenRequest{}, strings.Repeat("A", 20<<10)))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("20 KB token: %v, want Unauthenticated", err)
	}
}
