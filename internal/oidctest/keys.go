package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"sync"

	"github.com/go-jose/go-jose/v4"
)

// Key is a signing key of the fake.
type Key struct {
	ID        string
	Algorithm string
	Private   crypto.Signer
}

// Public returns the key's public JWK.
func (k *Key) Public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"}
}

// KeySet is the fake's signing keys: the current one signs, all are
// published at PathJWKS. Tests rotate, add and remove keys through it to
// play a provider's key rollover. It is safe for concurrent use.
type KeySet struct {
	mu      sync.Mutex
	keys    []*Key // keys[current] signs
	current int
}

// Rotate adds a new signing key for alg and signs with it from now on.
// The old keys stay published.
func (s *KeySet) Rotate(alg string) *Key {
	k := NewKey(alg)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k)
	s.current = len(s.keys) - 1
	return k
}

// Add publishes a new key for alg without signing with it.
func (s *KeySet) Add(alg string) *Key {
	k := NewKey(alg)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k)
	return k
}

// Published returns a published key for alg, or nil.
func (s *KeySet) Published(alg string) *Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.Algorithm == alg {
			return k
		}
	}
	return nil
}

// Remove unpublishes a key.
func (s *KeySet) Remove(kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.keys[s.current]
	s.keys = slices.DeleteFunc(s.keys, func(k *Key) bool { return k.ID == kid })
	s.current = max(0, slices.Index(s.keys, cur))
}

// Current returns the current signing key.
func (s *KeySet) Current() *Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[s.current]
}

// Sign signs claims with the current key. extraHeaders are added to (or
// override) the protected header; they may override "alg" or "kid".
func (s *KeySet) Sign(claims map[string]any, extraHeaders map[string]any) string {
	return SignWith(s.Current(), claims, extraHeaders)
}

// serveJWKS publishes every key.
func (s *KeySet) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	set := jose.JSONWebKeySet{}
	for _, k := range s.keys {
		set.Keys = append(set.Keys, k.Public())
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, set)
}

// NewKey generates a signing key for alg (RS256 or ES256).
func NewKey(alg string) *Key {
	var signer crypto.Signer
	var err error
	switch alg {
	case "RS256":
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		panic("oidctest: unsupported algorithm " + alg)
	}
	if err != nil {
		panic(err)
	}
	return &Key{ID: alg + "-" + randomString(6), Algorithm: alg, Private: signer}
}

// SignRaw signs exactly the given header and payload bytes (which need not
// be valid JSON) with k, for tokens no JSON encoder would produce. k must be
// RS256 or ES256.
func SignRaw(k *Key, header, payload []byte) string {
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch key := k.Private.(type) {
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err != nil {
			panic(err)
		}
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
		if err != nil {
			panic(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	default:
		panic("oidctest: SignRaw supports RSA and ECDSA keys")
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// SignWith signs claims with key k.
func SignWith(k *Key, claims map[string]any, extraHeaders map[string]any) string {
	opts := (&jose.SignerOptions{}).WithHeader("kid", k.ID)
	for name, v := range extraHeaders {
		opts = opts.WithHeader(jose.HeaderKey(name), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm), Key: k.Private}, opts)
	if err != nil {
		panic(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return s
}
