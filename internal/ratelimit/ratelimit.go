// Package ratelimit limits how often one client may do something: a token
// bucket per key, for a bounded number of keys. It is the one limiter the
// RPC interceptor (internal/server) and the built-in provider's authorize
// endpoint (internal/issuer) share; both key it by clientaddr.Key.
//
// Buckets live in memory, per process: replicas each allow the full rate.
package ratelimit

import (
	"container/list"
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxClients is the default bound on tracked keys.
const DefaultMaxClients = 10000

// Config configures a [Limiter].
type Config struct {
	// PerMinute is the sustained number of events allowed per key; zero or
	// less means no limit.
	PerMinute float64
	// Burst is how many events may come at once. Defaults to PerMinute
	// (rounded up), at least 1.
	Burst int
	// MaxClients bounds how many keys are tracked, and so the memory the
	// limiter holds; the least recently seen are forgotten first, and start
	// again with a full bucket. Defaults to [DefaultMaxClients].
	MaxClients int
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// Limiter is a token bucket per client address prefix (see
// clientaddr.Key). It is safe for concurrent use. A nil *Limiter allows
// everything.
type Limiter = Keyed[netip.Prefix]

// Keyed is a token bucket per key of any kind (such as an OAuth client
// id). It is safe for concurrent use. A nil *Keyed allows everything.
type Keyed[K comparable] struct {
	cfg Config

	mu      sync.Mutex
	buckets map[K]*list.Element
	lru     *list.List // of *bucket[K], most recently seen first
}

type bucket[K comparable] struct {
	key     K
	limiter *rate.Limiter
}

// New returns a Limiter for cfg, or nil (which allows everything) when
// cfg.PerMinute is not positive.
func New(cfg Config) *Limiter { return NewKeyed[netip.Prefix](cfg) }

// NewKeyed returns a Keyed limiter for cfg, or nil (which allows
// everything) when cfg.PerMinute is not positive.
func NewKeyed[K comparable](cfg Config) *Keyed[K] {
	if !(cfg.PerMinute > 0) {
		return nil
	}
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, int(math.Ceil(cfg.PerMinute)))
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Keyed[K]{cfg: cfg, buckets: make(map[K]*list.Element), lru: list.New()}
}

// Allow reports whether the client with key may act now and, when it may
// not, how long it should wait. A refused event uses up nothing.
func (l *Keyed[K]) Allow(key K) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket[K]
	if el, found := l.buckets[key]; found {
		l.lru.MoveToFront(el)
		b = el.Value.(*bucket[K])
	} else {
		b = &bucket[K]{key: key, limiter: rate.NewLimiter(rate.Limit(l.cfg.PerMinute/60), l.cfg.Burst)}
		l.buckets[key] = l.lru.PushFront(b)
		for l.lru.Len() > l.cfg.MaxClients {
			oldest := l.lru.Back()
			l.lru.Remove(oldest)
			delete(l.buckets, oldest.Value.(*bucket[K]).key)
		}
	}
	r := b.limiter.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return false, delay
	}
	return true, 0
}

// RetryAfterSeconds is a wait as a Retry-After header counts it: whole
// seconds, rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
