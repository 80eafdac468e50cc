package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// errUnknownKey reports a token whose key is not in the key set.
var errUnknownKey = errors.New("no key with that id")

// KeySet finds the public key that verifies a token.
type KeySet interface {
	// Lookup returns the key whose `kid` is kid. An empty kid selects the set's
	// only key, when it has exactly one. It returns an error wrapping
	// [ErrUnavailable] when it holds no keys at all and cannot fetch them,
	// and another error when the key is simply not there.
	Lookup(ctx context.Context, kid string) (*jose.JSONWebKey, error)
}

// cacheableKeySet is implemented by key sets that can tell when their keys
// were replaced and how long they may be trusted without a refetch; a
// verifier caches results only for those, and never beyond either bound.
type cacheableKeySet interface {
	Generation() uint64
	FreshUntil() time.Time
}

// RemoteKeySetConfig configures a [RemoteKeySet].
type RemoteKeySetConfig struct {
	// URL returns the JWKS URL. It is called before every fetch, so it may
	// come from a discovery document that changes. Required.
	URL func(ctx context.Context) (string, error)
	// HTTPClient fetches the JWKS. Defaults to a client with a 10 s timeout
	// that does not follow redirects (a redirected JWKS is an error). A
	// client passed here is used as it is: set its CheckRedirect to return
	// [http.ErrUseLastResponse] to keep that property.
	HTTPClient *http.Client
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// MinRefetchInterval is the least time between two fetches caused by
	// unknown key ids, so a flood of made-up `kid`s costs at most one fetch
	// per interval. Defaults to 30 s.
	MinRefetchInterval time.Duration
	// MaxAge is how long a fetched set is trusted before the next lookup
	// refetches it, so removed keys stop verifying. A failed refetch keeps the
	// cached keys working. Defaults to 10 min.
	MaxAge time.Duration
	// MaxResponseBytes caps the JWKS document size. Defaults to 1 MiB.
	MaxResponseBytes int64
	// Logger receives fetch failures. Defaults to discarding them.
	Logger *slog.Logger
}

// RemoteKeySet is a [KeySet] backed by a provider's JWKS endpoint. It caches
// the keys, refetches at most once per MinRefetchInterval when it meets an
// unknown key id, lets concurrent misses share one fetch, and keeps serving
// cached keys while the endpoint is down. It is safe for concurrent use.
type RemoteKeySet struct {
	cfg   RemoteKeySetConfig
	group singleflight.Group

	mu          sync.RWMutex
	keys        map[string]jose.JSONWebKey
	fetchedAt   time.Time // last successful fetch
	attemptedAt time.Time // last fetch attempt, successful or not
	generation  uint64    // bumped on every successful fetch
}

// NewRemoteKeySet returns a RemoteKeySet. It fetches nothing until the first
// lookup.
func NewRemoteKeySet(cfg RemoteKeySetConfig) (*RemoteKeySet, error) {
	if cfg.URL == nil {
		return nil, errors.New("authn: RemoteKeySetConfig.URL is required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = newHTTPClient()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinRefetchInterval <= 0 {
		cfg.MinRefetchInterval = 30 * time.Second
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 10 * time.Minute
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &RemoteKeySet{cfg: cfg}, nil
}

// StaticURL returns a URL function for [RemoteKeySetConfig] or
// [IntrospectorConfig] that always answers u.
func StaticURL(u string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return u, nil }
}

// Lookup implements [KeySet].
func (s *RemoteKeySet) Lookup(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	s.mu.RLock()
	key, found := s.find(kid)
	fresh := !s.fetchedAt.IsZero() && s.cfg.Now().Sub(s.fetchedAt) < s.cfg.MaxAge
	s.mu.RUnlock()
	if found && fresh {
		return key, nil
	}

	s.refresh(ctx)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if key, found := s.find(kid); found {
		return key, nil
	}
	if s.fetchedAt.IsZero() {
		return nil, ErrKeysUnavailable
	}
	return nil, errUnknownKey
}

// Generation returns a number that changes whenever the key set is
// replaced, so caches of verified tokens can tell when to drop entries.
func (s *RemoteKeySet) Generation() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.generation
}

// FreshUntil returns when the cached set stops being trusted without a
// refetch (the last successful fetch plus MaxAge).
func (s *RemoteKeySet) FreshUntil() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.fetchedAt.Add(s.cfg.MaxAge)
}

// find must be called with s.mu held.
func (s *RemoteKeySet) find(kid string) (*jose.JSONWebKey, bool) {
	if kid == "" {
		if len(s.keys) != 1 {
			return nil, false
		}
		for _, k := range s.keys {
			return &k, true
		}
	}
	k, ok := s.keys[kid]
	if !ok {
		return nil, false
	}
	return &k, true
}

// refresh fetches the set once for all concurrent callers, unless a fetch
// was attempted less than MinRefetchInterval ago (1 s while no keys were
// ever fetched). Callers arriving while a
// fetch is under way wait for it. The fetch runs on its own context so that
// one caller giving up does not fail the others.
func (s *RemoteKeySet) refresh(ctx context.Context) {
	ch := s.group.DoChan("jwks", func() (any, error) {
		now := s.cfg.Now()
		s.mu.Lock()
		interval := s.cfg.MinRefetchInterval
		if s.fetchedAt.IsZero() {
			// With no keys at all nothing can be verified: retry sooner, so
			// that the end of a provider outage is noticed quickly.
			interval = min(interval, time.Second)
		}
		if !s.attemptedAt.IsZero() && now.Sub(s.attemptedAt) < interval {
			s.mu.Unlock()
			return nil, nil
		}
		s.attemptedAt = now
		s.mu.Unlock()
		fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		keys, err := s.fetch(fetchCtx)
		if err != nil {
			s.cfg.Logger.Warn("fetching JWKS failed; keeping cached keys", "error", err)
			return nil, err
		}
		s.mu.Lock()
		s.keys = keys
		s.fetchedAt = s.cfg.Now()
		s.generation++
		s.mu.Unlock()
		return nil, nil
	})
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

func (s *RemoteKeySet) fetch(ctx context.Context) (map[string]jose.JSONWebKey, error) {
	u, err := s.cfg.URL(ctx)
	if err != nil {
		return nil, fmt.Errorf("resolving JWKS URL: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("building JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading JWKS: %w", err)
	}
	if int64(len(body)) > s.cfg.MaxResponseBytes {
		return nil, fmt.Errorf("JWKS is larger than %d bytes", s.cfg.MaxResponseBytes)
	}
	return parseJWKS(body)
}

// parseJWKS keeps the public signing keys of a JWKS document. Keys that
// cannot verify anything (symmetric, encryption-only, private) are dropped,
// so that an HMAC "key" can never be chosen even if a provider publishes one.
func parseJWKS(body []byte) (map[string]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	keys := make(map[string]jose.JSONWebKey, len(doc.Keys))
	ambiguous := make(map[string]bool)
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue // a key type we do not know must not spoil the others
		}
		if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if _, dup := keys[k.KeyID]; dup || ambiguous[k.KeyID] {
			// Two keys under one id make the lookup ambiguous: trust neither.
			delete(keys, k.KeyID)
			ambiguous[k.KeyID] = true
			continue
		}
		keys[k.KeyID] = k
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS holds no usable signing keys")
	}
	return keys, nil
}
