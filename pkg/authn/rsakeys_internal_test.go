package authn

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"
	"sync"
	"testing"
)

// The oracle of these tests is crypto/rsa's VerifyPKCS1v15, which the
// prepared verification replaces.

// rawSignEM is the RSA private operation on an encoded block: a signature
// over any block at all, well-formed or not.
func rawSignEM(k *rsa.PrivateKey, em []byte) []byte {
	s := new(big.Int).Exp(new(big.Int).SetBytes(em), k.D, k.N)
	return s.FillBytes(make([]byte, k.Size()))
}

// honestEM is RFC 8017's encoding of digest, written out here from the
// standard's text rather than taken from the code under test.
func honestEM(size int, h crypto.Hash, digest []byte) []byte {
	oid := map[crypto.Hash]byte{crypto.SHA256: 1, crypto.SHA384: 2, crypto.SHA512: 3}[h]
	t := append([]byte{0x30, byte(17 + h.Size()), 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, oid, 0x05, 0x00, 0x04, byte(h.Size())}, digest...)
	em := make([]byte, size)
	em[1] = 1
	for i := 2; i < size-len(t)-1; i++ {
		em[i] = 0xff
	}
	copy(em[size-len(t):], t)
	return em
}

// TestPreparedRSAAgreesWithCryptoRSA: over keys of 1024 to 4096 bits and
// exponents 3 and 65537, SHA-256/384/512, honest signatures and blocks
// forged in every part of the encoding, the prepared verification accepts
// exactly what crypto/rsa accepts.
func TestPreparedRSAAgreesWithCryptoRSA(t *testing.T) {
	t.Parallel()
	var keys []*rsa.PrivateKey
	for _, bits := range []int{1024, 2048, 3072, 4096} {
		keys = append(keys, mustRSA(t, bits).(*rsa.PrivateKey))
	}
	keys = append(keys, rsaKeyWithExponent(t, 2048, 3))
	var prepared rsaKeys
	accepted, honest := 0, 0
	for ki, k := range keys {
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			d := h.New()
			d.Write([]byte("the signing input"))
			digest := d.Sum(nil)
			em := honestEM(k.Size(), h, digest)
			forge := func(f func(em []byte) []byte) []byte {
				return rawSignEM(k, f(append([]byte(nil), em...)))
			}
			d.Reset()
			d.Write([]byte("another input"))
			other := d.Sum(nil)
			cases := []struct {
				name   string
				digest []byte
				sig    []byte
			}{
				{"honest", digest, rawSignEM(k, em)},
				{"another digest", other, rawSignEM(k, em)},
				{"first byte not zero", digest, forge(func(b []byte) []byte { b[0] = 1; return b })},
				{"block type 2", digest, forge(func(b []byte) []byte { b[1] = 2; return b })},
				{"padding byte not 0xff", digest, forge(func(b []byte) []byte { b[5] = 0xfe; return b })},
				{"no zero separator", digest, forge(func(b []byte) []byte { b[len(b)-len(digest)-20] = 0xff; return b })},
				{"padding of 7 bytes, digest info moved up", digest, forge(func(b []byte) []byte {
					e := make([]byte, len(b))
					e[1] = 1
					for i := 2; i < 9; i++ {
						e[i] = 0xff
					}
					copy(e[10:], b[len(b)-len(digest)-19:])
					return e
				})},
				{"garbage after the digest (short padding)", digest, forge(func(b []byte) []byte {
					t := b[len(b)-len(digest)-19:]
					e := make([]byte, len(b))
					e[1] = 1
					for i := 2; i < 10; i++ {
						e[i] = 0xff
					}
					copy(e[11:], t)
					for i := 11 + len(t); i < len(e); i++ {
						e[i] = 0x42
					}
					return e
				})},
				{"wrong hash identifier", digest, forge(func(b []byte) []byte { b[len(b)-len(digest)-5] ^= 3; return b })},
				{"digest altered", digest, forge(func(b []byte) []byte { b[len(b)-1] ^= 1; return b })},
				{"signature altered", digest, func() []byte { s := rawSignEM(k, em); s[len(s)/3] ^= 0x10; return s }()},
				{"signature one byte short", digest, rawSignEM(k, em)[1:]},
				{"signature one byte long", digest, append([]byte{0}, rawSignEM(k, em)...)},
				{"signature equal to the modulus", digest, k.N.FillBytes(make([]byte, k.Size()))},
				{"signature zero", digest, make([]byte, k.Size())},
				{"signature one", digest, new(big.Int).SetInt64(1).FillBytes(make([]byte, k.Size()))},
			}
			for _, tc := range cases {
				ours := func() bool {
					pk, err := prepared.get(&k.PublicKey)
					return err == nil && pk.verifyPKCS1v15(h, tc.digest, tc.sig) == nil
				}()
				theirs := rsa.VerifyPKCS1v15(&k.PublicKey, h, tc.digest, tc.sig) == nil
				if ours != theirs {
					t.Errorf("key %d (%d bits, e=%d), %v, %s: prepared %v, crypto/rsa %v", ki, k.N.BitLen(), k.E, h, tc.name, ours, theirs)
				}
				if tc.name == "honest" {
					honest++
				}
				if ours {
					accepted++
				}
			}
		}
	}
	if accepted != honest {
		t.Errorf("%d accepted, want the %d honest signatures only", accepted, honest)
	}
}

