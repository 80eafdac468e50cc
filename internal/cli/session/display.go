package session

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/nsauth/nsauth/internal/visible"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// DisplayText makes untrusted text (claims from a token, which anyone who
// can issue tokens controls) safe for a terminal: characters that do not
// show as themselves (package visible's rule: controls, which could move
// the cursor or retitle the window, and format characters such as
// bidirectional overrides, which reorder what follows) are dropped, and
// the length is bounded.
func DisplayText(s string) string {
	s = strings.Map(func(r rune) rune {
		if visible.Hidden(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

// FormatExpiry says when t is, relative to now.
func FormatExpiry(t, now time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	abs := t.Local().Format("2006-01-02 15:04:05 MST")
	d := t.Sub(now).Round(time.Second)
	if d >= 0 {
		return fmt.Sprintf("%s (in %s)", abs, d)
	}
	return fmt.Sprintf("%s (%s ago)", abs, -d)
}

// FormatPast says when t, a moment in the past, was.
func FormatPast(t, now time.Time) string {
	abs := t.Local().Format("2006-01-02 15:04:05 MST")
	if ago := now.Sub(t).Round(time.Second); ago > 0 {
		return fmt.Sprintf("%s (%s ago)", abs, ago)
	}
	return abs + " (just now)"
}

// Identity is what the ID token says about the user, for display only:
// the signature is not checked.
type Identity struct {
	Subject, Name, Email, Username, Issuer string
}

// IdentityFromTokens reads the user's claims from the ID token, else the
// access token, made safe to print.
func IdentityFromTokens(idToken, accessToken string) Identity {
	var id Identity
	for _, tok := range []string{idToken, accessToken} {
		if tok == "" {
			continue
		}
		claims, err := tokenstore.UnverifiedClaims(tok)
		if err != nil {
			continue
		}
		str := func(k string) string { s, _ := claims[k].(string); return DisplayText(s) }
		fill := func(dst *string, v string) {
			if *dst == "" {
				*dst = v
			}
		}
		fill(&id.Subject, str("sub"))
		fill(&id.Name, str("name"))
		fill(&id.Email, str("email"))
		fill(&id.Username, str("preferred_username"))
		fill(&id.Issuer, str("iss"))
	}
	return id
}

// Who names the user the way people recognise them.
func (id Identity) Who() string {
	switch {
	case id.Name != "" && id.Email != "":
		return id.Name + " <" + id.Email + ">"
	case id.Email != "":
		return id.Email
	case id.Name != "":
		return id.Name
	case id.Username != "":
		return id.Username
	case id.Subject != "":
		return id.Subject
	}
	return "an unnamed user"
}
