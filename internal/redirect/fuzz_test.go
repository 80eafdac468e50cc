package redirect_test

import (
	"testing"

	"github.com/nsauth/nsauth/internal/redirect"
	"github.com/nsauth/nsauth/internal/redirect/redirecttest"
)

// FuzzValidateURI judges the validator by redirecttest.MayBeAccepted and
// redirecttest.MustBeAccepted, a restatement of the rule written apart from
// it: it may accept nothing outside the first, and must accept everything
// inside the second, with one allowed non-loopback URI configured.
func FuzzValidateURI(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:4242/api/auth/callback", "http://[::1]:1/", "http://localhost/cb",
		"http://127.0.0.1@evil/", "http://127.0.0.1.example.com/", "http://0x7f.1/", "http://127.0.0.1:4242/cb#x",
		"http://127.0.0.1:4242/%63b", "https://127.0.0.1/", "http://LOCALHOST/",
		"http://127.0.0.1", "http://127.0.0.1?x=1", "http://localhost:65535/a/b?c=d&e=f", "http://localhost:65536/",
		"http://localhost:080/", "http://127.0.0.1:/", "http://127.0.0.1/c%2fb", "http://127.0.0.1/c%20b",
		"HTTP://127.0.0.1/", "http://127.0.0.1/cb?a b", "http://127.0.0.1/\\evil", "http://[::1]:4242/cb?x=%zz",
		"https://app.example/callback", "https://app.example/callback/", "https://APP.example/callback",
	} {
		f.Add(s)
	}
	allowed := []string{"https://app.example/callback"}
	allowedSet := map[string]bool{allowed[0]: true}
	f.Fuzz(func(t *testing.T, raw string) {
		accepted := redirect.ValidateURI(raw, allowedSet) == nil
		if accepted && !redirecttest.MayBeAccepted(raw, allowed) {
			t.Fatalf("accepted %q, which is neither allowed nor a canonical http loopback URI", raw)
		}
		if !accepted && redirecttest.MustBeAccepted(raw, allowed) {
			t.Fatalf("refused %q, a plain loopback or allowed URI", raw)
		}
	})
}
