package authn_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"
	"time"
	"unicode"

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
// returns exactly what bearerSpec, written apart from it, says: in
// particular never a token with white space or control characters in it.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{
		"Bearer abc", "bearer abc", "BEARER abc", "Basic abc", "Bearer", "Bearer ", "Bearer  a b", "",
		"Bearer a\tb", "Bearer a\nb", "Bearer a\vb", "Bearer a\u00a0b", "Bearer a\u2003b", "Bearer a\x00b",
		"Bearer\tabc", "Bearerabc", "Bearer abc ", " Bearer abc", "Bearer eyJ.eyJ.sig", "Bearer ory_at_x-y~z+/==",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		h := map[string][]string{"Authorization": {header}}
		tok, ok := authn.BearerToken(h)
		wantTok, wantOK := bearerSpec(header)
		if tok != wantTok || ok != wantOK {
			t.Fatalf("BearerToken(%q) = %q, %v; want %q, %v", header, tok, ok, wantTok, wantOK)
		}
	})
}

// bearerSpec restates, for the fuzz oracle only, what BearerToken accepts:
// RFC 6750 §2.1's `Bearer` scheme (compared without regard to ASCII case)
// followed by exactly one space and a token, which is what remains: not
// empty, with no white space (nor a second separating space) and no control
// character. It deliberately shares no code with the parser.
func bearerSpec(header string) (string, bool) {
	const scheme = "bearer "
	if len(header) <= len(scheme) {
		return "", false
	}
	for i := range len(scheme) {
		c := header[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != scheme[i] {
			return "", false
		}
	}
	token := header[len(scheme):]
	for _, r := range token {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "", false
		}
	}
	return token, true
}
