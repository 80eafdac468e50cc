package issuer

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/issuer/authflow"
	"github.com/nsauth/nsauth/internal/issuer/storage"
	"github.com/nsauth/nsauth/internal/store"
)

// Pending auth requests are not stored. The authorize endpoint seals the
// validated request with AES-256-GCM and hands the sealed blob to the
// browser as the login page's authRequestID; the login page opens it. So
// an authorize request that is never followed by a successful login costs
// no storage at all, however many of them arrive. A request is written to
// the store only when a user has logged in for it, under the random ID
// sealed inside, by one INSERT that fails when that ID was completed
// before: each request completes once, across replicas too.
const (
	// maxAuthRequestIDLen bounds a sealed auth request, base64url-encoded.
	// Honest requests seal to a few hundred characters; one that would exceed
	// this is refused at the authorize endpoint ("the request is too
	// large"). Login URLs and forms stay far below what browsers and our
	// servers accept.
	maxAuthRequestIDLen = authflow.MaxAuthRequestIDLen
	// authRequestPurpose is the sealed request's additional data: a blob
	// sealed for any other purpose, under the same key, never opens as an
	// auth request. Change it when the encoding changes.
	authRequestPurpose = "nsauth auth request v2"
	// authRequestKeyName is the instance value holding the sealing key.
	authRequestKeyName = "auth_request_key"
	// authRequestIDBytes is the size of the random ID sealed in a request.
	authRequestIDBytes = 16
	// maxSealedMaxAge bounds a sealed max_age, so its seconds convert to a
	// time.Duration without overflow.
	maxSealedMaxAge = 100 * 365 * 24 * time.Hour
)

// Why a request does not seal, or a sealed one does not open.
var (
	errRequestExpired   = authflow.ErrRequestExpired
	errRequestMalformed = errors.New("the auth request is not one we sealed")
	errRequestTooLarge  = storage.ErrRequestTooLarge
)

// authRequestKey returns the key that seals pending auth requests: 32
// random bytes made at first start and shared by every replica through the
// store, sealed there under the secret key (see [SecretValue]).
func authRequestKey(ctx context.Context, st *store.Store) ([]byte, error) {
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh)
	v, err := st.EnsureSecret(ctx, authRequestKeyName, base64.RawURLEncoding.EncodeToString(fresh))
	if err != nil {
		return nil, err
	}
	key, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(key) != 32 {
		return nil, errors.New("the stored auth request key is not 32 bytes of base64url")
	}
	return key, nil
}

// requestSealer seals and opens pending auth requests.
type requestSealer struct {
	aead cipher.AEAD
	now  func() time.Time
}

func newRequestSealer(key []byte, now func() time.Time) (*requestSealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("auth request key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("auth request key: %w", err)
	}
	return &requestSealer{aead: aead, now: now}, nil
}

// seal gives r a fresh random ID and an expiry AuthRequestTTL from now,
// and returns it sealed, base64url-encoded: nonce, then ciphertext and tag.
// A request that would seal to more than maxAuthRequestIDLen characters
// fails with errRequestTooLarge.
func (s *requestSealer) seal(r *store.AuthRequest) (string, error) {
	id := make([]byte, authRequestIDBytes)
	_, _ = rand.Read(id)
	r.ID = base64.RawURLEncoding.EncodeToString(id)
	r.ExpiresAt = time.UnixMilli(s.now().Add(AuthRequestTTL).UnixMilli())
	r.CreatedAt = r.ExpiresAt.Add(-AuthRequestTTL)
	plain := encodeAuthRequest(id, r)
	n := s.aead.NonceSize() + len(plain) + s.aead.Overhead()
	if base64.RawURLEncoding.EncodedLen(n) > maxAuthRequestIDLen {
		return "", errRequestTooLarge
	}
	out := make([]byte, s.aead.NonceSize(), n)
	_, _ = rand.Read(out)
	out = s.aead.Seal(out, out, plain, []byte(authRequestPurpose))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// open returns the request sealed in blob. It fails with
// errRequestMalformed for anything seal did not produce under this key and
// purpose, and with errRequestExpired once the request's time is up.
func (s *requestSealer) open(blob string) (*store.AuthRequest, error) {
	if len(blob) > maxAuthRequestIDLen {
		return nil, errRequestMalformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(blob)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return nil, errRequestMalformed
	}
	ns := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:ns], raw[ns:], []byte(authRequestPurpose))
	if err != nil {
		return nil, errRequestMalformed
	}
	r, err := decodeAuthRequest(plain)
	if err != nil {
		// Authentic but unreadable: only a bug sealing it could do this.
		return nil, errRequestMalformed
	}
	if !s.now().Before(r.ExpiresAt) {
		return nil, errRequestExpired
	}
	r.CreatedAt = r.ExpiresAt.Add(-AuthRequestTTL)
	return r, nil
}

