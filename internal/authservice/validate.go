package authservice

import (
	"fmt"
	"strings"

	"github.com/nsauth/nsauth/internal/redirect"
)

// Size limits for request fields. They are far above what honest clients
// send and low enough that no field can be used to make the server or the
// provider do real work. The state and redirect URI limits are the
// provider's too: package redirect holds them.
const (
	maxScopeLen        = 1024
	maxCodeLen         = 2048
	maxRefreshTokenLen = 8192
)

// fieldError refuses a request field the way the redirect rule does, so
// that every field is refused alike: naming the field and the rule, never
// the value.
func fieldError(field, problem string) error {
	return &redirect.FieldError{Field: field, Problem: problem}
}

// requireVisibleASCII checks a required opaque credential (a code or a
// token): present, bounded, and made of visible ASCII only (RFC 6749
// VSCHAR without space).
func requireVisibleASCII(field, value string, maxLen int) error {
	if value == "" {
		return fieldError(field, "is required")
	}
	if len(value) > maxLen {
		return fieldError(field, fmt.Sprintf("must be at most %d bytes", maxLen))
	}
	for i := 0; i < len(value); i++ {
		if value[i] < 0x21 || value[i] > 0x7e {
			return fieldError(field, "must contain only visible ASCII characters")
		}
	}
	return nil
}

// normalizeScope checks a scope parameter (RFC 6749 §3.3: space-separated
// scope-tokens of %x21 / %x23-5B / %x5D-7E) against an optional allowlist
// and returns it joined by single spaces.
func normalizeScope(scope string, allowed map[string]bool) (string, error) {
	if err := redirect.RequireText("scope", scope, maxScopeLen); err != nil {
		return "", err
	}
	if normalized, err := normalScope(scope, allowed); err != nil {
		return "", err
	} else if normalized {
		return scope, nil
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
				return "", fieldError("scope", "must be space-separated scope tokens (RFC 6749 §3.3)")
			}
		}
		if len(allowed) > 0 && !allowed[t] {
			return "", fieldError("scope", "requests a scope this server does not allow")
		}
		kept = append(kept, t)
	}
	if len(kept) == 0 {
		return "", fieldError("scope", "is required")
	}
	return strings.Join(kept, " "), nil
}

// normalScope judges, without allocating, the usual scope: tokens joined
// by single spaces, nothing around them. It reports false (and no error)
// for a scope that needs normalizing, which normalizeScope then does; the
// token rules are the same.
func normalScope(scope string, allowed map[string]bool) (bool, error) {
	for rest := scope; ; {
		t, tail, more := strings.Cut(rest, " ")
		if t == "" {
			return false, nil // leading, trailing or doubled space, or empty
		}
		for i := 0; i < len(t); i++ {
			c := t[i]
			if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return false, fieldError("scope", "must be space-separated scope tokens (RFC 6749 §3.3)")
			}
		}
		if len(allowed) > 0 && !allowed[t] {
			return false, fieldError("scope", "requests a scope this server does not allow")
		}
		if !more {
			return true, nil
		}
		rest = tail
	}
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
		return "", "", fieldError("code_challenge", "is required when code_challenge_method is set")
	}
	if method == nil || *method != "S256" {
		return "", "", fieldError("code_challenge_method", `must be "S256"`)
	}
	if len(*challenge) != 43 || !isBase64URL(*challenge) {
		return "", "", fieldError("code_challenge", "must be an unpadded base64url SHA-256 digest (43 characters)")
	}
	return *challenge, *method, nil
}

// errPKCERequired refuses a request that leaves out the PKCE field the
// server requires. A missing field is a malformed request, not a failed
// proof: callers report it as an invalid argument.
func errPKCERequired(field string) error {
	return fieldError(field, `is required: this server requires PKCE (S256)`)
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
		return "", fieldError("code_verifier", "must be 43 to 128 characters long")
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !isUnreserved(c) {
			return "", fieldError("code_verifier", "must contain only unreserved characters (RFC 7636 §4.1)")
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
