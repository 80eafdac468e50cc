package authn

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"filippo.io/bigmod"
)

// RS256, RS384 and RS512 signatures are checked with each key's modulus
// prepared once. crypto/rsa rebuilds the modulus's Montgomery form from
// the key on every verification, about a third of an RSA-2048 check; it
// offers no way to keep it. filippo.io/bigmod is the same arithmetic
// (crypto/rsa's own, published by its author) with the prepared modulus
// in the caller's hands. The check is RFC 8017 §8.2.2's: the signature,
// raised to the public exponent, must equal the expected encoding of the
// digest byte for byte, so nothing of the decoded block is parsed.

// rsaKeys prepares RSA public keys and keeps them, keyed by the key's
// address, which the verifier's key set keeps stable while it holds the
// key. It holds at most maxPreparedRSAKeys; beyond, it starts again.
type rsaKeys struct {
	mu   sync.Mutex
	keys map[*rsa.PublicKey]*preparedRSAKey
}

// maxPreparedRSAKeys bounds rsaKeys: a key set holds a few keys at a time,
// and a rotation replaces them.
const maxPreparedRSAKeys = 32

// preparedRSAKey is an RSA public key ready for verification.
type preparedRSAKey struct {
	n    *big.Int // a copy of the modulus it was prepared from
	e    int
	size int // the modulus's length in bytes
	mod  *bigmod.Modulus
}

// get returns pub prepared, preparing it on first use or when it changed
// since (a key is never trusted to be immutable).
func (c *rsaKeys) get(pub *rsa.PublicKey) (*preparedRSAKey, error) {
	c.mu.Lock()
	k, ok := c.keys[pub]
	c.mu.Unlock()
	if ok && pub.E == k.e && pub.N != nil && pub.N.Cmp(k.n) == 0 {
		return k, nil
	}
	k, err := prepareRSAKey(pub)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.keys == nil || len(c.keys) >= maxPreparedRSAKeys {
		c.keys = make(map[*rsa.PublicKey]*preparedRSAKey)
	}
	c.keys[pub] = k
	c.mu.Unlock()
	return k, nil
}

// prepareRSAKey refuses the keys crypto/rsa refuses to verify with (by
// default): no modulus, an even modulus or one under 1024 bits, and a
// public exponent that is under 2, even, or over 2³¹−1.
func prepareRSAKey(pub *rsa.PublicKey) (*preparedRSAKey, error) {
	switch {
	case pub.N == nil || pub.N.Sign() <= 0:
		return nil, errors.New("RSA key has no modulus")
	case pub.N.BitLen() < 1024:
		return nil, fmt.Errorf("RSA key of %d bits is too short (at least 1024)", pub.N.BitLen())
	case pub.N.Bit(0) == 0:
		return nil, errors.New("RSA key's modulus is even")
	case pub.E < 2 || pub.E&1 == 0 || pub.E > 1<<31-1:
		return nil, errors.New("RSA key's public exponent is unacceptable")
	}
	mod, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil, fmt.Errorf("RSA key's modulus: %w", err)
	}
	return &preparedRSAKey{n: new(big.Int).Set(pub.N), e: pub.E, size: mod.Size(), mod: mod}, nil
}

// verifyPKCS1v15 checks an RSASSA-PKCS1-v1_5 signature over digest, a
// digest by h (SHA-256, SHA-384 or SHA-512).
func (k *preparedRSAKey) verifyPKCS1v15(h crypto.Hash, digest, sig []byte) error {
	prefix, ok := digestInfoPrefixes[h]
	if !ok || len(digest) != h.Size() {
		return errors.New("unsupported digest")
	}
	if len(sig) != k.size {
		return fmt.Errorf("RSA signature is %d bytes, want %d", len(sig), k.size)
	}
	s, err := bigmod.NewNat().SetBytes(sig, k.mod)
	if err != nil {
		return errors.New("RSA signature is not below the modulus")
	}
	em := bigmod.NewNat().ExpShortVarTime(s, uint(k.e), k.mod).Bytes(k.mod)
	// EM = 0x00 || 0x01 || PS (0xff…, at least 8) || 0x00 || DigestInfo
	t := len(prefix) + len(digest)
	if len(em) < t+11 {
		return errors.New("RSA key is too short for the digest")
	}
	ps := em[2 : len(em)-t-1]
	if em[0] != 0 || em[1] != 1 || em[len(em)-t-1] != 0 ||
		bytes.Count(ps, []byte{0xff}) != len(ps) ||
		!bytes.Equal(em[len(em)-t:len(em)-len(digest)], prefix) ||
		!bytes.Equal(em[len(em)-len(digest):], digest) {
		return errors.New("RSA signature does not verify")
	}
	return nil
}

// digestInfoPrefixes are the DER encodings of RFC 8017's DigestInfo for
// each digest, up to the digest's bytes, built from the algorithms'
// object identifiers (NIST's, with NULL parameters, as §9.2 writes them).
var digestInfoPrefixes = func() map[crypto.Hash][]byte {
	type algorithmIdentifier struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue
	}
	type digestInfo struct {
		DigestAlgorithm algorithmIdentifier
		Digest          []byte
	}
	out := make(map[crypto.Hash][]byte)
	for h, last := range map[crypto.Hash]int{crypto.SHA256: 1, crypto.SHA384: 2, crypto.SHA512: 3} {
		der, err := asn1.Marshal(digestInfo{
			DigestAlgorithm: algorithmIdentifier{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, last}, asn1.NullRawValue},
			Digest:          make([]byte, h.Size()),
		})
		if err != nil {
			panic(err)
		}
		out[h] = der[:len(der)-h.Size()]
	}
	return out
}()
