// Package federationtest is a fake CI provider for tests: an OpenID issuer
// on httptest with its own keys (discovery and JWKS), that mints ID tokens
// as GitHub Actions or Kubernetes would, and forged ones for attack cases.
package federationtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// Issuer is a fake CI provider. Its keys are an RS256 key (kid "rsa-1")
// and an ES256 key (kid "ec-1").
type Issuer struct {
	URL    string
	rsa    *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
	server *httptest.Server

	jwksFetches      atomic.Int64
	discoveryFetches atomic.Int64
}

// RSAKeyID and ECKeyID are the key ids of the issuer's keys.
const (
	RSAKeyID = "rsa-1"
	ECKeyID  = "ec-1"
)

// NewIssuer starts a fake CI provider, stopped when the test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss := &Issuer{rsa: rk, ec: ek}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+oidcdiscovery.WellKnownPath, func(w http.ResponseWriter, _ *http.Request) {
		iss.discoveryFetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.URL,
			"jwks_uri":                              iss.URL + "/.well-known/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("GET /.well-known/jwks", func(w http.ResponseWriter, _ *http.Request) {
		iss.jwksFetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: rk.Public(), KeyID: RSAKeyID, Algorithm: "RS256", Use: "sig"},
			{Key: ek.Public(), KeyID: ECKeyID, Algorithm: "ES256", Use: "sig"},
		}})
	})
	iss.server = httptest.NewServer(mux)
	iss.URL = iss.server.URL
	t.Cleanup(iss.server.Close)
	return iss
}

// JWKSFetches is how many times the key set was fetched.
func (i *Issuer) JWKSFetches() int64 { return i.jwksFetches.Load() }

// DiscoveryFetches is how many times the discovery document was fetched.
func (i *Issuer) DiscoveryFetches() int64 { return i.discoveryFetches.Load() }

// Claims returns the claims of a fresh GitHub Actions ID token at now for
// audience and subject: issued now, valid for 5 minutes.
func (i *Issuer) Claims(now time.Time, audience, subject string) map[string]any {
	return map[string]any{
		"iss":        i.URL,
		"aud":        audience,
		"sub":        subject,
		"iat":        now.Unix(),
		"nbf":        now.Unix(),
		"exp":        now.Add(5 * time.Minute).Unix(),
		"jti":        rand.Text(),
		"repository": "acme/app",
		"ref":        "refs/heads/main",
	}
}

// Mint signs claims with the RSA key (RS256, kid rsa-1, typ JWT).
func (i *Issuer) Mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	return i.MintWith(t, claims, jose.RS256, i.rsa, RSAKeyID)
}

// MintES256 signs claims with the EC key (ES256, kid ec-1).
func (i *Issuer) MintES256(t testing.TB, claims map[string]any) string {
	t.Helper()
	return i.MintWith(t, claims, jose.ES256, i.ec, ECKeyID)
}

// MintWith signs claims with any key and algorithm under kid.
func (i *Issuer) MintWith(t testing.TB, claims map[string]any, alg jose.SignatureAlgorithm, key crypto.Signer, kid string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
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
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// MintUnsigned returns claims as an `alg: none` token.
func (i *Issuer) MintUnsigned(t testing.TB, claims map[string]any) string {
	t.Helper()
	return i.handMade(t, map[string]any{"alg": "none", "typ": "JWT", "kid": RSAKeyID}, claims, func([]byte) []byte { return nil })
}

// MintHMACWithPublicKey returns claims signed HS256 with the issuer's RSA
// public key (its PKIX DER) as the HMAC secret: the key-confusion attack.
func (i *Issuer) MintHMACWithPublicKey(t testing.TB, claims map[string]any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(i.rsa.Public())
	if err != nil {
		t.Fatal(err)
	}
	return i.handMade(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": RSAKeyID}, claims, func(input []byte) []byte {
		m := hmac.New(sha256.New, der)
		m.Write(input)
		return m.Sum(nil)
	})
}

func (i *Issuer) handMade(t testing.TB, header, claims map[string]any, sign func([]byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}
