package redirect_test

import (
	"net/url"
	"strings"
	"testing"
	"unicode"

	"github.com/nsauth/nsauth/internal/redirect"
)

// FuzzValidateURI: whatever is accepted (outside the allowlist)
// really is a canonical http loopback URI.
func FuzzValidateURI(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:4242/api/auth/callback", "http://[::1]:1/", "http://localhost/cb",
		"http://127.0.0.1@evil/", "http://127.0.0.1.example.com/", "http://0x7f.1/", "http://127.0.0.1:4242/cb#x",
		"http://127.0.0.1:4242/%63b", "https://127.0.0.1/", "http://LOCALHOST/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if redirect.ValidateURI(raw, nil) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted an unparsable URI %q", raw)
		}
		host := u.Hostname()
		if u.Scheme != "http" || (host != "127.0.0.1" && host != "::1" && host != "localhost") || u.User != nil || strings.Contains(raw, "#") || u.String() != raw {
			t.Fatalf("accepted %q (scheme %q host %q)", raw, u.Scheme, host)
		}
		if strings.IndexFunc(raw, unicode.IsControl) >= 0 || strings.ContainsAny(raw, " \\") {
			t.Fatalf("accepted %q with control characters, spaces or backslashes", raw)
		}
	})
}
