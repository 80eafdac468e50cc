package e2e_test

import (
	"context"
	"encoding/json"
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

// TestCheckTokenBattery sends every attack of oidctest.Attacks that an
// HTTP header can carry to CheckToken on a running server: each must get
// Unauthenticated with the one generic message, over Connect and gRPC, be
// refused by the check the attack is about (the server's debug log names
// it), with no request to the attacker and no JWKS refetch. The server
// brokers an external provider, so it accepts untyped access tokens.
func TestCheckTokenBattery(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	p.Keys.Add("ES256")
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attackerHits.Add(1)
		http.NotFound(w, nil)
	}))
	t.Cleanup(attacker.Close)
	s := startServe(t, providerEnv(p))
	ctx := context.Background()

	// Header values cannot carry NUL, CR or LF: the HTTP layer on either
	// side refuses them, and the verifier's own battery covers those
	// tokens. There is no such case to run here, rather than one that can
	// only skip; the count makes sure the filter takes no other attack.
	var attacks []oidctest.Attack
	for _, a := range p.Attacks(attacker.URL) {
		if !strings.ContainsAny(a.Token, "\x00\r\n") {
			attacks = append(attacks, a)
		}
	}
	if n := len(p.Attacks(attacker.URL)) - len(attacks); n != 1 {
		t.Fatalf("%d attacks are not representable in a header, want 1 (newline inside)", n)
	}

	for _, proto := range []protocol{protocols[0], protocols[2]} {
		client := newClient(s.URL, proto)
		if _, err := client.CheckToken(ctx, withBearer(&mgmtv1alpha1.CheckTokenRequest{}, p.AccessToken())); err != nil {
			t.Fatalf("%s: a valid token is refused: %v", proto.name, err)
		}
		jwksBefore := p.Count(oidctest.PathJWKS)
		for _, a := range attacks {
			t.Run(proto.name+"/"+a.Name, func(t *testing.T) {
				req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
				req.Header().Set("Authorization", "Bearer "+a.Token)
				logged := len(s.Logs.String())
				_, err := client.CheckToken(ctx, req)
				var ce *connect.Error
				if !errors.As(err, &ce) || ce.Code() != connect.CodeUnauthenticated || ce.Message() != authn.UnauthenticatedMessage {
					t.Fatalf("CheckToken = %v, want Unauthenticated %q", err, authn.UnauthenticatedMessage)
				}
				// The interceptor logs the refusal before it answers, so
				// the line is there once the answer is.
				checks := refusalChecks(t, s.Logs.String()[logged:])
				want := a.CheckFor(false)
				if a.Token == "" || strings.ContainsAny(a.Token, " \t") {
					// "Bearer " then such a token is no bearer credential
					// at all (RFC 6750 §2.1): the verifier never sees it.
					want = noBearerToken
				}
				if len(checks) != 1 || checks[0] != want {
					t.Errorf("refused by checks %q, want exactly [%q]", checks, want)
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

// noBearerToken stands, in refusalChecks, for a request refused before any
// verification because its Authorization header holds no bearer token.
const noBearerToken = "(no bearer token)"

// refusalChecks returns, for every refusal in a JSON log, the "check" of a
// "token refused" line or noBearerToken.
func refusalChecks(t *testing.T, log string) []string {
	t.Helper()
	var checks []string
	for line := range strings.Lines(log) {
		var rec struct {
			Msg   string `json:"msg"`
			Check string `json:"check"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch rec.Msg {
		case "token refused":
			checks = append(checks, rec.Check)
		case "request without a bearer token":
			checks = append(checks, noBearerToken)
		}
	}
	return checks
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
