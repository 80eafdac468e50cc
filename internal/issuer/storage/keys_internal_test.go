package storage

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// TestParsePrivateKeyMatchesAlgorithm: a stored key is used only when its
// type is the one its algorithm names; a row whose algorithm and key
// disagree (a P-384 key stored as ES256, an RSA key as EdDSA) is refused,
// so that no token is signed under a header that misnames its key.
func TestParsePrivateKeyMatchesAlgorithm(t *testing.T) {
	t.Parallel()
	der := map[string][]byte{}
	for _, alg := range SigningAlgorithms {
		k, err := NewPrivateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		if der[string(alg)], err = x509.MarshalPKCS8PrivateKey(k); err != nil {
			t.Fatal(err)
		}
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if der["P-384"], err = x509.MarshalPKCS8PrivateKey(p384); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		alg  jose.SignatureAlgorithm
		key  string
		ok   bool
	}{
		{"RS256 key", jose.RS256, "RS256", true},
		{"ES256 key", jose.ES256, "ES256", true},
		{"EdDSA key", jose.EdDSA, "EdDSA", true},
		{"RSA key as ES256", jose.ES256, "RS256", false},
		{"RSA key as EdDSA", jose.EdDSA, "RS256", false},
		{"P-256 key as RS256", jose.RS256, "ES256", false},
		{"Ed25519 key as ES256", jose.ES256, "EdDSA", false},
		{"P-384 key as ES256", jose.ES256, "P-384", false},
		{"RSA key as PS256", jose.PS256, "RS256", false},
		{"not a key", jose.RS256, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := der[tc.key]
			if tc.key == "" {
				in = []byte("not DER")
			}
			_, err := parsePrivateKey(tc.alg, in)
			if (err == nil) != tc.ok {
				t.Fatalf("parsePrivateKey(%s, %s key): err = %v, want ok = %v", tc.alg, tc.key, err, tc.ok)
			}
		})
	}
}
