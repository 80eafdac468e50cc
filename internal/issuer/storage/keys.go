package storage

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/store"
)

// Key handling constants.
const (
	// keyCheckInterval is how long a process trusts its cached keys before
	// reading them again (and deciding whether a new key is due).
	keyCheckInterval = time.Minute
	// maxPrepublish is how long before it signs a new key is published. It
	// must exceed every verifier's JWKS cache age (nsauth's own: 10 min)
	// plus keyCheckInterval, so every replica and verifier has the key by
	// the time tokens signed with it appear.
	maxPrepublish = 15 * time.Minute
	// keyExpirySlack is added to the longest token lifetime before a retired
	// key leaves the JWKS, to cover clock skew between servers and
	// verifiers.
	keyExpirySlack = 2 * time.Minute
	rsaKeyBits     = 2048
)

// signingKey is a loaded key pair. It implements op.SigningKey and op.Key.
type signingKey struct {
	id        string
	priv      *rsa.PrivateKey
	activates time.Time
	expires   time.Time // zero while current
}

func (k *signingKey) ID() string                                  { return k.id }
func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Algorithm() jose.SignatureAlgorithm          { return jose.RS256 }
func (k *signingKey) Use() string                                 { return "sig" }

// Key returns the private key as a signing key, and the public key as a
// published key; the library calls the same method for both, so the two
// roles get different types below.
func (k *signingKey) Key() any { return k.priv }

// publicKey is a signingKey as published in the JWKS: its Key is public.
type publicKey struct{ *signingKey }

func (k publicKey) Key() any { return &k.priv.PublicKey }

// Keys caches the signing keys and rotates them on schedule. Any
// number of processes may run one against a shared store: the decision to
// add a key is taken under the store's lock, after rereading the keys.
type Keys struct {
	st         *store.Store
	now        func() time.Time
	rotation   time.Duration
	prepublish time.Duration
	lifetime   time.Duration // how long a retired key must stay published
	log        *slog.Logger
	events     *events.Recorder

	mu      sync.Mutex
	keys    []*signingKey // sorted by activation
	checked time.Time
}

// NewKeys returns the signing keys of st: a new one every rotation, each
// kept published while tokens of tokenTTL signed with it may be in use.
// Each key added is one event of rec (its audit row and its log line).
func NewKeys(st *store.Store, now func() time.Time, rotation, tokenTTL time.Duration, log *slog.Logger, rec *events.Recorder) *Keys {
	return &Keys{
		st:         st,
		now:        now,
		rotation:   rotation,
		prepublish: min(maxPrepublish, rotation/2),
		lifetime:   tokenTTL + keyExpirySlack,
		log:        log,
		events:     rec,
	}
}

// Refresh rereads the keys from the store when the cache is older than
// keyCheckInterval (or always, with force), adding a key first when one is
// due.
func (m *Keys) Refresh(ctx context.Context, force bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if !force && !m.checked.IsZero() && now.Sub(m.checked) < keyCheckInterval && !now.Before(m.checked) {
		return nil
	}
	if m.rotationDue(m.keys, now) {
		// decide runs in the store's transaction, which may not commit:
		// the event is recorded once the new key is stored, by the one
		// replica that added it.
		var added *store.SigningKey
		var first bool
		if err := m.st.UpdateSigningKeys(ctx, func(keys []store.SigningKey) (store.KeyChange, error) {
			c, err := m.decide(keys)
			added, first = c.Add, len(keys) == 0
			return c, err
		}); err != nil {
			return err
		}
		if added != nil {
			reason := "scheduled"
			if first {
				reason = "first_key"
			}
			if err := m.events.System(ctx, audit.Event{Type: audit.SigningKeyRotated, Target: added.ID, Reason: reason}); err != nil {
				return err
			}
		}
	}
	stored, err := m.st.SigningKeys(ctx)
	if err != nil {
		return err
	}
	keys := make([]*signingKey, 0, len(stored))
	for _, sk := range stored {
		if sk.Algorithm != string(jose.RS256) {
			m.log.WarnContext(ctx, "ignoring a signing key with an unsupported algorithm", "kid", sk.ID, "alg", sk.Algorithm)
			continue
		}
		parsed, err := x509.ParsePKCS8PrivateKey(sk.PrivateKey)
		if err != nil {
			m.log.WarnContext(ctx, "ignoring an unreadable signing key", "kid", sk.ID, "error", err)
			continue
		}
		priv, ok := parsed.(*rsa.PrivateKey)
		if !ok {
			m.log.WarnContext(ctx, "ignoring a signing key that is not RSA", "kid", sk.ID)
			continue
		}
		keys = append(keys, &signingKey{id: sk.ID, priv: priv, activates: sk.ActivatesAt, expires: sk.ExpiresAt})
	}
	if len(keys) == 0 {
		return errors.New("no usable signing key")
	}
	m.keys = keys
	m.checked = now
	return nil
}

