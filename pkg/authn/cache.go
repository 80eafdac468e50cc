package authn

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultCacheEntries is the default capacity of a verifier's result cache.
const DefaultCacheEntries = 10000

// resultCache remembers verification results by a hash of the token, so the
// raw token is never kept. It is bounded (least recently used entries go
// first) and every entry carries its own expiry. Safe for concurrent use.
type resultCache struct {
	mu      sync.Mutex
	max     int
	entries map[[32]byte]*list.Element
	lru     *list.List
}

type cacheEntry struct {
	key     [32]byte
	claims  *Claims // nil for a cached refusal
	err     error
	expires time.Time
	// generation is the key set generation the result was computed under; a
	// positive entry is stale once the key set has been replaced.
	generation uint64
}

func newResultCache(max int) *resultCache {
	return &resultCache{max: max, entries: make(map[[32]byte]*list.Element), lru: list.New()}
}

// tokenKey hashes raw from a buffer on the stack when it fits: []byte(raw)
// would copy the token to the heap on every call, cached or not.
func tokenKey(raw string) [32]byte {
	var buf [tokenKeyBuffer]byte
	if len(raw) <= len(buf) {
		return sha256.Sum256(buf[:copy(buf[:], raw)])
	}
	return sha256.Sum256([]byte(raw))
}

// tokenKeyBuffer holds the access tokens providers issue (about 1 KiB).
const tokenKeyBuffer = 2048

// get returns the live entry for key, or nil.
func (c *resultCache) get(key [32]byte, now time.Time) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.entries, key)
		return nil
	}
	c.lru.MoveToFront(el)
	return e
}

// put adds or replaces e's entry. Entries that expired at the cold end of
// the list go too, so that a verifier which sees many short-lived tokens
// keeps about as many as are live rather than filling to its bound with
// dead ones (each entry's claims take hundreds of bytes).
func (c *resultCache) put(e *cacheEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Back(); el != nil && !now.Before(el.Value.(*cacheEntry).expires); el = c.lru.Back() {
		c.lru.Remove(el)
		delete(c.entries, el.Value.(*cacheEntry).key)
	}
	if el, ok := c.entries[e.key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.entries[e.key] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
}
