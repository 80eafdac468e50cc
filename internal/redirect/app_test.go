package redirect_test

import (
	"testing"

	"github.com/nsauth/nsauth/internal/redirect"
)

func TestMatchApp(t *testing.T) {
	t.Parallel()
	registered := []string{"https://app.example.com/cb", "http://127.0.0.1:8080/callback", "http://[::1]/cb?x=1"}
	for _, tc := range []struct {
		name   string
		uri    string
		native bool
		want   bool
	}{
		{"exact https", "https://app.example.com/cb", false, true},
		{"exact loopback", "http://127.0.0.1:8080/callback", false, true},
		{"other port, web app", "http://127.0.0.1:9999/callback", false, false},
		{"other port, native app", "http://127.0.0.1:9999/callback", true, true},
		{"no port, native app", "http://127.0.0.1/callback", true, true},
		{"ipv6 other port, native app", "http://[::1]:5000/cb?x=1", true, true},
		{"other path, native app", "http://127.0.0.1:9999/other", true, false},
		{"other host, native app", "http://localhost:8080/callback", true, false},
		{"other query, native app", "http://[::1]:5000/cb?x=2", true, false},
		{"https path prefix", "https://app.example.com/cb/more", true, false},
		{"https other port, native app", "https://app.example.com:444/cb", true, false},
		{"encoded trick, native app", "http://127.0.0.1:9999/%63allback", true, false},
		{"unregistered", "https://evil.example/cb", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := redirect.MatchApp(tc.uri, registered, tc.native); got != tc.want {
				t.Errorf("MatchApp(%q, native=%v) = %v, want %v", tc.uri, tc.native, got, tc.want)
			}
		})
	}
}

func TestAddIssuer(t *testing.T) {
	t.Parallel()
	const iss = "https://id.example.com"
	for _, tc := range []struct{ name, in, want string }{
		{"code", "https://app.example/cb?code=c&state=s", "https://app.example/cb?code=c&state=s&iss=https%3A%2F%2Fid.example.com"},
		{"no query", "https://app.example/cb", "https://app.example/cb?iss=https%3A%2F%2Fid.example.com"},
		{"error in fragment", "https://app.example/cb#error=invalid_request&state=s", "https://app.example/cb#error=invalid_request&state=s&iss=https%3A%2F%2Fid.example.com"},
		{"already there", "https://app.example/cb?code=c&iss=x", "https://app.example/cb?code=c&iss=x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := redirect.AddIssuer(tc.in, iss); got != tc.want {
				t.Errorf("AddIssuer(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
