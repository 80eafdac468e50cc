// Package password hashes and checks account passwords with argon2id
// (RFC 9106), and generates strong random ones.
//
// Hashes are PHC strings ($argon2id$v=19$m=…,t=…,p=…$salt$hash) so the
// parameters travel with each hash and can be raised later without
// invalidating stored passwords. A password is never stored, logged or
// returned; only its hash leaves this package.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	// Memory in KiB.
	Memory uint32
	// Time is the number of passes.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
}

// DefaultParams follow the OWASP password storage recommendation for
// argon2id (19 MiB, 2 passes, 1 lane): strong enough, and cheap enough that a
// small server survives a burst of logins.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// Limits on what is accepted as a password. The upper bound keeps hashing
// cost independent of attacker-chosen input sizes.
const (
	MinLength = 8
	MaxLength = 1024
)

const (
	saltLen = 16
	keyLen  = 32
)

// ErrMalformedHash means a stored hash is not an argon2id PHC string this
// package can read.
var ErrMalformedHash = errors.New("password: malformed hash")

// Validate reports why pw is not acceptable as a new password, or nil.
// The error never contains the password.
func Validate(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case !utf8.ValidString(pw):
		return errors.New("password must be valid UTF-8")
	case n < MinLength:
		return fmt.Errorf("password must be at least %d characters long", MinLength)
	case len(pw) > MaxLength:
		return fmt.Errorf("password must be at most %d bytes long", MaxLength)
	}
	return nil
}

// Hash returns the argon2id hash of pw with DefaultParams.
func Hash(pw string) (string, error) {
	return HashWithParams(pw, DefaultParams)
}

// HashWithParams returns the argon2id hash of pw with p.
func HashWithParams(pw string, p Params) (string, error) {
	if len(pw) > MaxLength {
		return "", fmt.Errorf("password must be at most %d bytes long", MaxLength)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: reading random salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pw matches encoded, in constant time with respect
// to the password. It returns ErrMalformedHash for an unreadable hash.
func Verify(pw, encoded string) (bool, error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, err
	}
	if len(pw) > MaxLength {
		// Still spend the time, so length does not become an oracle.
		_ = argon2.IDKey(nil, salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
		return false, nil
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash is verified against when an account does not exist, so that a
// login for an unknown user costs as much as one for a known user. It is
// the hash of a throwaway string, with DefaultParams.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$HMdblZ2P9Hgugo4eb5G9/A$7nJMdbTI8l0xouNnS89aCk9qW7Jhq3ROK1eRG1eY2a8"

// Burn spends the time of one verification and reports nothing. Call it
// when there is no hash to check against, so response times do not reveal
// whether an account exists.
func Burn(pw string) {
	_, _ = Verify(pw, dummyHash)
}

// Generate returns a random password of n characters from an alphabet
// without look-alike characters (about 5.7 bits each; 24 characters give
// over 130 bits).
func Generate(n int) (string, error) {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	buf := make([]byte, n)
	out := make([]byte, n)
	limit := byte(256 - 256%len(alphabet)) // rejection sampling keeps it uniform
	for i := 0; i < n; {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("password: reading random bytes: %w", err)
		}
		for _, b := range buf {
			if b >= limit {
				continue
			}
			out[i] = alphabet[int(b)%len(alphabet)]
			i++
			if i == n {
				break
			}
		}
	}
	return string(out), nil
}

func decode(encoded string) (Params, []byte, []byte, error) {
	var p Params
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, ErrMalformedHash
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, ErrMalformedHash
	}
	var m, t, threads uint64
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, nil, nil, ErrMalformedHash
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, nil, nil, ErrMalformedHash
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			threads = n
		default:
			return p, nil, nil, ErrMalformedHash
		}
	}
	// Bounds stop a tampered hash from making verification exhaust memory.
	if m < 8 || m > 1<<21 || t < 1 || t > 16 || threads < 1 || threads > 16 {
		return p, nil, nil, ErrMalformedHash
	}
	b64 := base64.RawStdEncoding.Strict()
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, nil, nil, ErrMalformedHash
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, ErrMalformedHash
	}
	return Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(threads)}, salt, key, nil
}
