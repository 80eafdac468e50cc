// Package seal encrypts secrets at rest under key-encryption keys that are
// kept out of the database: AES-256-GCM, with a format that names the key a
// value was sealed with, so the key can be rotated.
//
// A sealed value is ASCII text, so it fits TEXT and BLOB columns alike:
//
//	nsauth-sealed:v1:<key id>:<base64url(nonce || ciphertext || tag)>
//
// The key id is a truncated SHA-256 of the key under a label of its own: it
// tells keys apart and reveals nothing of them. The whole header and the
// caller's associated data (the row and column a value belongs to) are
// authenticated, so a sealed value moved to another row, or given another
// key id, does not open.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a key-encryption key: 32 bytes, for AES-256.
const KeySize = 32

// prefix starts every sealed value; version 1 is AES-256-GCM with a random
// 96-bit nonce.
const prefix = "nsauth-sealed:v1:"

// keyIDLen is the length of a key id in hex digits (64 bits).
const keyIDLen = 16

// Why a value does not open.
var (
	// ErrUnknownKey means the value was sealed with a key the keyring does
	// not hold.
	ErrUnknownKey = errors.New("sealed with a key that was not given")
	// ErrNotAuthentic means the value does not open under the key it names:
	// it was altered, or belongs to another row.
	ErrNotAuthentic = errors.New("sealed value does not authenticate")
	// ErrMalformed means the value is not in the sealed format.
	ErrMalformed = errors.New("not a sealed value")
)

// Key is one key-encryption key. It keeps no copy of the key's bytes
// beyond the cipher's own, and prints as its id only.
type Key struct {
	id   string
	aead cipher.AEAD
}

// NewKey returns the key made of raw, which must be [KeySize] bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("a secret key must be %d bytes, not %d", KeySize, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("nsauth seal key id\x00"), raw...))
	return &Key{id: hex.EncodeToString(sum[:])[:keyIDLen], aead: aead}, nil
}

// ParseKey reads a key written as text: 32 bytes in standard base64 (with or
// without padding; base64url is accepted too), surrounded by any white
// space, as `openssl rand -base64 32` and [GenerateKey] write it. Errors
// describe the text's shape and never repeat it.
func ParseKey(text string) (*Key, error) {
	t := strings.TrimSpace(text)
	if t == "" {
		return nil, errors.New("is empty: want 32 random bytes in base64 (make one with `nsauth keys generate-secret-key` or `openssl rand -base64 32`)")
	}
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(t); err == nil {
			break
		}
	}
	if err != nil {
		return nil, errors.New("is not base64: want 32 random bytes in base64 (make one with `nsauth keys generate-secret-key` or `openssl rand -base64 32`)")
	}
	if len(raw) != KeySize {
		return nil, fmt.Errorf("decodes to %d bytes, not %d: want 32 random bytes in base64 (make one with `nsauth keys generate-secret-key` or `openssl rand -base64 32`)", len(raw), KeySize)
	}
	return NewKey(raw)
}

// KeySeparator separates the keys of a list (see [ParseKeys]). Neither
// base64 alphabet has it, nor white space, so a list never splits a key.
const KeySeparator = ","

