package ratelimit_test

import (
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
		{"a third key evicts the least recently seen (a)", c, 0, true, 0},
		{"b is still tracked and over budget", b, 0, false, 9 * time.Second},
		{"a was forgotten: it starts with a full bucket", a, 0, true, 0},
		{"and that bucket is tracked again", a, 0, true, 0},
		{"a, over budget again", a, 0, false, 9 * time.Second},
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
		{"c pushes out the least recent (a)", "c", true},
		{"a starts again with a full bucket", "a", true},
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