// encodeAuthRequest is the sealed plaintext: the expiry (Unix
// milliseconds, uvarint), the raw ID, then each string field and list as
// uvarint-length-prefixed bytes, in a fixed order, and last max_age: 0 when
// absent, else 1 + its seconds (uvarint).
func encodeAuthRequest(id []byte, r *store.AuthRequest) []byte {
	b := make([]byte, 0, 128+len(r.ClientID)+len(r.RedirectURI)+len(r.State)+len(r.Nonce)+len(r.CodeChallenge)+len(r.LoginHint))
	b = binary.AppendUvarint(b, uint64(r.ExpiresAt.UnixMilli()))
	b = append(b, id...)
	for _, f := range []string{r.ClientID, r.RedirectURI, r.State, r.Nonce, r.ResponseType, r.ResponseMode,
		r.CodeChallenge, r.CodeChallengeMethod, r.LoginHint} {
		b = appendString(b, f)
	}
	for _, list := range [][]string{r.Scopes, r.Prompt, r.Resources} {
		b = binary.AppendUvarint(b, uint64(len(list)))
		for _, v := range list {
			b = appendString(b, v)
		}
	}
	var maxAge uint64
	if r.HasMaxAge {
		maxAge = 1 + uint64(max(0, r.MaxAge/time.Second))
	}
	return binary.AppendUvarint(b, maxAge)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func decodeAuthRequest(b []byte) (*store.AuthRequest, error) {
	d := decoder{b: b}
	exp := d.uvarint()
	id := d.bytes(authRequestIDBytes)
	r := &store.AuthRequest{ExpiresAt: time.UnixMilli(int64(min(exp, 1<<62)))}
	for _, f := range []*string{&r.ClientID, &r.RedirectURI, &r.State, &r.Nonce, &r.ResponseType, &r.ResponseMode,
		&r.CodeChallenge, &r.CodeChallengeMethod, &r.LoginHint} {
		*f = d.string()
	}
	for _, list := range []*[]string{&r.Scopes, &r.Prompt, &r.Resources} {
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			return nil, errRequestMalformed
		}
		for range n {
			*list = append(*list, d.string())
		}
	}
	if maxAge := d.uvarint(); maxAge > 0 {
		if maxAge > uint64(maxSealedMaxAge/time.Second)+1 {
			return nil, errRequestMalformed
		}
		r.HasMaxAge, r.MaxAge = true, time.Duration(maxAge-1)*time.Second
	}
	if d.bad || len(d.b) != 0 {
		return nil, errRequestMalformed
	}
	r.ID = base64.RawURLEncoding.EncodeToString(id)
	return r, nil
}

// decoder reads what encodeAuthRequest wrote; the first short read marks
// it bad, and every later read returns zero values.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if d.bad || n > len(d.b) {
		d.bad = true
		d.b = nil
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.bad = true
		d.b = nil
		return ""
	}
	return string(d.bytes(int(n)))
}

// Seal and Open are seal and open as storage.Sealer: the storage seals
// the auth requests the library validated and opens them again.
func (s *requestSealer) Seal(r *store.AuthRequest) (string, error) { return s.seal(r) }

// Open is open, for storage.Sealer.
func (s *requestSealer) Open(blob string) (*store.AuthRequest, error) { return s.open(blob) }
