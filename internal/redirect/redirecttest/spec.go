// Package redirecttest restates the redirect-URI rule for tests, apart
// from the code that applies it (internal/redirect), so fuzz targets can
// judge the validator and the RPCs by an oracle that shares nothing with
// them. Only tests import it.
package redirecttest

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The oracle below restates the redirect-URI rule from its sources (RFC 8252
// §7.3 for loopback redirects, RFC 3986 for the URI grammar, and the setting
// NSAUTH_ALLOWED_REDIRECT_URIS in docs/configuration.md: loopback URIs are
// always accepted, other URIs only when allowed, compared exactly) without
// calling or importing the code under test. The size
// limits are literals on purpose, not the package's constants: a change to
// a limit must be made here too, deliberately.
const (
	MaxRedirectURIBytes  = 2048
	MaxStateBytes        = 512
	MaxScopeBytes        = 1024
	MaxCodeBytes         = 2048
	MaxRefreshTokenBytes = 8192
)

// specLoopbackHosts are the hosts RFC 8252 §7.3 allows, spelled exactly.
var specLoopbackHosts = []string{"127.0.0.1", "[::1]", "localhost"}

// MayBeAccepted is the most the validator may accept: a bounded,
// printable string that is either exactly an allowed URI, or
// http://<loopback host>[:<port>] followed by an RFC 3986 path and query in
// their canonical spelling, with no userinfo and no fragment.
func MayBeAccepted(raw string, allowed []string) bool {
	if !specText(raw, MaxRedirectURIBytes) {
		return false
	}
	for _, a := range allowed {
		if raw == a {
			return true
		}
	}
	path, query, hasQuery, ok := specLoopbackSplit(raw)
	if !ok {
		return false
	}
	if !specPath(path) {
		return false
	}
	return !hasQuery || specQuery(query)
}

// MustBeAccepted is a core every honest client stays inside, which
// the validator must accept: an allowed URI, or a loopback URI whose path
// segments and query use only unreserved characters (and = and & in the
// query).
func MustBeAccepted(raw string, allowed []string) bool {
	if !specText(raw, MaxRedirectURIBytes) {
		return false
	}
	for _, a := range allowed {
		if raw == a {
			return true
		}
	}
	path, query, _, ok := specLoopbackSplit(raw)
	if !ok {
		return false
	}
	if path != "" && path[0] != '/' {
		return false
	}
	for i := 0; i < len(path); i++ {
		if path[i] != '/' && !specUnreserved(path[i]) {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if query[i] != '=' && query[i] != '&' && !specUnreserved(query[i]) {
			return false
		}
	}
	return true
}

// specText: present, at most max bytes, valid UTF-8, no control characters.
func specText(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// specLoopbackSplit parses http://host[:port]path[?query] with a loopback
// host, a canonical port (1–65535, no leading zero), no userinfo and no
// fragment, and returns the path and query.
func specLoopbackSplit(raw string) (path, query string, hasQuery, ok bool) {
	rest, found := strings.CutPrefix(raw, "http://")
	if !found || strings.Contains(raw, "#") {
		return "", "", false, false
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if !specLoopbackAuthority(authority) {
		return "", "", false, false
	}
	path, query, hasQuery = strings.Cut(tail, "?")
	return path, query, hasQuery, true
}

func specLoopbackAuthority(authority string) bool {
	for _, host := range specLoopbackHosts {
		if authority == host {
			return true
		}
		port, found := strings.CutPrefix(authority, host+":")
		if !found {
			continue
		}
		if port == "" || port[0] == '0' || len(port) > 5 {
			return false
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return false
			}
		}
		n, err := strconv.Atoi(port)
		return err == nil && n <= 65535
	}
	return false
}

// specPath: empty, or "/" then RFC 3986 pchars and slashes, where a
// percent-encoding uses upper-case hex (the canonical form, §6.2.2.1) and
// never stands for an unreserved character (§2.3: such an encoding is only
// another spelling of the same URI).
func specPath(path string) bool {
	if path == "" {
		return true
	}
	if path[0] != '/' {
		return false
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case c == '%':
			if i+2 >= len(path) || !specUpperHex(path[i+1]) || !specUpperHex(path[i+2]) {
				return false
			}
			v, _ := strconv.ParseUint(path[i+1:i+3], 16, 8)
			if specUnreserved(byte(v)) {
				return false
			}
			i += 2
		case c == '/' || specUnreserved(c) || specSubDelim(c) || c == ':' || c == '@':
		default:
			return false
		}
	}
	return true
}

// specQuery: RFC 3986 §3.4, pchars, "/" and "?", with well-formed
// percent-encodings.
func specQuery(query string) bool {
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '%':
			if i+2 >= len(query) || !specHex(query[i+1]) || !specHex(query[i+2]) {
				return false
			}
			i += 2
		case c == '/' || c == '?' || specUnreserved(c) || specSubDelim(c) || c == ':' || c == '@':
		default:
			return false
		}
	}
	return true
}

func specUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func specSubDelim(c byte) bool { return strings.IndexByte("!$&'()*+,;=", c) >= 0 }

func specUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func specHex(c byte) bool { return specUpperHex(c) || 'a' <= c && c <= 'f' }
