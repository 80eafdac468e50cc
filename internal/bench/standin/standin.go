// Package standin is a stand-in external OpenID provider for the bench:
// it serves its discovery document and its key set on loopback, and signs
// access tokens (RFC 9068 claims) in the caller's process. It implements
// no grant: a broker in front of it only verifies its tokens.
package standin

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer is a running stand-in provider.
type Issuer struct {
	url      string
	audience string
	clientID string
	signer   jose.Signer
	srv      *http.Server
}

// Start serves a provider whose one key is key, signing with alg, whose
// tokens name audience and clientID.
func Start(key crypto.Signer, alg, audience, clientID string) (*Issuer, error) {
	kid := randomID()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return nil, fmt.Errorf("standin: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("standin: %w", err)
	}
	e := &Issuer{url: "http://" + ln.Addr().String(), audience: audience, clientID: clientID, signer: signer}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}}})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("standin: %w", err)
	}
	discovery, err := json.Marshal(map[string]any{
		"issuer": e.url, "jwks_uri": e.url + "/jwks",
		"authorization_endpoint": e.url + "/authorize", "token_endpoint": e.url + "/token",
		"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{alg},
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("standin: %w", err)
	}
	mux := http.NewServeMux()
	serve := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}
	}
	mux.Handle("GET /.well-known/openid-configuration", serve(discovery))
	mux.Handle("GET /jwks", serve(jwks))
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

// URL is the provider's issuer.
func (e *Issuer) URL() string { return e.url }

// Close stops serving.
func (e *Issuer) Close() error { return e.srv.Close() }

// Mint signs n distinct access tokens, valid for a day.
func (e *Issuer) Mint(n int) ([]string, error) {
	now := time.Now()
	out := make([]string, n)
	for i := range out {
		claims, err := json.Marshal(map[string]any{
			"iss": e.url, "sub": "bench-user", "aud": e.audience, "client_id": e.clientID,
			"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(), "jti": randomID(), "scope": "openid profile",
		})
		if err != nil {
			return nil, err
		}
		jws, err := e.signer.Sign(claims)
		if err != nil {
			return nil, fmt.Errorf("standin: %w", err)
		}
		if out[i], err = jws.CompactSerialize(); err != nil {
			return nil, fmt.Errorf("standin: %w", err)
		}
	}
	return out, nil
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
