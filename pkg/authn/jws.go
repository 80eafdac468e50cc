package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// compactJWS is a token in the JWS compact serialization, decoded once by
// [Verifier.checkShape]: its header's parameters, the bytes its signature
// covers (the first two segments as sent), the payload and the signature.
// Nothing in it is trusted before [verifySignature] has checked it.
type compactJWS struct {
	header       joseHeader
	signingInput string
	payload      []byte
	signature    []byte
}

// verifySignature checks sig over input with key for alg, one of
// asymmetricAlgorithms, as RFC 7518 §3 defines them. The key must be of
// the algorithm's type (and an EC key of its curve): a key set that mixes
// types cannot be turned against itself by a token naming another
// algorithm. The primitives are the standard library's, as go-jose uses
// them, except for RS256/384/512, checked with the key prepared once in
// prepared (see rsaKeys); the verifier calls them directly so that a token
// is decoded once, not once by the shape check and again by a JWS parser.
func verifySignature(prepared *rsaKeys, key any, alg, input string, sig []byte) error {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		pub, ok := key.(*rsa.PublicKey)
		if !ok || pub == nil {
			return fmt.Errorf("%s needs an RSA key, the key is %s", alg, keyType(key))
		}
		h := shaFor(alg[2:])
		digest := digestOf(h, input)
		if alg[0] == 'P' {
			return rsa.VerifyPSS(pub, h, digest, sig, nil)
		}
		k, err := prepared.get(pub)
		if err != nil {
			return err
		}
		return k.verifyPKCS1v15(h, digest, sig)
	case "ES256", "ES384", "ES512":
		pub, ok := key.(*ecdsa.PublicKey)
		if !ok || pub == nil {
			return fmt.Errorf("%s needs an EC key, the key is %s", alg, keyType(key))
		}
		curve, size := curveFor(alg)
		if pub.Curve != curve {
			return fmt.Errorf("%s needs a key on %s, the key is on %s", alg, curve.Params().Name, pub.Curve.Params().Name)
		}
		if len(sig) != 2*size {
			return fmt.Errorf("%s signature is %d bytes, want %d", alg, len(sig), 2*size)
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(pub, digestOf(shaFor(alg[2:]), input), r, s) {
			return errors.New("ecdsa signature does not verify")
		}
		return nil
	case "EdDSA":
		pub, ok := key.(ed25519.PublicKey)
		if !ok || len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("EdDSA needs an Ed25519 key, the key is %s", keyType(key))
		}
		if !ed25519.Verify(pub, []byte(input), sig) {
			return errors.New("ed25519 signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("algorithm %q is not supported", alg)
}

// shaFor is the SHA-2 function of an algorithm's size suffix.
func shaFor(bits string) crypto.Hash {
	switch bits {
	case "384":
		return crypto.SHA384
	case "512":
		return crypto.SHA512
	}
	return crypto.SHA256
}

// curveFor is ESxxx's curve and the size of each of r and s in bytes.
func curveFor(alg string) (elliptic.Curve, int) {
	switch alg {
	case "ES384":
		return elliptic.P384(), 48
	case "ES512":
		return elliptic.P521(), 66
	}
	return elliptic.P256(), 32
}

// digestOf hashes input without copying it to a byte slice first.
func digestOf(h crypto.Hash, input string) []byte {
	w := h.New()
	_, _ = io.WriteString(w, input)
	return w.Sum(make([]byte, 0, h.Size()))
}

// keyType names a key's type for an error.
func keyType(key any) string {
	switch key.(type) {
	case *rsa.PublicKey:
		return "an RSA key"
	case *ecdsa.PublicKey:
		return "an EC key"
	case ed25519.PublicKey:
		return "an Ed25519 key"
	case nil:
		return "missing"
	}
	return fmt.Sprintf("of type %T", key)
}