// ParseKeys reads a list of keys, newest first, as NSAUTH_SECRET_KEY and a
// key file hold them: keys separated by commas or line breaks, each as
// [ParseKey] reads it, with white space around each ignored. A list of one
// key is that key. Errors name a bad key by its position ("key 2 of 3"),
// never by its text; an empty place in the list, or a key listed twice,
// is an error too, as a sign of a list put together wrong.
func ParseKeys(text string) ([]*Key, error) {
	places := strings.Split(strings.ReplaceAll(strings.TrimSpace(text), "\n", KeySeparator), KeySeparator)
	if len(places) == 1 {
		k, err := ParseKey(text)
		if err != nil {
			return nil, err
		}
		return []*Key{k}, nil
	}
	keys := make([]*Key, 0, len(places))
	for i, place := range places {
		if strings.TrimSpace(place) == "" {
			return nil, fmt.Errorf("key %d of %d is empty: separate keys by one comma, newest first", i+1, len(places))
		}
		k, err := ParseKey(place)
		if err != nil {
			return nil, fmt.Errorf("key %d of %d %v", i+1, len(places), err)
		}
		for j, prev := range keys {
			if prev.id == k.id {
				return nil, fmt.Errorf("key %d of %d is key %d again: list each key once, newest first", i+1, len(places), j+1)
			}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// GenerateKey returns a new random key as [ParseKey] reads it: standard
// base64 of 32 bytes from crypto/rand, without a newline.
func GenerateKey() string {
	raw := make([]byte, KeySize)
	_, _ = rand.Read(raw) // never fails on supported platforms
	return base64.StdEncoding.EncodeToString(raw)
}

// ID is the key's id: 16 hex digits of a hash of the key, safe to show.
func (k *Key) ID() string { return k.id }

// String names the key by its id, so printing a Key never shows it.
func (k *Key) String() string { return "seal.Key(" + k.id + ")" }

// GoString is String, for %#v.
func (k *Key) GoString() string { return k.String() }

// Keyring holds the key that seals and the keys that may still open: the
// current one and those given during a rotation. It never changes: a
// process that learns of other keys makes another keyring.
type Keyring struct {
	current *Key
	byID    map[string]*Key
	// keys are current, then the others in the order given.
	keys []*Key
}

// NewKeyring returns a keyring that seals with current and opens values
// sealed with current or any of old. Nil old keys, and keys given twice,
// are skipped.
func NewKeyring(current *Key, old ...*Key) *Keyring {
	r := &Keyring{current: current, byID: map[string]*Key{current.id: current}, keys: []*Key{current}}
	for _, k := range old {
		if k != nil {
			if _, ok := r.byID[k.id]; !ok {
				r.byID[k.id] = k
				r.keys = append(r.keys, k)
			}
		}
	}
	return r
}

// CurrentID is the id of the key that seals.
func (r *Keyring) CurrentID() string { return r.current.id }

// IDs are the ids of the keys the keyring holds, the current one first.
func (r *Keyring) IDs() []string {
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.id
	}
	return ids
}

// Keys are the keys the keyring holds, the current one first.
func (r *Keyring) Keys() []*Key { return append([]*Key(nil), r.keys...) }

// Has reports whether the keyring holds the key with this id.
func (r *Keyring) Has(id string) bool {
	_, ok := r.byID[id]
	return ok
}

// Seal encrypts plaintext under the current key, binding it to
// associatedData: the same bytes must be given to [Keyring.Open].
func (r *Keyring) Seal(plaintext, associatedData []byte) []byte {
	return r.current.seal(plaintext, associatedData)
}

// SealWith is Seal under the keyring's key with this id rather than the
// current one: where several processes share sealed values, the key that
// seals is agreed among them, and may be older than this one's newest. It
// fails with a [*KeyError] when the keyring lacks the key.
func (r *Keyring) SealWith(id string, plaintext, associatedData []byte) ([]byte, error) {
	k, ok := r.byID[id]
	if !ok {
		return nil, &KeyError{ID: id}
	}
	return k.seal(plaintext, associatedData), nil
}

func (k *Key) seal(plaintext, associatedData []byte) []byte {
	header := prefix + k.id + ":"
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce)
	body := k.aead.Seal(nonce, nonce, plaintext, additional(header, associatedData))
	out := make([]byte, len(header)+base64.RawURLEncoding.EncodedLen(len(body)))
	copy(out, header)
	base64.RawURLEncoding.Encode(out[len(header):], body)
	return out
}

// Open decrypts a value made by Seal with any key of the keyring. Its
// errors wrap [ErrMalformed], [ErrUnknownKey] or [ErrNotAuthentic].
func (r *Keyring) Open(sealed, associatedData []byte) ([]byte, error) {
	id, encoded, err := split(sealed)
	if err != nil {
		return nil, err
	}
	k, ok := r.byID[id]
	if !ok {
		return nil, &KeyError{ID: id}
	}
	body, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil || len(body) < k.aead.NonceSize()+k.aead.Overhead() {
		return nil, ErrMalformed
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, body[:n], body[n:], additional(prefix+id+":", associatedData))
	if err != nil {
		return nil, ErrNotAuthentic
	}
	return plain, nil
}

// IsSealed reports whether v has the sealed format's header: values written
// before sealing existed (plaintext) do not.
func IsSealed(v []byte) bool { return strings.HasPrefix(string(v), prefix) }

// KeyID returns the id of the key v names, or "" when v is not sealed.
func KeyID(v []byte) string {
	id, _, err := split(v)
	if err != nil {
		return ""
	}
	return id
}

// KeyError is the error of [Keyring.Open] for a value sealed with a key the
// keyring lacks; it names the key by its id.
type KeyError struct {
	// ID is the id of the key the value was sealed with.
	ID string
}

// Error names the key id; an id reveals nothing of the key.
func (e *KeyError) Error() string { return "sealed with key id " + e.ID + ", which was not given" }

// Unwrap makes errors.Is(err, ErrUnknownKey) hold.
func (e *KeyError) Unwrap() error { return ErrUnknownKey }

func split(v []byte) (id, body string, err error) {
	s, ok := strings.CutPrefix(string(v), prefix)
	if !ok {
		return "", "", ErrMalformed
	}
	id, body, ok = strings.Cut(s, ":")
	if !ok || len(id) != keyIDLen || body == "" {
		return "", "", ErrMalformed
	}
	return id, body, nil
}

// additional is the AEAD's additional data: the header, then the caller's.
func additional(header string, associatedData []byte) []byte {
	ad := make([]byte, 0, len(header)+len(associatedData))
	ad = append(ad, header...)
	return append(ad, associatedData...)
}
