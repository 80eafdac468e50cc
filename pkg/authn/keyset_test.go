package authn_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/nsauth/nsauth/pkg/authn"
)

// jwk marshals key as a JWK, private parts included when key is private.
func jwk(t *testing.T, key any, kid, alg, use string) string {
	t.Helper()
	b, err := jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: use}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRemoteKeySetKeepsOnlyPublicSigningKeys serves JWKS documents with
// keys no verifier may use. They are ignored (their kid is then unknown),
// the other keys keep working, and a kid that names two keys names none; a
// document left with no usable key is refused as a whole, which for a set
// that never had keys means ErrKeysUnavailable.
func TestRemoteKeySetKeepsOnlyPublicSigningKeys(t *testing.T) {
	t.Parallel()
	good, other := ecKey(t), ecKey(t)
	rsaPrivate, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	goodJWK := jwk(t, good.Public(), "good", "ES256", "sig")
	hmacSecret := []byte("an-hmac-secret-that-must-never-verify-anything")

	tests := []struct {
		name string
		keys []string
		// found are the kids that resolve, each to the public key given.
		found map[string]crypto.PublicKey
		// unknown are the kids that must not resolve (an ordinary miss, not
		// ErrUnavailable).
		unknown []string
		// noUsableKeys: the whole document is refused.
		noUsableKeys bool
	}{
		{
			name:    "HMAC (oct) key beside a public key is ignored",
			keys:    []string{goodJWK, jwk(t, hmacSecret, "hmac", "HS256", "sig")},
			found:   map[string]crypto.PublicKey{"good": good.Public()},
			unknown: []string{"hmac"},
		},
		{
			name:         "HMAC (oct) key alone is refused",
			keys:         []string{jwk(t, hmacSecret, "hmac", "HS256", "sig")},
			noUsableKeys: true,
		},
		{
			name:    "private RSA key is ignored, not used for its public half",
			keys:    []string{goodJWK, jwk(t, rsaPrivate, "leaked", "RS256", "sig")},
			found:   map[string]crypto.PublicKey{"good": good.Public()},
			unknown: []string{"leaked"},
		},
		{
			name:         "private RSA key alone is refused",
			keys:         []string{jwk(t, rsaPrivate, "leaked", "RS256", "sig")},
			noUsableKeys: true,
		},
		{
			name:    "private EC key is ignored",
			keys:    []string{goodJWK, jwk(t, other, "leaked-ec", "ES256", "")},
			found:   map[string]crypto.PublicKey{"good": good.Public()},
			unknown: []string{"leaked-ec"},
		},
		{
			name:    "two keys under one kid: neither is trusted",
			keys:    []string{goodJWK, jwk(t, other.Public(), "dup", "ES256", "sig"), jwk(t, ecKey(t).Public(), "dup", "ES256", "sig")},
			found:   map[string]crypto.PublicKey{"good": good.Public()},
			unknown: []string{"dup"},
		},
		{
			name:    "three keys under one kid: none is trusted",
			keys:    []string{goodJWK, jwk(t, other.Public(), "dup", "ES256", "sig"), jwk(t, ecKey(t).Public(), "dup", "ES256", "sig"), jwk(t, ecKey(t).Public(), "dup", "ES256", "sig")},
			found:   map[string]crypto.PublicKey{"good": good.Public()},
			unknown: []string{"dup"},
		},
		{
			name:    "the same key twice under one kid is still ambiguous",
			keys:    []string{goodJWK, jwk(t, other.Public(), "dup", "ES256", "sig"), jwk(t, other.Public(), "dup", "ES256", "sig")},
			found:   map[string]crypto.PublicKey{"good": good.Public()},
			unknown: []string{"dup"},
		},
		{
			name:         "only duplicates is refused",
			keys:         []string{jwk(t, good.Public(), "dup", "ES256", "sig"), jwk(t, other.Public(), "dup", "ES256", "sig")},
			noUsableKeys: true,
		},
		{
			// Ignored keys are dropped before duplicates are looked for, so
			// they cannot make a published key ambiguous.
			name:  "a private or HMAC key sharing a public key's kid leaves it usable",
			keys:  []string{jwk(t, other, "shared", "ES256", "sig"), jwk(t, hmacSecret, "shared", "HS256", "sig"), jwk(t, good.Public(), "shared", "ES256", "sig")},
			found: map[string]crypto.PublicKey{"shared": good.Public()},
		},
		{
			name:    "encryption key is ignored",
			keys:    []string{goodJWK, jwk(t, other.Public(), "enc", "ECDH-ES", "enc")},
			found:   map[string]crypto.PublicKey{"good": good.Public()},
			unknown: []string{"enc"},
		},
		{
			name:    "unknown key type does not spoil the others",
			keys:    []string{`{"kty":"XYZ","kid":"strange"}`, goodJWK},
			found:   map[string]crypto.PublicKey{"good": good.Public()},
			unknown: []string{"strange"},
		},
		{
			name:  "an empty kid selects the only key",
			keys:  []string{jwk(t, good.Public(), "", "ES256", "sig")},
			found: map[string]crypto.PublicKey{"": good.Public()},
		},
		{
			name:    "an empty kid selects nothing among several keys",
			keys:    []string{goodJWK, jwk(t, other.Public(), "other", "ES256", "sig")},
			found:   map[string]crypto.PublicKey{"good": good.Public(), "other": other.Public()},
			unknown: []string{""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := `{"keys":[` + strings.Join(tt.keys, ",") + `]}`
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(doc))
			}))
			t.Cleanup(srv.Close)
			ks, err := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{URL: authn.StaticURL(srv.URL)})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tt.noUsableKeys {
				if _, err := ks.Lookup(ctx, "anything"); !errors.Is(err, authn.ErrKeysUnavailable) {
					t.Fatalf("Lookup = %v, want ErrKeysUnavailable", err)
				}
				return
			}
			for kid, want := range tt.found {
				key, err := ks.Lookup(ctx, kid)
				if err != nil {
					t.Fatalf("Lookup(%q): %v", kid, err)
				}
				if !key.IsPublic() {
					t.Errorf("Lookup(%q) returned a private key", kid)
				}
				if !samePublicKey(t, key.Key, want) {
					t.Errorf("Lookup(%q) returned another key", kid)
				}
			}
			for _, kid := range tt.unknown {
				key, err := ks.Lookup(ctx, kid)
				if err == nil {
					t.Fatalf("Lookup(%q) = %v, want no key", kid, key.Key)
				}
				if errors.Is(err, authn.ErrUnavailable) {
					t.Errorf("Lookup(%q) = %v: an unusable key is a miss, not an outage", kid, err)
				}
			}
		})
	}
}

