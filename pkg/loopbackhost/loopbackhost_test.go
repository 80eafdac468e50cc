package loopbackhost_test

import (
	"testing"

	"github.com/nsauth/nsauth/pkg/loopbackhost"
)

func TestIs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		host string
		want bool
	}{
		{"localhost", "localhost", true},
		{"localhost in capitals", "LOCALHOST", true},
		{"localhost mixed case", "LocalHost", true},
		{"IPv4 loopback", "127.0.0.1", true},
		{"elsewhere in 127/8", "127.1.2.3", true},
		{"IPv6 loopback", "::1", true},
		{"IPv6 loopback spelled long", "0:0:0:0:0:0:0:1", true},
		{"IPv4-mapped loopback", "::ffff:127.0.0.1", true},
		{"empty", "", false},
		{"a name under localhost", "app.localhost", false},
		{"localhost with a trailing dot", "localhost.", false},
		{"a name containing localhost", "localhost.example.com", false},
		{"unspecified IPv4", "0.0.0.0", false},
		{"unspecified IPv6", "::", false},
		{"a LAN address", "192.168.1.10", false},
		{"a public name", "auth.example.com", false},
		{"brackets kept", "[::1]", false},
		{"port kept", "127.0.0.1:8080", false},
		{"IPv6 with a zone", "::1%lo", false},
		{"just outside 127/8", "128.0.0.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := loopbackhost.Is(tc.host); got != tc.want {
				t.Errorf("Is(%q) = %v, want %v", tc.host, got, tc.want)
			}
		})
	}
}

func TestURLHosts(t *testing.T) {
	t.Parallel()
	hosts := loopbackhost.URLHosts()
	want := []string{"127.0.0.1", "[::1]", "localhost"}
	if len(hosts) != len(want) {
		t.Fatalf("URLHosts() = %q, want %q", hosts, want)
	}
	for i, h := range hosts {
		if h != want[i] {
			t.Fatalf("URLHosts() = %q, want %q", hosts, want)
		}
		bare := h
		if h == "[::1]" {
			bare = "::1"
		}
		if !loopbackhost.Is(bare) {
			t.Errorf("URLHosts() names %q, which Is refuses", h)
		}
	}
	hosts[0] = "changed"
	if loopbackhost.URLHosts()[0] != "127.0.0.1" {
		t.Fatal("URLHosts returned a shared slice")
	}
}
