// Package ratelimit limits how often one client may do something: a token
// bucket per key, for a bounded number of keys. It is the one limiter the
// RPC interceptor (internal/server) and the built-in provider's authorize
// and token endpoints (internal/issuer) share; they key it by
// clientaddr.Key, and the token endpoint also by client id ([Keyed]).
//
// Buckets live in memory, per process: replicas each allow the full rate.
//
// The bound on keys must not become a way around the limit: a client that
// sends many other keys (bogus client ids, addresses) must not make the
// limiter forget a key that is short of tokens, which would hand that key
// a fresh budget. So a key is forgotten only once its bucket is full again,
// when forgetting it changes nothing; while every tracked key is still
// short, new keys share one bucket (one key's budget, for all of them)
// instead of taking a place.
package ratelimit

import (
	"container/heap"
	"math"
	"net/netip"
	"sync"
	"time"
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
	// limiter holds. A key is forgotten only when its bucket has filled up
	// again; while all MaxClients are short of tokens, other keys share one
	// bucket of a single key's size. Defaults to [DefaultMaxClients].
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
//
// Each bucket is kept as the time at which it will be full again (the
// "theoretical arrival time" of GCRA): an event moves it one interval
// later, and an event that would move it more than the burst ahead of now
// is refused. Buckets are ordered by that time, so the one that is full
// again first is found at once.
type Keyed[K comparable] struct {
	cfg Config
	// interval is the time one token takes to come back; window is Burst
	// of them, how far ahead of now a bucket's full time may be.
	interval, window time.Duration

	mu      sync.Mutex
	buckets map[K]*bucket[K]
	byFull  fullOrder[K]
	shared  time.Time // the full time of the bucket untracked keys share
}

type bucket[K comparable] struct {
	key  K
	full time.Time // when the bucket has all its tokens again
	at   int       // its index in byFull
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
	interval := max(time.Duration(float64(time.Minute)/cfg.PerMinute), 1)
	return &Keyed[K]{cfg: cfg, interval: interval, window: interval * time.Duration(cfg.Burst), buckets: make(map[K]*bucket[K])}
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
	b, found := l.buckets[key]
	if !found {
		if len(l.buckets) >= l.cfg.MaxClients {
			if l.byFull[0].full.After(now) {
				// Every tracked key is short of tokens: forgetting one would
				// give it its budget back.
				return l.take(&l.shared, now)
			}
			delete(l.buckets, heap.Pop(&l.byFull).(*bucket[K]).key)
		}
		b = &bucket[K]{key: key, full: now}
		l.buckets[key] = b
		heap.Push(&l.byFull, b)
	}
	ok, retryAfter = l.take(&b.full, now)
	if ok {
		heap.Fix(&l.byFull, b.at)
	}
	return ok, retryAfter
}

// take spends one token of the bucket that is full at *full, if it has one
// now.
func (l *Keyed[K]) take(full *time.Time, now time.Time) (bool, time.Duration) {
	next := now.Add(l.interval)
	if full.After(now) {
		next = full.Add(l.interval)
	}
	if ahead := next.Sub(now); ahead > l.window {
		return false, ahead - l.window
	}
	*full = next
	return true, 0
}

// fullOrder is a min-heap of buckets by the time they are full again.
type fullOrder[K comparable] []*bucket[K]

func (h fullOrder[K]) Len() int           { return len(h) }
func (h fullOrder[K]) Less(i, j int) bool { return h[i].full.Before(h[j].full) }
func (h fullOrder[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].at, h[j].at = i, j
}
func (h *fullOrder[K]) Push(x any) {
	b := x.(*bucket[K])
	b.at = len(*h)
	*h = append(*h, b)
}
func (h *fullOrder[K]) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return b
}

// RetryAfterSeconds is a wait as a Retry-After header counts it: whole
// seconds, rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