func samePublicKey(t *testing.T, got any, want crypto.PublicKey) bool {
	t.Helper()
	eq, ok := want.(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		t.Fatalf("%T has no Equal method", want)
	}
	return eq.Equal(got)
}

// TestVerifierRefusesTokensForIgnoredKeys signs tokens with keys the JWKS
// publishes but the key set must not use: all are invalid, none
// unavailable.
func TestVerifierRefusesTokensForIgnoredKeys(t *testing.T) {
	t.Parallel()
	good, dupA, dupB := ecKey(t), ecKey(t), ecKey(t)
	doc, err := json.Marshal(map[string]any{"keys": []json.RawMessage{
		json.RawMessage(jwk(t, good.Public(), "good", "ES256", "sig")),
		json.RawMessage(jwk(t, dupA, "private", "ES256", "sig")),
		json.RawMessage(jwk(t, dupA.Public(), "dup", "ES256", "sig")),
		json.RawMessage(jwk(t, dupB.Public(), "dup", "ES256", "sig")),
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(doc) }))
	t.Cleanup(srv.Close)
	ks, err := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{URL: authn.StaticURL(srv.URL)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := authn.NewVerifier(authn.VerifierConfig{Issuer: "https://issuer.example", Audiences: []string{"api"}, Algorithms: []string{"ES256"}, KeySet: ks})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(key *ecdsa.PrivateKey, kid string) string {
		return signES256(t, key, kid, map[string]any{"iss": "https://issuer.example", "sub": "alice", "aud": "api", "exp": 4102444800})
	}
	if _, err := v.Verify(context.Background(), sign(good, "good")); err != nil {
		t.Fatalf("token of the usable key: %v", err)
	}
	for _, tc := range []struct{ name, token string }{
		{"kid of a published private key", sign(dupA, "private")},
		{"ambiguous kid, first key", sign(dupA, "dup")},
		{"ambiguous kid, second key", sign(dupB, "dup")},
	} {
		_, err := v.Verify(context.Background(), tc.token)
		if !errors.Is(err, authn.ErrInvalidToken) || errors.Is(err, authn.ErrUnavailable) {
			t.Errorf("%s: err = %v, want ErrInvalidToken only", tc.name, err)
		}
	}
}

// signES256 signs claims as a compact JWS with key and kid.
func signES256(t *testing.T, key *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
