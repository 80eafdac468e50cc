package authn

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/nsauth/nsauth/pkg/authn/internal/revtable"
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
// true to refuse the token. (The one exception to "fast" is the fallback
// of an overflowed [RevocationSet], a degraded mode that must be correct
// before it is fast.)
type RevocationChecker interface {
	Revoked(ctx context.Context, c *Claims) bool
}

// DefaultMaxRevocations is the number of entries a [RevocationSet] holds
// when RevocationSet.MaxEntries is zero. Its table then takes 24 MiB
// (12 bytes a slot, at most three quarters of the slots used), 36 MiB
// for the moment it takes to double to that size; at a million live
// entries that is 25 bytes an entry (BenchmarkRevocationSetMillion).
const DefaultMaxRevocations = 1_500_000

// RevocationSet is an in-memory [RevocationChecker] keyed by token id (the
// `jti` claim): a token whose ID was added is refused until its expiry
// (plus ClockSkew), when the entry may be dropped, so memory is bounded by
// the revoked tokens that are still alive, and never exceeds what
// MaxEntries entries take. Tokens without a `jti` are never refused by it.
// Whatever learns of revocations (a provider's notifications, a periodic
// fetch) calls [RevocationSet.Add]; verifiers call Revoked.
//
// An entry is a 64-bit keyed hash of the id (the key is random, drawn
// when the set is first used) and the expiry in whole seconds, rounded
// up. Two ids with the same hash cannot make the set accept a revoked
// token: the worst they do is refuse a valid one, with a probability
// below 2⁻⁴⁴ per call at a million entries.
//
// When an id cannot be added because the set holds MaxEntries unexpired
// entries, the set does not drop it silently: it becomes overflowed (see
// [RevocationSet.Overflowed]) and from then on asks Fallback about every
// token it does not hold, until [RevocationSet.Reload] makes it whole
// again.
//
// The zero value is an empty set using time.Now, [DefaultMaxRevocations]
// and [DefaultClockSkew]. It is safe for concurrent use; Revoked takes a
// read lock and allocates nothing.
type RevocationSet struct {
	// Now is the clock that decides when entries have expired. Defaults to
	// time.Now. Set it before first use.
	Now func() time.Time
	// MaxEntries bounds the entries the set holds, and so its memory.
	// Defaults to [DefaultMaxRevocations] when zero or negative. Set it
	// before first use.
	MaxEntries int
	// ClockSkew is how long past its expiry an entry is kept: a verifier
	// accepts a token up to its own VerifierConfig.ClockSkew after `exp`,
	// and a revoked token MUST stay refused for as long. Set it to at
	// least the largest ClockSkew of the verifiers consulting the set.
	// Defaults to [DefaultClockSkew] when zero; negative means none.
	ClockSkew time.Duration
	// Fallback is asked, while the set is overflowed, about every token
	// with an id the set does not hold: it should read the provider's
	// record of revocations. When nil, an overflowed set refuses every
	// such token: it fails closed, never accepting a token it may have
	// been told was revoked. Set it before first use.
	Fallback RevocationChecker

	mu      sync.RWMutex
	seed    maphash.Seed
	t       revtable.Table
	sweepAt int // the entries at which Add next drops expired ones
	// soonest is no later than the earliest expiry among the entries: a
	// sweep before it would free nothing.
	soonest    uint32
	overflowed bool
	refused    uint64 // how many times Add could not hold an id
}

// minSweep is the smallest set that Add sweeps for expired entries.
const minSweep = 64

