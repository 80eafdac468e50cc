package secondfactor

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// RecoveryCodeCount is how many recovery codes a user gets.
const RecoveryCodeCount = 10

// recoveryCodeBytes is the entropy of a recovery code: 80 bits. That is
// why the store keeps only a SHA-256 digest of each, without a slow hash:
// guessing one out of 2^80 by brute force is out of reach, with or
// without the digests, and the login limits bound online guessing.
const recoveryCodeBytes = 10

// MaxRecoveryCodeLen bounds what is accepted as a recovery code before
// normalising.
const MaxRecoveryCodeLen = 64

var recoveryEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewRecoveryCodes returns RecoveryCodeCount fresh codes, each 16 base32
// characters in four groups: "ABCD-EFGH-JKLM-NPQR".
func NewRecoveryCodes() []string {
	out := make([]string, RecoveryCodeCount)
	for i := range out {
		b := make([]byte, recoveryCodeBytes)
		_, _ = rand.Read(b) // never fails; see crypto/rand
		s := recoveryEncoding.EncodeToString(b)
		out[i] = s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
	}
	return out
}

// NormalizeRecoveryCode returns the canonical form of a typed recovery
// code (upper case, with its dashes), or false when it cannot be one.
// Codes are stored and compared in this form.
func NormalizeRecoveryCode(code string) (string, bool) {
	if len(code) > MaxRecoveryCodeLen {
		return "", false
	}
	c := strings.ToUpper(code)
	c = strings.NewReplacer("-", "", " ", "", "\t", "").Replace(c)
	if len(c) != 16 {
		return "", false
	}
	// Each character checked: base32 decoding would skip line breaks.
	for i := 0; i < len(c); i++ {
		if !(c[i] >= 'A' && c[i] <= 'Z' || c[i] >= '2' && c[i] <= '7') {
			return "", false
		}
	}
	return c[0:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:16], true
}
