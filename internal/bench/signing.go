package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer/storage"
)

// The signing scenarios measure the provider's token endpoint against the
// cost of the signature alone, for the configured signing algorithm.
const (
	// ProviderClientCredentials is a machine client's client-credentials
	// grant at the provider's token endpoint: one signed access token per
	// call and nothing else signed. Its ceiling is [RawSign].
	ProviderClientCredentials = "provider client credentials (direct)"
	// RawVerify verifies one signature of the configured algorithm per
	// call with the standard library, over a token-sized payload: what a
	// CheckToken of a token not seen before cannot do without.
	RawVerify = "raw verification"
)

// rawSignature is a key of one algorithm and a signature made with it,
// over a payload the size of an access token's signing input.
type rawSignature struct {
	alg     string
	priv    crypto.Signer
	payload []byte
	sig     []byte
}

// newRawSignature generates a key of alg (one of
// config.BuiltinSigningAlgorithms) the size the provider's keys are.
func newRawSignature(alg string) (*rawSignature, error) {
	r := &rawSignature{alg: alg, payload: make([]byte, 420)}
	_, _ = rand.Read(r.payload)
	var err error
	if r.priv, err = storage.NewPrivateKey(jose.SignatureAlgorithm(alg)); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if r.sig, err = r.sign(); err != nil {
		return nil, err
	}
	if !r.verify() {
		return nil, fmt.Errorf("bench: a %s signature does not verify", alg)
	}
	return r, nil
}

// sign hashes and signs the payload as a JWS signer does.
func (r *rawSignature) sign() ([]byte, error) {
	if r.alg == "EdDSA" {
		return r.priv.Sign(nil, r.payload, crypto.Hash(0))
	}
	sum := sha256.Sum256(r.payload)
	return r.priv.Sign(rand.Reader, sum[:], crypto.SHA256)
}

// verify hashes the payload and checks the signature.
func (r *rawSignature) verify() bool {
	switch pub := r.priv.Public().(type) {
	case *rsa.PublicKey:
		sum := sha256.Sum256(r.payload)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], r.sig) == nil
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(r.payload)
		return ecdsa.VerifyASN1(pub, sum[:], r.sig)
	case ed25519.PublicKey:
		return ed25519.Verify(pub, r.payload, r.sig)
	}
	return false
}

// signingCallers prepares the callers of the signing scenarios.
func signingCallers(ctx context.Context, tg *target, side int, scenario string, httpClient *http.Client, concurrency int) ([]caller, error) {
	out := make([]caller, concurrency)
	switch {
	case scenario == RawVerify || side == sideCeiling:
		raw, err := newRawSignature(tg.algorithm)
		if err != nil {
			return nil, err
		}
		do := func(context.Context) error {
			if _, err := raw.sign(); err != nil {
				return err
			}
			return nil
		}
		if scenario == RawVerify {
			do = func(context.Context) error {
				if !raw.verify() {
					return fmt.Errorf("a %s signature does not verify", raw.alg)
				}
				return nil
			}
		}
		for i := range out {
			out[i] = do
		}
	default:
		form := url.Values{"grant_type": {"client_credentials"}}
		for i := range out {
			out[i] = func(ctx context.Context) error {
				_, err := tg.postTokenAs(ctx, httpClient, tg.machineID, tg.machineSecret, form)
				return err
			}
		}
	}
	return out, nil
}

// checkAlgorithm refuses an algorithm the provider cannot sign with.
func checkAlgorithm(alg string) error {
	if !slices.Contains(config.BuiltinSigningAlgorithms, alg) {
		return fmt.Errorf("bench: unknown signing algorithm %q; use one of %v", alg, config.BuiltinSigningAlgorithms)
	}
	return nil
}
