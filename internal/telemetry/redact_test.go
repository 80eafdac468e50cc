package telemetry

import "testing"

func TestRedactText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"plain text", "no url here", "no url here"},
		{"URL without query", "https://idp.example/token", "https://idp.example/token"},
		{"authorize URL", "https://idp.example/authorize?state=s3cr3t&code_challenge=abc", "https://idp.example/authorize"},
		{"callback in an error", `Get "http://127.0.0.1:4242/cb?code=xyz": dial tcp: refused`, `Get "http://127.0.0.1:4242/cb": dial tcp: refused`},
		{"user info and fragment", "https://u:p@idp.example/x#frag?a=b", "https://idp.example/x"},
		{"request target", "/authorize?state=s3cr3t", "/authorize"},
		{"target after a space", "GET /callback?code=xyz HTTP/1.1", "GET /callback HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := redactText(tc.in); got != tc.want {
				t.Errorf("redactText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