// rotationDue reports, from a possibly stale view, whether a new key may be
// needed; decide makes the real decision under the lock.
func (m *Keys) rotationDue(keys []*signingKey, now time.Time) bool {
	if len(keys) == 0 {
		return true
	}
	latest := keys[len(keys)-1]
	return !latest.activates.After(now) && !now.Before(latest.activates.Add(m.rotation-m.prepublish))
}

// decide runs under the store's signing-key lock with the current keys.
// It adds a key when there is none, or when the newest one has signed for
// (rotation - prepublish) and no successor is waiting. The new key activates
// after prepublish (immediately on first start), and every key it
// supersedes is scheduled to leave the JWKS once all tokens it can have
// signed have expired.
func (m *Keys) decide(keys []store.SigningKey) (store.KeyChange, error) {
	now := m.now()
	activates := now
	if len(keys) > 0 {
		latest := keys[len(keys)-1]
		if latest.ActivatesAt.After(now) || now.Before(latest.ActivatesAt.Add(m.rotation-m.prepublish)) {
			return store.KeyChange{}, nil
		}
		activates = now.Add(m.prepublish)
	}
	priv, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
	if err != nil {
		return store.KeyChange{}, fmt.Errorf("generating a signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.KeyChange{}, fmt.Errorf("encoding a signing key: %w", err)
	}
	change := store.KeyChange{
		Add:    &store.SigningKey{ID: store.NewID(), Algorithm: string(jose.RS256), PrivateKey: der, ActivatesAt: activates},
		Expire: map[string]time.Time{},
	}
	for _, k := range keys {
		if k.ExpiresAt.IsZero() {
			change.Expire[k.ID] = activates.Add(m.lifetime)
		}
	}
	return change, nil
}

// signing returns the key that signs at this moment: the most recently
// activated one.
func (m *Keys) signing(ctx context.Context) (*signingKey, error) {
	if err := m.Refresh(ctx, false); err != nil {
		m.log.WarnContext(ctx, "refreshing signing keys failed; using the cached ones", "error", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var current *signingKey
	for _, k := range m.keys {
		if !k.activates.After(now) && (k.expires.IsZero() || k.expires.After(now)) {
			current = k
		}
	}
	if current == nil {
		return nil, errors.New("no signing key is active")
	}
	return current, nil
}

// published returns the keys of the JWKS: every unexpired key, including
// one that is not signing yet.
func (m *Keys) published(ctx context.Context) ([]op.Key, error) {
	if err := m.Refresh(ctx, false); err != nil {
		m.log.WarnContext(ctx, "refreshing signing keys failed; using the cached ones", "error", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	out := make([]op.Key, 0, len(m.keys))
	for _, k := range m.keys {
		if k.expires.IsZero() || k.expires.After(now) {
			out = append(out, publicKey{k})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no published key")
	}
	return out, nil
}