// TestPreparedRSARefusesWhatCryptoRSARefuses: keys crypto/rsa will not
// verify with are refused, and a key changed in place after it was
// prepared is prepared again.
func TestPreparedRSARefusesWhatCryptoRSARefuses(t *testing.T) {
	t.Parallel()
	good := mustRSA(t, 2048).(*rsa.PrivateKey)
	digest := sha256.Sum256([]byte("x"))
	sig, err := rsa.SignPKCS1v15(nil, good, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pub  *rsa.PublicKey
	}{
		{"no modulus", &rsa.PublicKey{E: 65537}},
		{"even modulus", &rsa.PublicKey{N: new(big.Int).Add(good.N, big.NewInt(1)), E: 65537}},
		{"512-bit modulus", &rsa.PublicKey{N: new(big.Int).Rsh(good.N, 1536), E: 65537}},
		{"exponent 1", &rsa.PublicKey{N: good.N, E: 1}},
		{"even exponent", &rsa.PublicKey{N: good.N, E: 65536}},
		{"exponent over 2^31-1", &rsa.PublicKey{N: good.N, E: 1 << 33}},
	} {
		var prepared rsaKeys
		pk, err := prepared.get(tc.pub)
		ours := err == nil && pk.verifyPKCS1v15(crypto.SHA256, digest[:], sig) == nil
		if ours || rsa.VerifyPKCS1v15(tc.pub, crypto.SHA256, digest[:], sig) == nil {
			t.Errorf("%s: prepared accepts %v, want both refusing", tc.name, ours)
		}
		if err == nil {
			t.Errorf("%s: prepared the key", tc.name)
		}
	}

	var prepared rsaKeys
	pub := &rsa.PublicKey{N: new(big.Int).Set(good.N), E: good.E}
	if pk, err := prepared.get(pub); err != nil || pk.verifyPKCS1v15(crypto.SHA256, digest[:], sig) != nil {
		t.Fatalf("the good key: %v", err)
	}
	other := mustRSA(t, 2048).(*rsa.PrivateKey)
	pub.N.Set(other.N) // the same *rsa.PublicKey, now another key
	if pk, err := prepared.get(pub); err != nil || pk.verifyPKCS1v15(crypto.SHA256, digest[:], sig) == nil {
		t.Fatalf("a key changed in place still verifies the old key's signature (err %v)", err)
	}
}

// rsaKeyWithExponent generates a key with public exponent e (crypto/rsa
// always uses 65537).
func rsaKeyWithExponent(t *testing.T, bits, e int) *rsa.PrivateKey {
	t.Helper()
	E := big.NewInt(int64(e))
	for {
		p, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			t.Fatal(err)
		}
		q, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			t.Fatal(err)
		}
		one := big.NewInt(1)
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(E, phi)
		n := new(big.Int).Mul(p, q)
		if d == nil || p.Cmp(q) == 0 || n.BitLen() != bits {
			continue
		}
		return &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: e}, D: d, Primes: []*big.Int{p, q}}
	}
}

var fuzzRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	return k
})

// FuzzPreparedRSA: for any block signed with the private key, and for any
// signature bytes, the prepared verification agrees with crypto/rsa.
func FuzzPreparedRSA(f *testing.F) {
	k := fuzzRSAKey()
	digest := sha512.Sum384([]byte("x"))
	f.Add(honestEM(k.Size(), crypto.SHA384, digest[:]), false)
	f.Add(honestEM(k.Size(), crypto.SHA384, digest[:])[:64], true)
	var prepared rsaKeys
	f.Fuzz(func(t *testing.T, block []byte, asSignature bool) {
		sig := block
		if !asSignature {
			if len(block) > k.Size() {
				block = block[:k.Size()]
			}
			em := make([]byte, k.Size())
			copy(em[k.Size()-len(block):], block)
			sig = rawSignEM(k, em)
		}
		pk, err := prepared.get(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		ours := pk.verifyPKCS1v15(crypto.SHA384, digest[:], sig) == nil
		theirs := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA384, digest[:], sig) == nil
		if ours != theirs {
			t.Fatalf("block %x (as signature: %v): prepared %v, crypto/rsa %v", block, asSignature, ours, theirs)
		}
	})
}

// BenchmarkRSAVerify compares, on one RSA-2048 signature, crypto/rsa's
// verification (what every call paid before) with the prepared one.
func BenchmarkRSAVerify(b *testing.B) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("crypto/rsa", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prepared", func(b *testing.B) {
		var prepared rsaKeys
		b.ReportAllocs()
		for b.Loop() {
			pk, err := prepared.get(&k.PublicKey)
			if err != nil {
				b.Fatal(err)
			}
			if err := pk.verifyPKCS1v15(crypto.SHA256, digest[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}
