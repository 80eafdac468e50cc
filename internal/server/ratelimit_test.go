package server

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/internal/clientaddr"
)

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	trusted, err := clientaddr.ParseTrusted([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	rl := newRateLimiter(RateLimit{Procedures: []string{"/p/Limited"}, PerMinute: 6, Burst: 2, MaxClients: 3,
		Now: func() time.Time { return now }, Clients: clientaddr.NewResolver(trusted)})
	tests := []struct {
		name      string
		procedure string
		peer      string
		xff       string
		advance   time.Duration
		wantOK    bool
	}{
		{"first call", "/p/Limited", "192.0.2.1:1000", "", 0, true},
		{"second call within burst", "/p/Limited", "192.0.2.1:1001", "", 0, true},
		{"third call is limited", "/p/Limited", "192.0.2.1:1002", "", 0, false},
		{"other procedures are not limited", "/p/Free", "192.0.2.1:1003", "", 0, true},
		{"another address has its own budget", "/p/Limited", "192.0.2.2:1000", "", 0, true},
		{"IPv6 hosts in one /64 share a budget", "/p/Limited", "[2001:db8::1]:1", "", 0, true},
		{"same /64", "/p/Limited", "[2001:db8::2]:1", "", 0, true},
		{"same /64, over budget", "/p/Limited", "[2001:db8::3]:1", "", 0, false},
		{"budget refills at 6 a minute", "/p/Limited", "[2001:db8::3]:1", "", 10 * time.Second, true},
		{"behind a trusted proxy, the forwarded client counts", "/p/Limited", "10.0.0.1:1", "198.51.100.7", 0, true},
		{"second client call", "/p/Limited", "10.0.0.2:1", "198.51.100.7", 0, true},
		{"third call from that client through another proxy is limited", "/p/Limited", "10.0.0.3:1", "6.6.6.6, 198.51.100.7", 0, false},
		{"another client behind the same proxy is not", "/p/Limited", "10.0.0.1:1", "198.51.100.8", 0, true},
		{"an untrusted peer's header is ignored: counted as itself", "/p/Limited", "[2001:db8::3]:1", "198.51.100.9", 0, false},
	}
	for _, tt := range tests {
		now = now.Add(tt.advance)
		h := http.Header{}
		if tt.xff != "" {
			h.Set("X-Forwarded-For", tt.xff)
		}
		err := rl.check(tt.procedure, connect.Peer{Addr: tt.peer}, h)
		if (err == nil) != tt.wantOK {
			t.Fatalf("%s: err = %v, want ok=%v", tt.name, err, tt.wantOK)
		}
		if err != nil {
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted || ce.Meta().Get("Retry-After") == "" {
				t.Fatalf("%s: err = %v, want ResourceExhausted with Retry-After", tt.name, err)
			}
		}
	}
}
