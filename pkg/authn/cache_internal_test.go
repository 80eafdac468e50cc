package authn

import (
	"testing"
	"time"
)

// TestResultCacheDropsExpiredEntries: a verifier that sees many
// short-lived tokens keeps about as many entries as are live, not as many
// as its bound allows, and the bound still holds for live ones.
func TestResultCacheDropsExpiredEntries(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	key := func(i int) [32]byte { return tokenKey("token-" + time.Duration(i).String()) }
	for _, tc := range []struct {
		name string
		// ttl is each entry's life; every put is a second after the last.
		ttl, puts, max int
		want           int
	}{
		{"entries living 60 s, 600 puts, bound 10000", 60, 600, 10000, 60},
		{"entries living 60 s, 30 puts, bound 10000", 60, 30, 10000, 30},
		{"entries living an hour, 600 puts, bound 100", 3600, 600, 100, 100},
		{"entries living a second, 50 puts", 1, 50, 10000, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newResultCache(tc.max)
			for i := range tc.puts {
				now := t0.Add(time.Duration(i) * time.Second)
				c.put(&cacheEntry{key: key(i), expires: now.Add(time.Duration(tc.ttl) * time.Second)}, now)
			}
			if got := c.lru.Len(); got != tc.want || len(c.entries) != tc.want {
				t.Errorf("the cache holds %d entries (%d in its map), want %d", got, len(c.entries), tc.want)
			}
			last := t0.Add(time.Duration(tc.puts-1) * time.Second)
			if c.get(key(tc.puts-1), last) == nil {
				t.Error("the newest entry is gone")
			}
		})
	}
}
