package clientaddr_test

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/clientaddr"
)

func TestAddr(t *testing.T) {
	t.Parallel()
	trusted, err := clientaddr.ParseTrusted([]string{"10.0.0.0/8", "192.0.2.7", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	r := clientaddr.NewResolver(trusted)
	tests := []struct {
		name string
		peer string
		xff  []string
		want string // "" means invalid
	}{
		{"untrusted peer, no header", "203.0.113.9:5000", nil, "203.0.113.9"},
		{"untrusted peer's header is ignored", "203.0.113.9:5000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted peer without header is the client", "10.1.2.3:443", nil, "10.1.2.3"},
		{"trusted peer: rightmost entry", "10.1.2.3:443", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client-written entries left of the real one are ignored", "10.1.2.3:443", []string{"1.1.1.1, 2.2.2.2, 198.51.100.1"}, "198.51.100.1"},
		{"trusted hops are skipped", "10.1.2.3:443", []string{"198.51.100.1, 10.9.9.9, 192.0.2.7"}, "198.51.100.1"},
		{"several header lines read as one list", "10.1.2.3:443", []string{"6.6.6.6, 198.51.100.1", "10.0.0.1"}, "198.51.100.1"},
		{"all hops trusted: the leftmost", "10.1.2.3:443", []string{"10.0.0.5, 10.0.0.6"}, "10.0.0.5"},
		{"garbage from a trusted hop stops at that hop", "10.1.2.3:443", []string{"198.51.100.1, unknown"}, "10.1.2.3"},
		{"entry with port", "10.1.2.3:443", []string{"198.51.100.1:1234"}, "198.51.100.1"},
		{"bracketed IPv6 entry with port", "10.1.2.3:443", []string{"[2001:db8::1]:1234"}, "2001:db8::1"},
		{"IPv4-mapped IPv6 peer is trusted as IPv4", "[::ffff:10.1.2.3]:443", []string{"198.51.100.1"}, "198.51.100.1"},
		{"IPv6 trusted proxy", "[fd00::1]:443", []string{"2001:db8::2"}, "2001:db8::2"},
		{"unix socket peer", "@", nil, ""},
		{"overlong entry ignored", "10.1.2.3:443", []string{strings.Repeat("1", 100)}, "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := r.Addr(tt.peer, tt.xff)
			if tt.want == "" {
				if got.IsValid() {
					t.Fatalf("Addr = %v, want invalid", got)
				}
				return
			}
			if got.String() != tt.want {
				t.Fatalf("Addr = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestAddrHopBound(t *testing.T) {
	t.Parallel()
	trusted, _ := clientaddr.ParseTrusted([]string{"10.0.0.0/8"})
	r := clientaddr.NewResolver(trusted)
	// 100 trusted hops: examining stops after a bound, at a trusted
	// address (never at a client-written one).
	hops := make([]string, 100)
	for i := range hops {
		hops[i] = "10.0.0.1"
	}
	hops[0] = "198.51.100.1"
	got := r.Addr("10.1.1.1:1", []string{strings.Join(hops, ",")})
	if !r.Trusted(got) {
		t.Fatalf("Addr = %v, want a trusted hop once the bound is reached", got)
	}
}

func TestZeroResolverTrustsNothing(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "127.0.0.1:1234"
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	var nilResolver *clientaddr.Resolver
	for name, r := range map[string]*clientaddr.Resolver{"nil": nilResolver, "zero": {}, "empty": clientaddr.NewResolver(nil)} {
		if got := r.FromRequest(req).String(); got != "127.0.0.1" {
			t.Errorf("%s resolver: FromRequest = %s, want the peer 127.0.0.1", name, got)
		}
	}
}

func TestParseTrusted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []string
		want    string
		wantErr bool
	}{
		{"cidr", []string{"10.0.0.0/8"}, "[10.0.0.0/8]", false},
		{"host bits are masked", []string{"10.1.2.3/8"}, "[10.0.0.0/8]", false},
		{"bare IPv4", []string{"192.0.2.1"}, "[192.0.2.1/32]", false},
		{"bare IPv6", []string{"::1"}, "[::1/128]", false},
		{"blanks skipped", []string{" ", "127.0.0.1/32 "}, "[127.0.0.1/32]", false},
		{"hostname refused", []string{"proxy.example"}, "", true},
		{"zone refused", []string{"fe80::1%eth0"}, "", true},
		{"bad prefix length", []string{"10.0.0.0/33"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := clientaddr.ParseTrusted(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil {
				var s []string
				for _, p := range got {
					s = append(s, p.String())
				}
				if "["+strings.Join(s, " ")+"]" != tt.want {
					t.Fatalf("got %v, want %s", s, tt.want)
				}
			}
		})
	}
}

func TestKeyAndLabel(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, key, label string }{
		{"192.0.2.1", "192.0.2.1/32", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1/32", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::9", "2001:db8:1:2::/64", "2001:db8:1:2::/64"},
	}
	for _, tt := range tests {
		k := clientaddr.Key(netip.MustParseAddr(tt.in))
		if k.String() != tt.key || clientaddr.Label(k) != tt.label {
			t.Errorf("%s: key %s label %s, want %s and %s", tt.in, k, clientaddr.Label(k), tt.key, tt.label)
		}
	}
	if l := clientaddr.Label(clientaddr.Key(netip.Addr{})); l != "unknown" {
		t.Errorf("invalid address label = %q, want unknown", l)
	}
}
