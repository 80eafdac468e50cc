package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// allowedSkip is one line of the allow-list: a test that may skip, and why.
type allowedSkip struct {
	line    int
	pattern string
	re      *regexp.Regexp // nil when the pattern is not a valid regexp
	reason  string
	used    int
}

// matches reports whether the test name is the pattern, or matches it as a
// regexp anchored at both ends.
func (a *allowedSkip) matches(test string) bool {
	return test == a.pattern || a.re != nil && a.re.MatchString(test)
}

// parseAllowList reads one allowed skip per line: a test name or regexp,
// then a space and a `#` comment saying why it may skip (test names never
// contain a space, but may contain `#`). Blank lines and lines that are
// only a comment are ignored. A pattern without a reason is an error: the
// list exists so that every skip in CI is explained.
func parseAllowList(r io.Reader) ([]*allowedSkip, error) {
	var list []*allowedSkip
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		pattern, reason, ok := strings.Cut(text, " #")
		pattern, reason = strings.TrimSpace(pattern), strings.TrimSpace(reason)
		if !ok || reason == "" {
			return nil, fmt.Errorf("line %d: %q has no `# reason`", n, pattern)
		}
		a := &allowedSkip{line: n, pattern: pattern, reason: reason}
		if re, err := regexp.Compile("^(?:" + pattern + ")$"); err == nil {
			a.re = re
		}
		list = append(list, a)
	}
	return list, sc.Err()
}
