package authn

import (
	"sync"
	"sync/atomic"
	"time"
)

// refusalWarnInterval is how long the interceptor stays quiet, at warning
// level, about a check after warning of it, and how long without an
// accepted token makes refusals worth a warning.
const refusalWarnInterval = time.Minute

// refusalWarner decides which refusals are logged at warning level: the
// first by each check in a minute, while no token has been accepted for a
// minute. A service refusing some tokens among good ones (an attacker, a
// client with an old token) stays at debug level; a service refusing every
// token it sees is misconfigured, and an operator must hear of it without
// turning debug logging on.
type refusalWarner struct {
	now          func() time.Time
	lastAccepted atomic.Int64 // UnixNano of the last accepted token; 0 for none

	mu     sync.Mutex
	warned map[check]time.Time
}

func newRefusalWarner(now func() time.Time) *refusalWarner {
	return &refusalWarner{now: now, warned: make(map[check]time.Time)}
}

// accepted records an accepted token. It writes the shared time at most
// once a second, so that concurrent requests do not all contend for it.
func (w *refusalWarner) accepted() {
	now := w.now().UnixNano()
	if now-w.lastAccepted.Load() >= int64(time.Second) {
		w.lastAccepted.Store(now)
	}
}

// warn reports whether a refusal by c is to be logged at warning level,
// and if so starts c's quiet minute.
func (w *refusalWarner) warn(c check) bool {
	now := w.now()
	if last := w.lastAccepted.Load(); last != 0 && now.Sub(time.Unix(0, last)) < refusalWarnInterval {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.warned[c]; ok && now.Sub(t) < refusalWarnInterval {
		return false
	}
	w.warned[c] = now
	return true
}
