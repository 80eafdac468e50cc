package redirect_test

import (
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/redirect"
)

func TestValidateURI(t *testing.T) {
	t.Parallel()
	allowed := map[string]bool{"https://app.example.com/callback": true}
	accept := []string{
		"http://127.0.0.1:4242/cb?a=b&c=%2F:@/?",
		"http://127.0.0.1:4242/api/auth/callback",
		"http://127.0.0.1:1/",
		"http://127.0.0.1:65535/cb?x=1",
		"http://127.0.0.1/cb",
		"http://[::1]:8000/cb",
		"http://localhost:53682/",
		"http://localhost:53682",
		"https://app.example.com/callback",
	}
	refuse := []string{
		"",
		"http://127.0.0.1/cb?a b",      // a space in the query (RFC 3986 §3.4)
		"http://127.0.0.1/cb?x=%zz",    // a malformed percent-encoding
		"http://127.0.0.1/cb?x=%4",     // a truncated one
		"http://127.0.0.1/cb?x=\\evil", // a backslash
		"http://127.0.0.1/cb?x=é",      // non-ASCII
		"https://evil.example/cb",
		"http://evil.example/cb",
		"http://127.0.0.1.example.com/cb",
		"http://127.0.0.1@evil.example/cb",
		"http://evil.example@127.0.0.1/cb",
		"http://user:pass@127.0.0.1:4242/cb",
		"http://2130706433/cb",
		"http://0x7f.0.0.1/cb",
		"http://127.1/cb",
		"http://0177.0.0.1/cb",
		"http://127.0.0.2/cb",
		"http://[0:0:0:0:0:0:0:1]/cb",
		"http://[::ffff:127.0.0.1]/cb",
		"http://LOCALHOST:4242/cb",
		"http://localhost.:4242/cb",
		"http://127.0.0.1:0/cb",
		"http://127.0.0.1:65536/cb",
		"http://127.0.0.1:04242/cb",
		"http://127.0.0.1:42a/cb",
		"http://127.0.0.1:4242/cb#frag",
		"http://127.0.0.1:4242/cb#",
		"http://127.0.0.1:4242/c b",
		"http://127.0.0.1:4242/cb\n",
		" http://127.0.0.1:4242/cb",
		"http://127.0.0.1:4242/%63b",
		"http://%31%32%37.0.0.1:4242/cb",
		"HTTP://127.0.0.1:4242/cb",
		"https://127.0.0.1:4242/cb",
		"javascript://127.0.0.1/%0aalert(1)",
		"file:///etc/passwd",
		"ftp://127.0.0.1/cb",
		"//127.0.0.1:4242/cb",
		"127.0.0.1:4242/cb",
		"http:127.0.0.1:4242/cb",
		"http://127.0.0.1:4242\\@evil.example/",
		"https://app.example.com/callback/",
		"https://app.example.com/callback?x",
		"http://127.0.0.1:4242/" + strings.Repeat("a", 2048),
	}
	for _, u := range accept {
		t.Run("accept "+u, func(t *testing.T) {
			t.Parallel()
			if err := redirect.ValidateURI(u, allowed); err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
	for _, u := range refuse {
		t.Run("refuse "+u, func(t *testing.T) {
			t.Parallel()
			err := redirect.ValidateURI(u, allowed)
			if err == nil {
				t.Fatal("accepted")
			}
			if u != "" && strings.Contains(err.Error(), u) {
				t.Errorf("error echoes the input: %v", err)
			}
		})
	}
}
