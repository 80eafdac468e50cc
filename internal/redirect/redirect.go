// Package redirect is the one rule for where an authorization response may
// be sent, shared by the AuthService (which builds authorize URLs for
// clients) and the built-in provider (which redirects browsers there): a
// loopback redirect URI as RFC 8252 §7.3 describes it, or one the operator
// allowed, and bounds on what travels with it. The two must agree, or the
// provider refuses a URL the AuthService handed out.
package redirect

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nsauth/nsauth/pkg/loopbackhost"
)

// Size limits. They are far above what honest clients send and low enough
// that no value can make the server or the provider do real work.
const (
	// MaxStateLen bounds the state a client asks to get back on its
	// redirect URI.
	MaxStateLen = 512
	// MaxURILen bounds a redirect URI.
	MaxURILen = 2048
)

// loopbackHosts are the host names a loopback redirect URI may use, with
// any port (RFC 8252 §7.3; `localhost` is tolerated: §8.3 discourages it,
// but many clients send it), spelled exactly so: a redirect URI is
// compared as a string.
var loopbackHosts = loopbackhost.URLHosts()

// FieldError is an invalid request field. Its text names the field and the
// rule, never the value.
type FieldError struct {
	Field, Problem string
}

func (e *FieldError) Error() string { return e.Field + " " + e.Problem }

// RequireText checks a required free-text field: present, at most maxLen
// bytes, valid UTF-8, and free of control characters.
func RequireText(field, value string, maxLen int) error {
	if value == "" {
		return &FieldError{field, "is required"}
	}
	if len(value) > maxLen {
		return &FieldError{field, fmt.Sprintf("must be at most %d bytes", maxLen)}
	}
	if !utf8.ValidString(value) {
		return &FieldError{field, "must be valid UTF-8"}
	}
	if strings.IndexFunc(value, unicode.IsControl) >= 0 {
		return &FieldError{field, "must not contain control characters"}
	}
	return nil
}

// ValidateURI accepts a loopback redirect URI (http, host exactly 127.0.0.1, [::1]
// or localhost, any port) or one of the allowed URIs, compared exactly.
// Everything else is refused with a *[FieldError], including URIs that
// only parse to a loopback form: the raw string must be the URL's
// canonical spelling, so encoded, padded, userinfo and alternative-IP
// tricks all fail.
func ValidateURI(raw string, allowed map[string]bool) error {
	if err := RequireText("redirect_uri", raw, MaxURILen); err != nil {
		return err
	}
	if allowed[raw] {
		return nil
	}
	refuse := &FieldError{"redirect_uri", "must be a loopback URI (http://127.0.0.1:<port>/…, http://[::1]:<port>/…, http://localhost:<port>/…) or an allowed redirect URI"}
	u, err := url.Parse(raw)
	if err != nil || u.String() != raw {
		return refuse
	}
	if u.Scheme != "http" || u.Opaque != "" || u.User != nil || u.Fragment != "" || u.RawFragment != "" || strings.Contains(raw, "#") {
		return refuse
	}
	if !loopbackHost(u.Host) {
		return refuse
	}
	if u.Path != "" && !strings.HasPrefix(u.Path, "/") {
		return refuse
	}
	// Percent-encoding where none is needed (/%63b for /cb) is a spelling
	// trick, not a different callback.
	if (&url.URL{Path: u.Path}).EscapedPath() != u.EscapedPath() {
		return refuse
	}
	if !rfc3986Query(u.RawQuery) {
		return refuse
	}
	return nil
}

// rfc3986Query accepts a query made only of what RFC 3986 §3.4 allows
// there, with well-formed percent-encodings. url.Parse keeps a query
// verbatim, so a space, a backslash or a stray % would otherwise pass.
func rfc3986Query(q string) bool {
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == '%':
			if i+2 >= len(q) || !isHexDigit(q[i+1]) || !isHexDigit(q[i+2]) {
				return false
			}
			i += 2
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~!$&'()*+,;=:@/?", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// loopbackHost accepts exactly one of loopbackHosts, optionally followed by
// a canonical port number.
func loopbackHost(host string) bool {
	for _, name := range loopbackHosts {
		if host == name {
			return true
		}
		if port, ok := strings.CutPrefix(host, name+":"); ok {
			n, err := strconv.Atoi(port)
			return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == port
		}
	}
	return false
}
