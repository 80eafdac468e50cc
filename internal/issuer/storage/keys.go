package storage

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/config"
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

// SigningAlgorithms are the algorithms the provider can sign with, the
// default first: those of NSAUTH_SIGNING_ALGORITHM. Each key is of one
// algorithm; a key of any of them is read whatever the configured one is,
// so that tokens signed before a change of algorithm verify until they
// expire.
var SigningAlgorithms = func() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(config.BuiltinSigningAlgorithms))
	for i, a := range config.BuiltinSigningAlgorithms {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}()

// NewPrivateKey generates a key for alg, as the provider makes its signing
// keys (the bench compares the token endpoint with signing by one).
func NewPrivateKey(alg jose.SignatureAlgorithm) (crypto.Signer, error) {
	switch alg {
	case jose.RS256:
		return rsa.GenerateKey(rand.Reader, rsaKeyBits)
	case jose.ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}

// parsePrivateKey reads a stored key (PKCS #8) and checks that its type is
// the one its algorithm needs.
func parsePrivateKey(alg jose.SignatureAlgorithm, der []byte) (crypto.Signer, error) {
	if !slices.Contains(SigningAlgorithms, alg) {
		return nil, fmt.Errorf("unsupported algorithm %q", alg)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	switch k := parsed.(type) {
	case *rsa.PrivateKey:
		if alg == jose.RS256 {
			return k, nil
		}
	case *ecdsa.PrivateKey:
		if alg == jose.ES256 && k.Curve == elliptic.P256() {
			return k, nil
		}
	case ed25519.PrivateKey:
		if alg == jose.EdDSA {
			return k, nil
		}
	}
	return nil, fmt.Errorf("a %T is not a key for %s", parsed, alg)
}

// signingKey is a loaded key pair. It implements op.SigningKey and op.Key.
type signingKey struct {
	id        string
	alg       jose.SignatureAlgorithm
	priv      crypto.Signer
	activates time.Time
	expires   time.Time // zero while current
}

func (k *signingKey) ID() string                                  { return k.id }
func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *signingKey) Algorithm() jose.SignatureAlgorithm          { return k.alg }
func (k *signingKey) Use() string                                 { return "sig" }

// Key returns the private key as a signing key, and the public key as a
// published key; the library calls the same method for both, so the two
// roles get different types below.
func (k *signingKey) Key() any { return k.priv }

// publishedAt reports whether k is in the JWKS at now: until it expires
// (a current key has no expiry), including before it signs.
func (k *signingKey) publishedAt(now time.Time) bool {
	return k.expires.IsZero() || k.expires.After(now)
}

// publicKey is a signingKey as published in the JWKS: its Key is public.
type publicKey struct{ *signingKey }

func (k publicKey) Key() any { return k.priv.Public() }

// Keys caches the signing keys and rotates them on schedule. Any
// number of processes may run one against a shared store: the decision to
// add a key is taken under the store's lock, after rereading the keys.
type Keys struct {
	st         *store.Store
	alg        jose.SignatureAlgorithm // what new keys are
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

// NewKeys returns the signing keys of st: a new one of alg (one of
// [SigningAlgorithms]) every rotation, and one as soon as the newest key is
// of another algorithm; each kept published while tokens of tokenTTL
// signed with it may be in use. Each key added is one event of rec (its
// audit row and its log line).
func NewKeys(st *store.Store, alg jose.SignatureAlgorithm, now func() time.Time, rotation, tokenTTL time.Duration, log *slog.Logger, rec *events.Recorder) (*Keys, error) {
	if !slices.Contains(SigningAlgorithms, alg) {
		return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	return &Keys{
		st:         st,
		alg:        alg,
		now:        now,
		rotation:   rotation,
		prepublish: min(maxPrepublish, rotation/2),
		lifetime:   tokenTTL + keyExpirySlack,
		log:        log,
		events:     rec,
	}, nil
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
		var reason string
		if err := m.st.UpdateSigningKeys(ctx, func(keys []store.SigningKey) (store.KeyChange, error) {
			c, why, err := m.decide(keys)
			added, reason = c.Add, why
			return c, err
		}); err != nil {
			return err
		}
		if added != nil {
			if reason == reasonAlgorithm {
				m.log.WarnContext(ctx, "the signing algorithm changed: a key of the new one is published now and signs from its activation; "+
					"the old keys stay published until their tokens expire. Replicas that disagree on NSAUTH_SIGNING_ALGORITHM replace each other's keys",
					"kid", added.ID, "algorithm", added.Algorithm, "activates", added.ActivatesAt)
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
		alg := jose.SignatureAlgorithm(sk.Algorithm)
		priv, err := parsePrivateKey(alg, sk.PrivateKey)
		if err != nil {
			m.log.WarnContext(ctx, "ignoring an unusable signing key", "kid", sk.ID, "alg", sk.Algorithm, "error", err)
			continue
		}
		keys = append(keys, &signingKey{id: sk.ID, alg: alg, priv: priv, activates: sk.ActivatesAt, expires: sk.ExpiresAt})
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
	return m.due(latest.activates, latest.alg, now) != ""
}

// Why a key is added: the audit event's reason.
const (
	reasonFirst     = "first_key"
	reasonScheduled = "scheduled"
	reasonAlgorithm = "algorithm_changed"
)

// due is the one rule for adding a key after the newest one, which
// activates at activates and is of alg: none while it is waiting to sign
// (a successor is already published); else one when it is of another
// algorithm than the configured one, or has signed for (rotation -
// prepublish). It returns why, or "".
func (m *Keys) due(activates time.Time, alg jose.SignatureAlgorithm, now time.Time) string {
	switch {
	case activates.After(now):
		return ""
	case alg != m.alg:
		return reasonAlgorithm
	case !now.Before(activates.Add(m.rotation - m.prepublish)):
		return reasonScheduled
	}
	return ""
}

// decide runs under the store's signing-key lock with the current keys.
// It adds a key when there is none, or when [Keys.due] says one is. The
// new key activates after prepublish (immediately on first start), so
// that every verifier has it before it signs, and every key it supersedes
// is scheduled to leave the JWKS once all tokens it can have signed have
// expired. It returns the reason of the key added.
func (m *Keys) decide(keys []store.SigningKey) (store.KeyChange, string, error) {
	now := m.now()
	activates, reason := now, reasonFirst
	if len(keys) > 0 {
		latest := keys[len(keys)-1]
		if reason = m.due(latest.ActivatesAt, jose.SignatureAlgorithm(latest.Algorithm), now); reason == "" {
			return store.KeyChange{}, "", nil
		}
		activates = now.Add(m.prepublish)
	}
	priv, err := NewPrivateKey(m.alg)
	if err != nil {
		return store.KeyChange{}, "", fmt.Errorf("generating a signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.KeyChange{}, "", fmt.Errorf("encoding a signing key: %w", err)
	}
	change := store.KeyChange{
		Add:    &store.SigningKey{ID: store.NewID(), Algorithm: string(m.alg), PrivateKey: der, ActivatesAt: activates},
		Expire: map[string]time.Time{},
	}
	for _, k := range keys {
		if k.ExpiresAt.IsZero() {
			change.Expire[k.ID] = activates.Add(m.lifetime)
		}
	}
	return change, reason, nil
}

// signing returns the key that signs at this moment: the most recently
// view refreshes the keys (keeping the cached ones when that fails) and
// returns them, sorted by activation, with the time they are judged at.
// The slice is shared: Refresh replaces m.keys, never changes it.
func (m *Keys) view(ctx context.Context) ([]*signingKey, time.Time) {
	if err := m.Refresh(ctx, false); err != nil {
		m.log.WarnContext(ctx, "refreshing signing keys failed; using the cached ones", "error", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys, m.now()
}

// signing returns the key that signs at this moment: the most recently
// activated one.
func (m *Keys) signing(ctx context.Context) (*signingKey, error) {
	return signingAt(m.view(ctx))
}

func signingAt(keys []*signingKey, now time.Time) (*signingKey, error) {
	var current *signingKey
	for _, k := range keys {
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
	return publishedAt(m.view(ctx))
}

func publishedAt(keys []*signingKey, now time.Time) ([]op.Key, error) {
	out := make([]op.Key, 0, len(keys))
	for _, k := range keys {
		if k.publishedAt(now) {
			out = append(out, publicKey{k})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no published key")
	}
	return out, nil
}

// Lookup returns the published key whose id is kid, public, as
// pkg/authn's KeySet: what the provider's own checks of its tokens
// (introspection) verify with, the keys its JWKS serves, read in process.
// An empty kid selects the only published key, when there is one. The
// key it returns is the same value while the keys are cached, so a
// verifier may keep it prepared.
func (m *Keys) Lookup(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	keys, now := m.view(ctx)
	var found *signingKey
	n := 0
	for _, k := range keys {
		if !k.publishedAt(now) {
			continue
		}
		n++
		if k.id == kid || kid == "" {
			found = k
		}
	}
	if found == nil || (kid == "" && n != 1) {
		return nil, errors.New("no published key with that id")
	}
	return &jose.JSONWebKey{Key: found.priv.Public(), KeyID: found.id, Algorithm: string(found.alg), Use: "sig"}, nil
}

// algorithms returns the algorithms of the published keys, without
// repeats: the signing key's first, then the others newest first. It
// reads the keys once for both.
func (m *Keys) algorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	keys, now := m.view(ctx)
	current, err := signingAt(keys, now)
	if err != nil {
		return nil, err
	}
	published, err := publishedAt(keys, now)
	if err != nil {
		return nil, err
	}
	out := []jose.SignatureAlgorithm{current.alg}
	for _, k := range slices.Backward(published) {
		if alg := k.(publicKey).alg; !slices.Contains(out, alg) {
			out = append(out, alg)
		}
	}
	return out, nil
}
