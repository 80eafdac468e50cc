package server

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/internal/clientaddr"
)

// rateLimitCall is one call to the limiter: after moving the clock by
// advance, procedure is called from peer (with X-Forwarded-For xff, when
// set), and wantOK says whether it may pass.
type rateLimitCall struct {
	procedure string
	peer      string
	xff       string
	advance   time.Duration
	wantOK    bool
}

// TestRateLimiter runs each row against a limiter and clock of its own:
// a row's calls bring the limiter to the state the row is about, then the
// last call is the row's point. Every call's result is checked.
func TestRateLimiter(t *testing.T) {
	t.Parallel()
	trusted, err := clientaddr.ParseTrusted([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	call := func(procedure, peer, xff string, advance time.Duration, wantOK bool) rateLimitCall {
		return rateLimitCall{procedure, peer, xff, advance, wantOK}
	}
	// then is prefix followed by more, never sharing prefix's array.
	then := func(prefix []rateLimitCall, more ...rateLimitCall) []rateLimitCall {
		return append(slices.Clip(prefix), more...)
	}
	// One IPv4 address spends its burst of 2.
	ipv4Spent := []rateLimitCall{
		call("/p/Limited", "192.0.2.1:1000", "", 0, true),
		call("/p/Limited", "192.0.2.1:1001", "", 0, true),
		call("/p/Limited", "192.0.2.1:1002", "", 0, false),
	}
	// Three hosts of one IPv6 /64 spend its burst of 2.
	ipv6Spent := []rateLimitCall{
		call("/p/Limited", "[2001:db8::1]:1", "", 0, true),
		call("/p/Limited", "[2001:db8::2]:1", "", 0, true),
		call("/p/Limited", "[2001:db8::3]:1", "", 0, false),
	}
	// One client behind trusted proxies spends its burst of 2.
	forwardedSpent := []rateLimitCall{
		call("/p/Limited", "10.0.0.1:1", "198.51.100.7", 0, true),
		call("/p/Limited", "10.0.0.2:1", "198.51.100.7", 0, true),
		call("/p/Limited", "10.0.0.3:1", "6.6.6.6, 198.51.100.7", 0, false),
	}
	tests := []struct {
		name  string
		calls []rateLimitCall
	}{
		{"first call", ipv4Spent[:1]},
		{"second call within burst", ipv4Spent[:2]},
		{"third call is limited", ipv4Spent},
		{"other procedures are not limited", then(ipv4Spent, call("/p/Free", "192.0.2.1:1003", "", 0, true))},
		{"another address has its own budget", then(ipv4Spent, call("/p/Limited", "192.0.2.2:1000", "", 0, true))},
		{"IPv6 hosts in one /64 share a budget", ipv6Spent[:1]},
		{"same /64", ipv6Spent[:2]},
		{"same /64, over budget", ipv6Spent},
		{"budget refills at 6 a minute", then(ipv6Spent, call("/p/Limited", "[2001:db8::3]:1", "", 10*time.Second, true))},
		{"behind a trusted proxy, the forwarded client counts", forwardedSpent[:1]},
		{"second client call", forwardedSpent[:2]},
		{"third call from that client through another proxy is limited", forwardedSpent},
		{"another client behind the same proxy is not", then(forwardedSpent, call("/p/Limited", "10.0.0.1:1", "198.51.100.8", 0, true))},
		{"an untrusted peer's header is ignored: counted as itself", then(ipv6Spent, call("/p/Limited", "[2001:db8::3]:1", "198.51.100.9", 0, false))},
		// The old rows ran in one sequence, so their later calls came past
		// MaxClients (3) and shared the overflow budget; this row keeps
		// that case on purpose.
		{"past MaxClients, newcomers share one budget", []rateLimitCall{
			call("/p/Limited", "192.0.2.1:1", "", 0, true),
			call("/p/Limited", "192.0.2.2:1", "", 0, true),
			call("/p/Limited", "192.0.2.3:1", "", 0, true),
			call("/p/Limited", "192.0.2.4:1", "", 0, true),
			call("/p/Limited", "192.0.2.5:1", "", 0, true),
			call("/p/Limited", "192.0.2.6:1", "", 0, false),
			call("/p/Limited", "192.0.2.1:2", "", 0, true),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := time.Unix(1_000_000, 0)
			rl := newRateLimiter(RateLimit{Procedures: []string{"/p/Limited"}, PerMinute: 6, Burst: 2, MaxClients: 3,
				Now: func() time.Time { return now }, Clients: clientaddr.NewResolver(trusted)})
			for i, c := range tt.calls {
				now = now.Add(c.advance)
				h := http.Header{}
				if c.xff != "" {
					h.Set("X-Forwarded-For", c.xff)
				}
				err := rl.check(c.procedure, connect.Peer{Addr: c.peer}, h)
				if (err == nil) != c.wantOK {
					t.Fatalf("call %d (%s from %s): err = %v, want ok=%v", i+1, c.procedure, c.peer, err, c.wantOK)
				}
				if err != nil {
					var ce *connect.Error
					if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted || ce.Meta().Get("Retry-After") == "" {
						t.Fatalf("call %d: err = %v, want ResourceExhausted with Retry-After", i+1, err)
					}
				}
			}
		})
	}
}