// Add records that the token with this id is revoked until expiresAt. An
// id added again keeps the later expiry. An empty id is ignored. When the
// set is full of unexpired entries, the id is not held and the set
// becomes overflowed.
func (s *RevocationSet) Add(id string, expiresAt time.Time) {
	if id == "" {
		return
	}
	exp := expirySeconds(expiresAt)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t.Capacity() == 0 {
		s.seed = maphash.MakeSeed()
		s.t.Init(minSweep)
	}
	k := s.key(id)
	if s.t.Raise(k, exp) {
		return
	}
	// Sweeping when the set has doubled since the last sweep keeps Add
	// amortised O(1) and the set within twice its live size; a full set
	// sweeps too, but only once an entry may have expired.
	limit := s.maxEntries()
	if s.t.Len()+1 >= max(s.sweepAt, minSweep) || (s.t.Len() >= limit && s.nowSeconds() > s.soonest) {
		s.sweepLocked()
		s.sweepAt = 2 * (s.t.Len() + 1)
	}
	if s.t.Len() >= limit {
		s.overflowed = true
		s.refused++
		return
	}
	if s.t.Len()+1 > s.t.Capacity()/4*3 {
		s.t.Grow(revtable.Size(limit))
	}
	s.t.Insert(k, exp)
	if s.t.Len() == 1 || exp < s.soonest {
		s.soonest = exp
	}
}

// Revoked implements [RevocationChecker]: it reports whether c's token id
// was added. An entry past its expiry may still answer true; the token it
// names is expired anyway. While the set is overflowed, a token it does
// not hold is Fallback's to judge (refused when Fallback is nil).
func (s *RevocationSet) Revoked(ctx context.Context, c *Claims) bool {
	if c == nil || c.ID == "" {
		return false
	}
	s.mu.RLock()
	held := s.t.Capacity() != 0 && s.t.Has(s.key(c.ID))
	overflowed := s.overflowed
	s.mu.RUnlock()
	switch {
	case held:
		return true
	case !overflowed:
		return false
	case s.Fallback == nil:
		return true
	default:
		return s.Fallback.Revoked(ctx, c)
	}
}

// Overflowed reports whether the set has had to leave out an id since it
// was last whole: until [RevocationSet.Reload] succeeds, it cannot tell
// by itself that a token it does not hold was not revoked.
func (s *RevocationSet) Overflowed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.overflowed
}

// Reload makes an overflowed set whole again. load MUST call add with
// every revocation that is live when load is called (reading them after
// the call begins), and may call it concurrently with Add. When load
// succeeds and no id was left out from the start of Reload to the end of
// load, the set is no longer overflowed: every revocation it ever left
// out either has expired or was read again by load. Otherwise it stays
// overflowed, and Reload returns load's error, if any. Reload on a set
// that is not overflowed just adds what load gives.
func (s *RevocationSet) Reload(load func(add func(id string, expiresAt time.Time)) error) error {
	s.mu.Lock()
	if s.t.Capacity() != 0 {
		s.sweepLocked()
	}
	refused := s.refused
	s.mu.Unlock()
	if err := load(s.Add); err != nil {
		return err
	}
	s.mu.Lock()
	if s.refused == refused {
		s.overflowed = false
	}
	s.mu.Unlock()
	return nil
}

// Len returns how many ids the set holds, expired ones not yet dropped
// included.
func (s *RevocationSet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.t.Len()
}

func (s *RevocationSet) maxEntries() int {
	if s.MaxEntries <= 0 {
		return DefaultMaxRevocations
	}
	return s.MaxEntries
}

// key returns id's hash; 0 marks an empty slot, so it is never a key.
func (s *RevocationSet) key(id string) uint64 {
	return max(maphash.String(s.seed, id), 1)
}

// nowSeconds returns the current time in whole seconds, less ClockSkew:
// an entry that expires before it can go.
func (s *RevocationSet) nowSeconds() uint32 {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	skew := s.ClockSkew
	if skew == 0 {
		skew = DefaultClockSkew
	}
	return expirySeconds(now().Add(-max(skew, 0)).Truncate(time.Second))
}

func (s *RevocationSet) sweepLocked() {
	t := s.nowSeconds()
	s.soonest = s.t.Sweep(t)
}

// expirySeconds is t in Unix seconds, rounded up so that an entry never
// expires before its token, and clamped to what a uint32 holds (until 2106).
func expirySeconds(t time.Time) uint32 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return uint32(min(max(sec, 0), math.MaxUint32))
}
