package authservice

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Size limits for request fields. They are far above what honest clients
// send and low enough that no field can be used to make the server or the
// provider do real work.
const (
	maxStateLen        = 512
	maxRedirectURILen  = 2048
	maxScopeLen        = 1024
	maxCodeLen         = 2048
	maxRefreshTokenLen = 8192
)

// fieldError is an invalid request field. Its text names the field and the
// rule, never the value.
type fieldError struct {
	field, problem string
}

func (e *fieldError) Error() string { return e.field + " " + e.problem }

// requireText checks a required free-text field: present, bounded, valid
// UTF-8, and free of control characters.
func requireText(field, value string, maxLen int) error {
	if value == "" {
		return &fieldError{field, "is required"}
	}
	if len(value) > maxLen {
		return &fieldError{field, fmt.Sprintf("must be at most %d bytes", maxLen)}
	}
	if !utf8.ValidString(value) {
		return &fieldError{field, "must be valid UTF-8"}
	}
	if strings.IndexFunc(value, unicode.IsControl) >= 0 {
		return &fieldError{field, "must not contain control characters"}
	}
	return nil
}

// requireVisibleASCII checks a required opaque credential (a code or a
// token): present, bounded, and made of visible ASCII only (RFC 6749
// VSCHAR without space).
func requireVisibleASCII(field, value string, maxLen int) error {
	if value == "" {
		return &fieldError{field, "is required"}
	}
	if len(value) > maxLen {
		return &fieldError{field, fmt.Sprintf("must be at most %d bytes", maxLen)}
	}
	for i := 0; i < len(value); i++ {
		if value[i] < 0x21 || value[i] > 0x7e {
			return &fieldError{field, "must contain only visible ASCII characters"}
		}
	}
	return nil
}

// normalizeScope checks a scope parameter (RFC 6749 §3.3: space-separated
// scope-tokens of %x21 / %x23-5B / %x5D-7E) against an optional allowlist
// and returns it joined by single spaces.
func normalizeScope(scope string, allowed map[string]bool) (string, error) {
	if err := requireText("scope", scope, maxScopeLen); err != nil {
		return "", err
	}
	tokens := strings.Split(scope, " ")
	kept := tokens[:0]
	for _, t := range tokens {
		if t == "" {
			continue
		}
		for i := 0; i < len(t); i++ {
			c := t[i]
			if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return "", &fieldError{"scope", "must be space-separated scope tokens (RFC 6749 §3.3)"}
			}
		}
		if len(allowed) > 0 && !allowed[t] {
			return "", &fieldError{"scope", "requests a scope this server does not allow"}
		}
		kept = append(kept, t)
	}
	if len(kept) == 0 {
		return "", &fieldError{"scope", "is required"}
	}
	return strings.Join(kept, " "), nil
}

// ValidateRedirectURI accepts a loopback redirect URI as RFC 8252 §7.3
// describes it (http, host exactly 127.0.0.1, [::1] or localhost, any port)
// or one of the allowed URIs, compared exactly. Everything else is refused,
// including URIs that only parse to a loopback form: the raw string must be
// the URL's canonical spelling, so encoded, padded, userinfo and
// alternative-IP tricks all fail.
func ValidateRedirectURI(raw string, allowed map[string]bool) error {
	if err := requireText("redirect_uri", raw, maxRedirectURILen); err != nil {
		return err
	}
	if allowed[raw] {
		return nil
	}
	refuse := &fieldError{"redirect_uri", "must be a loopback URI (http://127.0.0.1:<port>/…, http://[::1]:<port>/…, http://localhost:<port>/…) or an allowed redirect URI"}
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
	return nil
}

// loopbackHost accepts exactly 127.0.0.1, [::1] or localhost, optionally
// followed by a canonical port number.
func loopbackHost(host string) bool {
	for _, name := range []string{"127.0.0.1", "[::1]", "localhost"} {
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

// validatePKCEChallenge accepts an S256 challenge: 43 base64url characters
// (a SHA-256 digest, unpadded). "plain" is refused (RFC 9700 §2.1.1). No
// challenge at all is accepted unless required.
func validatePKCEChallenge(challenge, method *string, required bool) (string, string, error) {
	if challenge == nil && method == nil {
		if required {
			return "", "", errPKCERequired("code_challenge")
		}
		return "", "", nil
	}
	if challenge == nil || *challenge == "" {
		return "", "", &fieldError{"code_challenge", "is required when code_challenge_method is set"}
	}
	if method == nil || *method != "S256" {
		return "", "", &fieldError{"code_challenge_method", `must be "S256"`}
	}
	if len(*challenge) != 43 || !isBase64URL(*challenge) {
		return "", "", &fieldError{"code_challenge", "must be an unpadded base64url SHA-256 digest (43 characters)"}
	}
	return *challenge, *method, nil
}

// errPKCERequired refuses a request that leaves out the PKCE field the
// server requires. A missing field is a malformed request, not a failed
// proof: callers report it as an invalid argument.
func errPKCERequired(field string) error {
	return &fieldError{field, `is required: this server requires PKCE (S256)`}
}

// requirePKCEVerifier refuses a missing verifier when PKCE is required. A
// verifier that is present but malformed is [validatePKCEVerifier]'s to
// judge.
func requirePKCEVerifier(verifier *string, required bool) error {
	if required && verifier == nil {
		return errPKCERequired("code_verifier")
	}
	return nil
}

// validatePKCEVerifier accepts a verifier as RFC 7636 §4.1 defines it.
func validatePKCEVerifier(verifier *string) (string, error) {
	if verifier == nil {
		return "", nil
	}
	v := *verifier
	if len(v) < 43 || len(v) > 128 {
		return "", &fieldError{"code_verifier", "must be 43 to 128 characters long"}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !isUnreserved(c) {
			return "", &fieldError{"code_verifier", "must contain only unreserved characters (RFC 7636 §4.1)"}
		}
	}
	return v, nil
}

func isUnreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
