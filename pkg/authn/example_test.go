package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nsauth/nsauth/pkg/authn"
)

// The examples run against exampleProvider, a tiny OpenID provider in this
// process; in real code its URL is your provider's issuer URL
// ("https://auth.example.com") and the tokens come from your clients.

// exampleAudience is the audience the provider puts in its access tokens:
// the API that the examples protect.
const exampleAudience = "my-api"

// exampleProvider serves discovery, a JWKS with one ES256 key and an
// introspection endpoint that knows one opaque token.
type exampleProvider struct {
	*httptest.Server
	key *ecdsa.PrivateKey
}

// exampleOpaqueToken is the opaque token the provider's introspection
// endpoint knows, issued to bob.
const exampleOpaqueToken = "opaque-7d1c9f2e"

func startExampleProvider() *exampleProvider {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	p := &exampleProvider{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		writeExampleJSON(w, map[string]any{
			"issuer":                                p.URL,
			"jwks_uri":                              p.URL + "/jwks",
			"introspection_endpoint":                p.URL + "/introspect",
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		writeExampleJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: key.Public(), KeyID: "key-1", Algorithm: "ES256", Use: "sig"},
		}})
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "my-api" || secret != "my-api-secret" {
			http.Error(w, "invalid_client", http.StatusUnauthorized)
			return
		}
		if r.PostFormValue("token") != exampleOpaqueToken {
			writeExampleJSON(w, map[string]any{"active": false})
			return
		}
		writeExampleJSON(w, map[string]any{
			"active": true, "sub": "bob", "username": "bob", "client_id": "reporting-job",
			"scope": "reports:read", "iss": p.URL, "aud": exampleAudience, "token_type": "Bearer",
			"exp": time.Now().Add(time.Hour).Unix(),
		})
	})
	p.Server = httptest.NewServer(mux)
	return p
}

func writeExampleJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// issue returns an access token for sub, with the registered claims a
// provider sets and the extra ones given.
func (p *exampleProvider) issue(sub string, extra map[string]any) string {
	claims := map[string]any{
		"iss": p.URL, "sub": sub, "aud": exampleAudience, "client_id": "web-app",
		"scope": "openid reports:read", "iat": time.Now().Unix(), "exp": time.Now().Add(15 * time.Minute).Unix(),
	}
	for k, v := range extra {
		claims[k] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "key-1"))
	if err != nil {
		panic(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return token
}

// This verifier is configured by hand: the issuer, and where its keys are.
func ExampleNewVerifier() {
	provider := startExampleProvider()
	defer provider.Close()

	keys, err := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{URL: authn.StaticURL(provider.URL + "/jwks")})
	if err != nil {
		fmt.Println(err)
		return
	}
	verifier, err := authn.NewVerifier(authn.VerifierConfig{
		Issuer:     provider.URL,
		Audiences:  []string{"my-api"},
		Algorithms: []string{"ES256"},
		KeySet:     keys,
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	claims, err := verifier.Verify(context.Background(), provider.issue("alice", nil))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Subject, claims.ClientID, claims.Scopes)

	_, err = verifier.Verify(context.Background(), "not-a-token")
	fmt.Println(errors.Is(err, authn.ErrInvalidToken))
	// Output:
	// alice web-app [openid reports:read]
	// true
}

// NewFromIssuer needs only the issuer URL: the keys' location and the
// signature algorithms come from the provider's discovery document.
func ExampleNewFromIssuer() {
	provider := startExampleProvider()
	defer provider.Close()

	verifier, err := authn.NewFromIssuer(context.Background(), provider.URL, authn.VerifierConfig{
		Audiences: []string{"my-api"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	claims, err := verifier.Verify(context.Background(), provider.issue("alice", nil))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Subject, claims.Audience)

	// A provider is named by its issuer exactly: with a trailing slash it is
	// another issuer, and discovery says so.
	_, err = authn.NewFromIssuer(context.Background(), provider.URL+"/", authn.VerifierConfig{Audiences: []string{"my-api"}})
	fmt.Println(err != nil && strings.Contains(err.Error(), "names the issuer"))
	// Output:
	// alice [my-api]
	// true
}

// Discover is the building block under NewFromIssuer, for programs that
// configure the key set or the introspector themselves.
func ExampleDiscover() {
	provider := startExampleProvider()
	defer provider.Close()

	md, err := authn.Discover(context.Background(), provider.URL, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.TrimPrefix(md.JWKSURL, provider.URL))
	fmt.Println(strings.TrimPrefix(md.IntrospectionURL, provider.URL))
	fmt.Println(md.SigningAlgorithms)
	// Output:
	// /jwks
	// /introspect
	// [ES256]
}

// Claims.Decode reads the claims Claims does not name into a struct of
// the service's own.
func ExampleClaims_Decode() {
	provider := startExampleProvider()
	defer provider.Close()
	verifier, err := authn.NewFromIssuer(context.Background(), provider.URL, authn.VerifierConfig{Audiences: []string{"my-api"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	token := provider.issue("alice", map[string]any{
		"email":  "alice@example.com",
		"roles":  []string{"admin", "billing"},
		"tenant": map[string]any{"id": "acme"},
	})

	claims, err := verifier.Verify(context.Background(), token)
	if err != nil {
		fmt.Println(err)
		return
	}
	var custom struct {
		Email  string   `json:"email"`
		Roles  []string `json:"roles"`
		Tenant struct {
			ID string `json:"id"`
		} `json:"tenant"`
	}
	if err := claims.Decode(&custom); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Subject, custom.Email, custom.Roles, custom.Tenant.ID)
	// Output: alice alice@example.com [admin billing] acme
}

// Claims.Machine tells a program's own token (its subject is the client
// it was issued to, RFC 9068 §2.2) from a person's.
func ExampleClaims_Machine() {
	provider := startExampleProvider()
	defer provider.Close()
	verifier, err := authn.NewFromIssuer(context.Background(), provider.URL, authn.VerifierConfig{Audiences: []string{"my-api"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, token := range []string{
		provider.issue("alice", nil),
		provider.issue("m-deploy", map[string]any{"client_id": "m-deploy"}),
	} {
		claims, err := verifier.Verify(context.Background(), token)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(claims.Subject, claims.ClientID, claims.Machine())
	}
	// Output:
	// alice web-app false
	// m-deploy m-deploy true
}

// The interceptor guards every procedure of a Connect handler; handlers
// read the caller's claims from their context. A generated handler takes
// the interceptor the same way:
// myv1connect.NewMyServiceHandler(svc, connect.WithInterceptors(interceptor)).
func ExampleNewInterceptor() {
	provider := startExampleProvider()
	defer provider.Close()
	verifier, err := authn.NewFromIssuer(context.Background(), provider.URL, authn.VerifierConfig{Audiences: []string{"my-api"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	interceptor := authn.NewInterceptor(verifier,
		authn.WithPublicProcedures("/greet.v1.GreetService/Ping"))

	const procedure = "/greet.v1.GreetService/Greet"
	greet := func(ctx context.Context, _ *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.StringValue], error) {
		claims, _ := authn.ClaimsFromContext(ctx) // always there behind the interceptor
		return connect.NewResponse(wrapperspb.String("hello, " + claims.Subject)), nil
	}
	mux := http.NewServeMux()
	mux.Handle(procedure, connect.NewUnaryHandler(procedure, greet, connect.WithInterceptors(interceptor)))
	server := httptest.NewServer(mux)
	defer server.Close()

	client := connect.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](server.Client(), server.URL+procedure)
	_, err = client.CallUnary(context.Background(), connect.NewRequest(wrapperspb.String("")))
	fmt.Println(err)

	req := connect.NewRequest(wrapperspb.String(""))
	req.Header().Set("Authorization", "Bearer "+provider.issue("alice", nil))
	resp, err := client.CallUnary(context.Background(), req)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.Msg.GetValue())
	// Output:
	// unauthenticated: missing or invalid access token
	// hello, alice
}

// An Introspector checks opaque tokens by asking the provider (RFC 7662).
// Decode reads the introspection answer, here its `username`.
func ExampleNewIntrospector() {
	provider := startExampleProvider()
	defer provider.Close()
	md, err := authn.Discover(context.Background(), provider.URL, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	introspector, err := authn.NewIntrospector(authn.IntrospectorConfig{
		URL:          authn.StaticURL(md.IntrospectionURL),
		ClientID:     "my-api",
		ClientSecret: "my-api-secret",
		Issuer:       md.Issuer,
		Audiences:    []string{"my-api"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	claims, err := introspector.Verify(context.Background(), exampleOpaqueToken)
	if err != nil {
		fmt.Println(err)
		return
	}
	var answer struct {
		Username string `json:"username"`
	}
	if err := claims.Decode(&answer); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Subject, claims.ClientID, claims.Scopes, answer.Username)

	_, err = introspector.Verify(context.Background(), "opaque-unknown")
	fmt.Println(errors.Is(err, authn.ErrInvalidToken))
	// Output:
	// bob reporting-job [reports:read] bob
	// true
}

// A ChainVerifier accepts both kinds of token: JWTs are verified locally,
// other tokens introspected.
func ExampleChainVerifier() {
	provider := startExampleProvider()
	defer provider.Close()
	ctx := context.Background()
	md, err := authn.Discover(ctx, provider.URL, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	jwts, err := authn.NewFromIssuer(ctx, provider.URL, authn.VerifierConfig{Audiences: []string{"my-api"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	opaque, err := authn.NewIntrospector(authn.IntrospectorConfig{
		URL: authn.StaticURL(md.IntrospectionURL), ClientID: "my-api", ClientSecret: "my-api-secret",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	verifier := authn.ChainVerifier{JWT: jwts, Introspection: opaque}

	for _, token := range []string{provider.issue("alice", nil), exampleOpaqueToken} {
		claims, err := verifier.Verify(ctx, token)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(claims.Subject)
	}
	// Output:
	// alice
	// bob
}

// A RevocationSet lets a verifier refuse tokens revoked before they
// expire: whatever learns of revocations (the provider's notifications, a
// periodic fetch of its revocation list) adds their ids, and every
// verification, cached or not, consults the set.
func ExampleRevocationSet() {
	provider := startExampleProvider()
	defer provider.Close()

	revoked := &authn.RevocationSet{}
	verifier, err := authn.NewFromIssuer(context.Background(), provider.URL, authn.VerifierConfig{
		Audiences:   []string{"my-api"},
		Revocations: revoked,
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	token := provider.issue("alice", map[string]any{"jti": "token-1"})
	claims, err := verifier.Verify(context.Background(), token)
	fmt.Println(claims.Subject, err)

	// The provider says token-1 was revoked.
	revoked.Add("token-1", claims.ExpiresAt)
	_, err = verifier.Verify(context.Background(), token)
	fmt.Println(errors.Is(err, authn.ErrInvalidToken))
	// Output:
	// alice <nil>
	// true
}

// denyList is a RevocationChecker that asks the provider's record of
// revocations: here, a map standing in for a database.
type denyList map[string]bool

func (d denyList) Revoked(_ context.Context, c *authn.Claims) bool { return d[c.ID] }

// A RevocationSet holds at most MaxEntries ids. Beyond that it does not
// drop a revocation: it becomes overflowed and asks its Fallback about
// every token it does not hold, until a Reload of every live revocation
// makes it whole again.
func ExampleRevocationSet_overflow() {
	ctx := context.Background()
	provider := denyList{"token-1": true, "token-2": true, "token-3": true}
	revoked := &authn.RevocationSet{MaxEntries: 2, Fallback: provider}
	exp := time.Now().Add(time.Hour)
	for _, id := range []string{"token-1", "token-2", "token-3"} {
		revoked.Add(id, exp) // token-3 does not fit
	}
	fmt.Println(revoked.Overflowed(), revoked.Len())
	for _, id := range []string{"token-1", "token-2", "token-3", "token-4"} {
		fmt.Println(id, revoked.Revoked(ctx, &authn.Claims{ID: id}))
	}

	// Once token-3 has expired and left the provider's record, a reload
	// finds room for every live revocation.
	delete(provider, "token-3")
	_ = revoked.Reload(func(add func(string, time.Time)) error {
		for id := range provider {
			add(id, exp)
		}
		return nil
	})
	fmt.Println(revoked.Overflowed())
	// Output:
	// true 2
	// token-1 true
	// token-2 true
	// token-3 true
	// token-4 false
	// false
}
