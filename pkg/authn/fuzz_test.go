package authn_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// fixedKeys is an in-memory KeySet, so fuzzing makes no network calls.
type fixedKeys map[string]jose.JSONWebKey

func (k fixedKeys) Lookup(_ context.Context, kid string) (*jose.JSONWebKey, error) {
	key, ok := k[kid]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	return &key, nil
}

// FuzzVerify feeds arbitrary strings to the verifier. It must never panic,
// and must accept nothing but the one token it was given a valid signature
// for: no mutation of a signed token may verify.
func FuzzVerify(f *testing.F) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	key := &oidctest.Key{ID: "fuzz-key", Algorithm: "RS256", Private: rsaKey}
	now := time.Unix(1_800_000_000, 0)
	claims := map[string]any{
		"iss": "https://issuer.example", "sub": "alice", "aud": "api",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "scope": "openid",
	}
	valid := oidctest.SignWith(key, claims, map[string]any{"typ": "at+jwt"})
	v, err := authn.NewVerifier(authn.VerifierConfig{
		Issuer: "https://issuer.example", Audiences: []string{"api"},
		KeySet: fixedKeys{key.ID: key.Public()}, Now: func() time.Time { return now },
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.")
	for _, name := range []string{"iss", "aud", "exp", "sub"} {
		c := map[string]any{}
		for k, val := range claims {
			c[k] = val
		}
		delete(c, name)
		f.Add(oidctest.SignWith(key, c, nil))
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(context.Background(), raw)
		if err == nil && raw != valid {
			t.Fatalf("accepted a token that was never signed: %q (claims %+v)", raw, c)
		}
		if err != nil && !errors.Is(err, authn.ErrInvalidToken) {
			t.Fatalf("error outside the contract: %v", err)
		}
	})
}

// FuzzBearerToken checks the Authorization header parser never panics and
// only returns tokens without spaces.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer abc", "Basic abc", "Bearer", "Bearer  a b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		h := map[string][]string{"Authorization": {header}}
		tok, ok := authn.BearerToken(h)
		if ok && (tok == "" || len(tok) >= len(header)) {
			t.Fatalf("BearerToken(%q) = %q", header, tok)
		}
	})
}
