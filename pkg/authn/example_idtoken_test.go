package authn_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/nsauth/nsauth/pkg/authn"
)

// idToken returns an ID token the example provider issued to the client
// web-app for alice, answering a sign-in that sent nonce.
func (p *exampleProvider) idToken(nonce string) string {
	claims := map[string]any{
		"iss": p.URL, "sub": "alice", "aud": "web-app", "nonce": nonce,
		"email": "alice@example.com", "email_verified": true,
		"iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(),
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "key-1"))
	if err != nil {
		panic(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	token, _ := jws.CompactSerialize()
	return token
}

// A relying party that signs people in with the provider (the client
// web-app) verifies its ID tokens with IDTokens set and its client id as
// the audience; the nonce it sent is its own to compare. An access token
// (typed at+jwt) is no ID token, even with the right audience.
func ExampleProvider_Verifier_idTokens() {
	provider := startExampleProvider()
	defer provider.Close()
	p, err := authn.NewProvider(context.Background(), provider.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	verifier, err := p.Verifier(authn.Config{Audiences: []string{"web-app"}, IDTokens: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	const sentNonce = "n-0S6_WzA2Mj"
	claims, err := verifier.Verify(context.Background(), provider.idToken(sentNonce))
	if err != nil {
		fmt.Println(err)
		return
	}
	var extra struct {
		Nonce         string `json:"nonce"`
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
	}
	if err := claims.Decode(&extra); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Subject, extra.Nonce == sentNonce, extra.Email, extra.EmailVerified)

	_, err = verifier.Verify(context.Background(), provider.issue("alice", map[string]any{"aud": "web-app"}))
	fmt.Println(authn.RefusedCheck(err))
	// Output:
	// alice true alice@example.com true
	// token type
}
