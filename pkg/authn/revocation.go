package authn

import (
	"context"
	"sync"
	"time"
)

// RevocationChecker tells a [Verifier] which of the tokens it would accept
// were revoked before they expired. A JWT carries no way to learn that by
// itself: the provider must publish it, and the service must keep what it
// learns where every verification can read it.
//
// Revoked is called with the verified claims of every token the verifier
// is about to accept, on every call, cache hits included, so a revocation
// takes effect on the next call. It is on the hot path of every request:
// it MUST be fast (a map lookup, not a network or database round trip) and
// safe for concurrent use, and it must not keep or change c. It returns
// true to refuse the token.
type RevocationChecker interface {
	Revoked(ctx context.Context, c *Claims) bool
}

// RevocationSet is an in-memory [RevocationChecker] keyed by token id (the
// `jti` claim): a token whose ID was added is refused until its expiry,
// when the entry may be dropped, so memory is bounded by the revoked
// tokens that are still alive. Tokens without a `jti` are never refused by
// it. Whatever learns of revocations (a provider's notifications, a
// periodic fetch) calls [RevocationSet.Add]; verifiers call Revoked.
//
// The zero value is an empty set using time.Now. It is safe for concurrent
// use; Revoked takes a read lock and allocates nothing.
type RevocationSet struct {
	// Now is the clock that decides when entries have expired. Defaults to
	// time.Now. Set it before first use.
	Now func() time.Time

	mu      sync.RWMutex
	ids     map[string]time.Time
	sweepAt int // the size at which Add next drops expired entries
}

// minSweep is the smallest set that Add sweeps for expired entries.
const minSweep = 64

// Add records that the token with this id is revoked until expiresAt. An
// id added again keeps the later expiry. An empty id is ignored.
func (s *RevocationSet) Add(id string, expiresAt time.Time) {
	if id == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = make(map[string]time.Time)
	}
	if old, ok := s.ids[id]; ok && !old.Before(expiresAt) {
		return
	}
	s.ids[id] = expiresAt
	// Sweeping when the set has doubled since the last sweep keeps Add
	// amortised O(1) and the set within twice its live size.
	if len(s.ids) >= max(s.sweepAt, minSweep) {
		s.sweepLocked()
		s.sweepAt = 2 * len(s.ids)
	}
}

func (s *RevocationSet) sweepLocked() {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now()
	for id, exp := range s.ids {
		if exp.Before(t) {
			delete(s.ids, id)
		}
	}
}

// Revoked implements [RevocationChecker]: it reports whether c's token id
// was added. An entry past its expiry may still answer true; the token it
// names is expired anyway.
func (s *RevocationSet) Revoked(_ context.Context, c *Claims) bool {
	if c == nil || c.ID == "" {
		return false
	}
	s.mu.RLock()
	_, ok := s.ids[c.ID]
	s.mu.RUnlock()
	return ok
}

// Len returns how many ids the set holds, expired ones not yet dropped
// included.
func (s *RevocationSet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ids)
}
