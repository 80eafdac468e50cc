package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// TestVerifySignatureAgreesWithGoJose: verifySignature accepts exactly what
// go-jose (which the verifier no longer calls, the oracle here) accepts,
// over every pair of the algorithm a token's header names and the
// algorithm and key it was really signed with, checked with every key:
// honest tokens, tokens signed by another key or with another algorithm,
// keys of another type or curve, altered payloads and signatures.
func TestVerifySignatureAgreesWithGoJose(t *testing.T) {
	t.Parallel()
	keys := []crypto.Signer{
		mustRSA(t, 2048), mustRSA(t, 3072),
		mustEC(t, elliptic.P256()), mustEC(t, elliptic.P384()), mustEC(t, elliptic.P521()),
		mustEd(t),
	}
	payload := b64url(`{"iss":"https://issuer.example","sub":"alice","exp":4102444800}`)
	honest, accepted := 0, 0
	var prepared rsaKeys
	for _, named := range asymmetricAlgorithms {
		input := b64url(`{"alg":"`+named+`","kid":"k"}`) + "." + payload
		for _, signedWith := range asymmetricAlgorithms {
			for si, signer := range keys {
				sig, ok := rawSign(t, signer, signedWith, input)
				if !ok {
					continue // the key cannot sign with this algorithm
				}
				if named == signedWith {
					honest++
				}
				altered := append([]byte(nil), sig...)
				altered[len(altered)/2] ^= 1
				for _, tc := range []struct {
					name, input string
					sig         []byte
				}{
					{"as signed", input, sig},
					{"payload altered", input + "A", sig},
					{"signature altered", input, altered},
					{"signature cut", input, sig[:len(sig)-1]},
				} {
					for ki, k := range keys {
						pub := k.Public()
						ours := verifySignature(&prepared, pub, named, tc.input, tc.sig) == nil
						theirs := goJoseVerifies(pub, named, tc.input, tc.sig)
						if ours != theirs {
							t.Errorf("header %s, signed with %s by key %d, %s, checked with key %d (%s): verifySignature %v, go-jose %v",
								named, signedWith, si, tc.name, ki, keyType(pub), ours, theirs)
						}
						if ours {
							accepted++
						}
					}
				}
			}
		}
	}
	// Each honest token verifies with its own key, and nothing else does
	// (PKCS #1 v1.5 and PSS signatures of one key are told apart, as are
	// the SHA-2 sizes).
	if honest == 0 || accepted != honest {
		t.Errorf("%d verifications passed, want %d (one per honest token)", accepted, honest)
	}
}

// goJoseVerifies is the oracle: go-jose's parser and verifier.
func goJoseVerifies(pub crypto.PublicKey, alg, input string, sig []byte) bool {
	jws, err := jose.ParseSignedCompact(input+"."+base64.RawURLEncoding.EncodeToString(sig), []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		return false
	}
	_, err = jws.Verify(pub)
	return err == nil
}

// rawSign signs input as alg with the standard library, or reports that
// the key cannot.
func rawSign(t *testing.T, k crypto.Signer, alg, input string) ([]byte, bool) {
	t.Helper()
	var sig []byte
	var err error
	switch key := k.(type) {
	case *rsa.PrivateKey:
		if alg[0] != 'R' && alg[0] != 'P' {
			return nil, false
		}
		h := shaFor(alg[2:])
		d := h.New()
		d.Write([]byte(input))
		if alg[0] == 'R' {
			sig, err = rsa.SignPKCS1v15(rand.Reader, key, h, d.Sum(nil))
		} else {
			sig, err = rsa.SignPSS(rand.Reader, key, h, d.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
	case *ecdsa.PrivateKey:
		curve, size := curveFor(alg)
		if alg[0] != 'E' || alg == "EdDSA" || key.Curve != curve {
			return nil, false
		}
		h := shaFor(alg[2:])
		d := h.New()
		d.Write([]byte(input))
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, key, d.Sum(nil))
		if err == nil {
			sig = make([]byte, 2*size)
			r.FillBytes(sig[:size])
			s.FillBytes(sig[size:])
		}
	case ed25519.PrivateKey:
		if alg != "EdDSA" {
			return nil, false
		}
		sig = ed25519.Sign(key, []byte(input))
	}
	if err != nil {
		t.Fatalf("signing as %s: %v", alg, err)
	}
	return sig, true
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mustRSA(t *testing.T, bits int) crypto.Signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEC(t *testing.T, c elliptic.Curve) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEd(t *testing.T) crypto.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
