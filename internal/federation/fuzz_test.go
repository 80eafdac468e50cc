package federation_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nsauth/nsauth/internal/federation"
)

// FuzzMatchSubject checks MatchSubject against the documented meaning,
// written as a regular expression: literal text, and [^:]+ for each `*`,
// matching the whole subject. (Subjects come from verified JSON, so they
// are UTF-8; the matcher itself works on bytes.)
func FuzzMatchSubject(f *testing.F) {
	f.Add("repo:acme/app:ref:refs/heads/*", "repo:acme/app:ref:refs/heads/main")
	f.Add("repo:acme/*:ref:refs/heads/main", "repo:acme/app:ref:refs/heads/main")
	f.Add("x:*ab", "x:aab")
	f.Add("a*b*c", "abbbc")
	f.Add("*", "")
	f.Add("system:serviceaccount:ci:*", "system:serviceaccount:ci:a:b")
	f.Fuzz(func(t *testing.T, pattern, subject string) {
		if len(pattern) > 64 || len(subject) > 64 || !utf8.ValidString(pattern) || !utf8.ValidString(subject) {
			return
		}
		parts := strings.Split(pattern, "*")
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		re := regexp.MustCompile(`\A` + strings.Join(parts, `[^:]+`) + `\z`)
		if got, want := federation.MatchSubject(pattern, subject), re.MatchString(subject); got != want {
			t.Fatalf("MatchSubject(%q, %q) = %v, the documented rule says %v", pattern, subject, got, want)
		}
	})
}
