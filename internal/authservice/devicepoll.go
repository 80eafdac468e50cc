package authservice

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/nsauth/nsauth/internal/upstream"
)

// Bounds of the device-poll gate.
const (
	// DefaultMaxDeviceLogins is how many device logins the gate tracks by
	// default; past it, the least recently polled are forgotten (and
	// start again as a first poll).
	DefaultMaxDeviceLogins = 10000
	// slowDownStep is RFC 8628 §3.5's increase of the interval at each
	// slow_down.
	slowDownStep = 5 * time.Second
	// unknownDeviceLifetime is how long a device code the gate did not see
	// start (another replica's, or garbage) is remembered.
	unknownDeviceLifetime = 30 * time.Minute
	// maxPollSlack forgives a poll that comes a little before the interval
	// is over (a client timing from its request rather than the answer).
	maxPollSlack = 500 * time.Millisecond
)

// pollGate enforces a device login's polling interval before the provider
// is asked: a poll that comes too soon is answered slow_down here, and
// costs the provider nothing. It knows device codes only by their SHA-256,
// holds a bounded number of them, and forgets each when its codes expire.
// It is safe for concurrent use.
type pollGate struct {
	now func() time.Time
	max int

	mu      sync.Mutex
	entries map[[sha256.Size]byte]*list.Element
	lru     *list.List // of *pollEntry, most recently used first
}

type pollEntry struct {
	key      [sha256.Size]byte
	interval time.Duration
	last     time.Time // when the last poll was let through; zero before the first
	expires  time.Time
}

func newPollGate(now func() time.Time, max int) *pollGate {
	if max <= 0 {
		max = DefaultMaxDeviceLogins
	}
	return &pollGate{now: now, max: max, entries: make(map[[sha256.Size]byte]*list.Element), lru: list.New()}
}

// started records a device login the provider just started.
func (g *pollGate) started(deviceCode string, interval, expiresIn int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entryLocked(deviceCode, g.now())
	e.interval = time.Duration(interval) * time.Second
	e.expires = g.now().Add(time.Duration(expiresIn) * time.Second)
}

// admit reports whether a poll for deviceCode may go to the provider now.
// Either way it returns the interval the client must keep; a refused poll
// lengthens it by slowDownStep, as a provider's slow_down does.
func (g *pollGate) admit(deviceCode string) (ok bool, interval int64) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entryLocked(deviceCode, now)
	slack := min(maxPollSlack, e.interval/2)
	if !e.last.IsZero() && now.Before(e.last.Add(e.interval-slack)) {
		e.interval += slowDownStep
		return false, seconds(e.interval)
	}
	e.last = now
	return true, seconds(e.interval)
}

// slowDown lengthens deviceCode's interval after the provider's slow_down
// and returns it.
func (g *pollGate) slowDown(deviceCode string) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entryLocked(deviceCode, g.now())
	e.interval += slowDownStep
	return seconds(e.interval)
}

// forget drops a device login that is over (tokens issued, denied,
// expired or unknown to the provider).
func (g *pollGate) forget(deviceCode string) {
	key := sha256.Sum256([]byte(deviceCode))
	g.mu.Lock()
	defer g.mu.Unlock()
	if el, ok := g.entries[key]; ok {
		g.lru.Remove(el)
		delete(g.entries, key)
	}
}

// len returns how many device logins are tracked.
func (g *pollGate) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lru.Len()
}

// entryLocked finds or creates deviceCode's entry, marks it most recently
// used, and makes room within max.
func (g *pollGate) entryLocked(deviceCode string, now time.Time) *pollEntry {
	key := sha256.Sum256([]byte(deviceCode))
	if el, ok := g.entries[key]; ok {
		e := el.Value.(*pollEntry)
		if now.Before(e.expires) {
			g.lru.MoveToFront(el)
			return e
		}
		g.lru.Remove(el)
		delete(g.entries, key)
	}
	e := &pollEntry{key: key, interval: upstream.DefaultDeviceInterval * time.Second, expires: now.Add(unknownDeviceLifetime)}
	g.entries[key] = g.lru.PushFront(e)
	for g.lru.Len() > g.max {
		g.evictLocked(g.lru.Back())
	}
	// Drop expired entries that have sunk to the end.
	for back := g.lru.Back(); back != nil && !now.Before(back.Value.(*pollEntry).expires); back = g.lru.Back() {
		g.evictLocked(back)
	}
	return e
}

func (g *pollGate) evictLocked(el *list.Element) {
	g.lru.Remove(el)
	delete(g.entries, el.Value.(*pollEntry).key)
}

func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }
