package ratelimit_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/ratelimit"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	l := ratelimit.New(ratelimit.Config{PerMinute: 6, Burst: 2, MaxClients: 2, Now: func() time.Time { return now }})
	a := netip.MustParsePrefix("192.0.2.1/32")
	b := netip.MustParsePrefix("192.0.2.2/32")
	c := netip.MustParsePrefix("2001:db8::/64")
	tests := []struct {
		name    string
		key     netip.Prefix
		advance time.Duration
		wantOK  bool
		wantMin time.Duration // least retryAfter when refused
	}{
		{"first event", a, 0, true, 0},
		{"second event within burst", a, 0, true, 0},
		{"third event is refused", a, 0, false, 9 * time.Second},
		{"a refusal uses up nothing: still one token in 10 s", a, 9 * time.Second, false, time.Second - time.Millisecond},
		{"budget refills at 6 a minute", a, time.Second, true, 0},
		{"another key has its own budget", b, 0, true, 0},
		{"other key, second event", b, 0, true, 0},
		{"other key, over budget", b, 0, false, 9 * time.Second},
		{"a third key, while a and b are both short, uses the shared bucket", c, 0, true, 0},
		{"the shared bucket has one key's burst", c, 0, true, 0},
		{"and no more", c, 0, false, 9 * time.Second},
		{"b is still tracked and over budget", b, 0, false, 9 * time.Second},
		{"a was not forgotten: still over budget", a, 0, false, 9 * time.Second},
		{"once a and b are full again, c takes the place of one", c, 20 * time.Second, true, 0},
		{"c has a bucket of its own now, not the shared one", c, 0, true, 0},
		{"c, over its own budget", c, 0, false, 9 * time.Second},
		{"a, full again, is allowed whether or not it was the key forgotten", a, 0, true, 0},
	}
	for _, tt := range tests {
		now = now.Add(tt.advance)
		ok, wait := l.Allow(tt.key)
		if ok != tt.wantOK {
			t.Fatalf("%s: ok = %v, want %v", tt.name, ok, tt.wantOK)
		}
		if !ok && wait < tt.wantMin {
			t.Fatalf("%s: retryAfter = %v, want at least %v", tt.name, wait, tt.wantMin)
		}
		if ok && wait != 0 {
			t.Fatalf("%s: allowed with retryAfter %v", tt.name, wait)
		}
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		perMinute float64
	}{
		{"zero", 0},
		{"negative", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := ratelimit.New(ratelimit.Config{PerMinute: tc.perMinute})
			if l != nil {
				t.Fatal("New returned a limiter for a disabled limit")
			}
			for range 1000 {
				if ok, _ := l.Allow(netip.Prefix{}); !ok {
					t.Fatal("a nil Limiter refused")
				}
			}
		})
	}
}

func TestDefaultBurst(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	l := ratelimit.New(ratelimit.Config{PerMinute: 2.5, Now: func() time.Time { return now }})
	key := netip.MustParsePrefix("192.0.2.1/32")
	for i := range 3 {
		if ok, _ := l.Allow(key); !ok {
			t.Fatalf("event %d refused: the burst defaults to PerMinute rounded up (3)", i+1)
		}
	}
	if ok, _ := l.Allow(key); ok {
		t.Fatal("fourth event allowed")
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   time.Duration
		want int
	}{
		{0, 1},
		{time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + time.Millisecond, 2},
		{59500 * time.Millisecond, 60},
	} {
		if got := ratelimit.RetryAfterSeconds(tc.in); got != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestKeyedByString(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	l := ratelimit.NewKeyed[string](ratelimit.Config{PerMinute: 1, MaxClients: 2, Now: func() time.Time { return now }})
	tests := []struct {
		name, key string
		want      bool
	}{
		{"first of a", "a", true},
		{"second of a", "a", false},
		{"first of b", "b", true},
		{"c, with a and b short, takes the shared bucket", "c", true},
		{"d shares that bucket, now empty", "d", false},
		{"a is not forgotten: still limited", "a", false},
	}
	for _, tt := range tests {
		if ok, _ := l.Allow(tt.key); ok != tt.want {
			t.Fatalf("%s: Allow = %v, want %v", tt.name, ok, tt.want)
		}
	}
	var none *ratelimit.Keyed[string]
	if ok, _ := none.Allow("x"); !ok {
		t.Error("a nil Keyed refused")
	}
}

// TestChurnNeverResetsALimitedKey is the attack that found eviction
// handing out budgets: a client exhausts its limit, then other keys
// (10,100 bogus client ids in 21 s, as sent from 41 addresses) churn the
// limiter past its 10,000 keys. The exhausted key must get back no more
// than the time that passed gives it, and the limiter must stay within
// its bound.
func TestChurnNeverResetsALimitedKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		churn  int
		during time.Duration
		// each is how many events each bogus key sends: with its whole
		// burst, every bogus key is as short of tokens as the victim.
		each int
	}{
		{"10,100 keys at once", 10100, 0, 1},
		{"10,100 keys in 21 s", 10100, 21 * time.Second, 1},
		{"10,100 keys in a second, each exhausted", 10100, time.Second, 60},
		{"30,000 keys in 10 minutes (the bound holds)", 30000, 10 * time.Minute, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := time.Unix(1_000_000, 0)
			l := ratelimit.NewKeyed[string](ratelimit.Config{PerMinute: 60, Now: func() time.Time { return now }})
			start := now
			for i := range 60 {
				if ok, _ := l.Allow("victim"); !ok {
					t.Fatalf("victim's event %d refused within its burst", i+1)
				}
			}
			if ok, _ := l.Allow("victim"); ok {
				t.Fatal("victim's 61st event allowed")
			}
			step := tt.during / time.Duration(tt.churn)
			for i := range tt.churn {
				now = now.Add(step)
				for range tt.each {
					l.Allow(fmt.Sprintf("bogus-%d", i))
				}
				if n := l.Tracked(); n > ratelimit.DefaultMaxClients {
					t.Fatalf("after %d bogus keys the limiter tracks %d keys, more than %d", i+1, n, ratelimit.DefaultMaxClients)
				}
			}
			// What the victim may do now: what the elapsed time refilled
			// (one a second), capped by its burst; never a fresh budget.
			want := min(60, int(now.Sub(start)/time.Second))
			got := 0
			for range 60 {
				if ok, _ := l.Allow("victim"); ok {
					got++
				}
			}
			if got != want {
				t.Fatalf("after the churn the exhausted key got %d events, want %d (what %v refilled)", got, want, now.Sub(start))
			}
		})
	}
}

// TestChurnLeavesRoomForNewKeys: keys churned through are forgotten once
// their buckets are full again, so the shared bucket is only for the
// moment when every place is held by a key still short of tokens.
func TestChurnLeavesRoomForNewKeys(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	l := ratelimit.NewKeyed[string](ratelimit.Config{PerMinute: 60, Burst: 2, MaxClients: 100, Now: func() time.Time { return now }})
	for i := range 100 {
		l.Allow(fmt.Sprintf("bogus-%d", i))
	}
	// All 100 places are short: newcomers share one bucket of 2.
	if ok1, _ := l.Allow("new-1"); !ok1 {
		t.Fatal("first newcomer refused by an unused shared bucket")
	}
	if ok2, _ := l.Allow("new-2"); !ok2 {
		t.Fatal("second newcomer refused within the shared burst")
	}
	if ok3, _ := l.Allow("new-3"); ok3 {
		t.Fatal("a third newcomer got past the shared bucket")
	}
	// A second later the bogus keys are full again and forgotten as needed:
	// a newcomer gets a bucket of its own, with its whole burst.
	now = now.Add(time.Second)
	for i := range 2 {
		if ok, _ := l.Allow("new-3"); !ok {
			t.Fatalf("newcomer's event %d refused though the bogus keys are full again", i+1)
		}
	}
	if n := l.Tracked(); n != 100 {
		t.Fatalf("tracked %d keys, want the bound, 100", n)
	}
}
