// Package federation trusts the ID tokens other OpenID providers give CI
// jobs and workloads (GitHub Actions, GitLab CI, Buildkite, Kubernetes
// service accounts) as proof of a machine client's identity: the token
// exchange grant (RFC 8693) of the built-in provider turns such a token into
// an nsauth access token for the machine client a trust [Policy] maps it
// to, so a job needs no stored secret.
//
// The package holds the rules only: what a policy is, how a subject
// matches it, and how a foreign token is verified ([Verifier]). Where
// policies are stored and how the exchange is answered is the caller's.
package federation

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nsauth/nsauth/internal/visible"
	"github.com/nsauth/nsauth/pkg/issuerurl"
)

// Policy trusts the tokens of one issuer, for one audience, whose subject
// matches a pattern, as the machine client ClientID.
type Policy struct {
	// ID is the stored policy's id (the grant id of the tokens it yields).
	ID string
	// Name identifies the policy; unique.
	Name string
	// Issuer is the foreign provider's issuer URL, exactly as its tokens
	// spell `iss` (and its discovery document `issuer`).
	Issuer string
	// Audience must be one of the token's `aud` values, exactly.
	Audience string
	// Subject is the pattern the token's `sub` must match (see
	// [MatchSubject]).
	Subject string
	// ClientID is the machine client the token is exchanged for.
	ClientID string
	// MaxTTL caps the lifetime of the access tokens issued under this
	// policy; zero means the client's lifetime alone applies.
	MaxTTL time.Duration
	// CreatedAt is when the policy was added.
	CreatedAt time.Time
}

// Bounds on policy fields, far above real values.
const (
	MaxNameLen     = 64
	MaxIssuerLen   = 512
	MaxAudienceLen = 512
	MaxSubjectLen  = 512
)

// MatchSubject reports whether subject matches pattern.
//
// A pattern without `*` matches only the identical subject. In a pattern,
// `*` stands for one or more characters none of which is a colon, so a
// wildcard never crosses from one field of a CI subject to the next:
// `repo:acme/app:ref:refs/heads/*` matches
// `repo:acme/app:ref:refs/heads/main` and `…/heads/release/1.2`, but not
// `repo:acme/app:ref:refs/heads/` (nothing for the `*`), nor
// `repo:acme/app:ref:refs/heads/x:evil` (a colon). There is no escape and
// no other special character: `?`, `[` and `\` are literal. The whole
// subject must match, not a prefix of it.
func MatchSubject(pattern, subject string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == subject
	}
	return matchGlob(pattern, subject)
}

// matchGlob matches field by field: a wildcard cannot span a colon, so
// pattern and subject must have as many colon-separated fields, and each
// subject field must match its pattern field.
func matchGlob(p, s string) bool {
	if strings.Count(p, ":") != strings.Count(s, ":") {
		return false
	}
	for {
		pf, prest, pmore := strings.Cut(p, ":")
		sf, srest, _ := strings.Cut(s, ":")
		if !matchField(pf, sf) {
			return false
		}
		if !pmore {
			return true
		}
		p, s = prest, srest
	}
}

// matchField matches one field, `*` standing for one or more characters.
// It is the classic linear wildcard match, with each `*` read as "any one
// character, then any number": only the last wildcard is ever backtracked
// to, so the time is at most the product of the lengths, whatever the
// pattern.
func matchField(p, s string) bool {
	px, sx := 0, 0
	star, next := -1, 0 // the last wildcard, and where its match would end if extended
	for sx < len(s) {
		switch {
		case px < len(p) && p[px] == '*':
			// The wildcard's first, mandatory character: a whole one, so
			// that ** needs two characters, not two bytes.
			_, n := utf8.DecodeRuneInString(s[sx:])
			star, next = px, sx+n
			px, sx = px+1, sx+n
		case px < len(p) && p[px] == s[sx]:
			px, sx = px+1, sx+1
		case star >= 0 && next < len(s):
			_, n := utf8.DecodeRuneInString(s[next:])
			next += n
			px, sx = star+1, next
		default:
			return false
		}
	}
	return px == len(p)
}

// CheckPolicy checks a policy before it is stored: every field present and
// bounded, an issuer URL [CheckIssuerURL] accepts and that is none of own
// (the built-in provider's issuer, as configured or as its database
// records it: its tokens are not CI tokens; empty strings are ignored),
// and a subject pattern with a literal part beyond colons and wildcards,
// so that no policy trusts every subject of an issuer by accident.
func CheckPolicy(p *Policy, own ...string) error {
	switch {
	case p.Name == "" || len(p.Name) > MaxNameLen || strings.ContainsFunc(p.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("the policy name must be 1 to %d printable characters without spaces", MaxNameLen)
	case p.Audience == "" || len(p.Audience) > MaxAudienceLen:
		return fmt.Errorf("the audience must be 1 to %d characters", MaxAudienceLen)
	case p.Subject == "" || len(p.Subject) > MaxSubjectLen:
		return fmt.Errorf("the subject pattern must be 1 to %d characters", MaxSubjectLen)
	case strings.Trim(p.Subject, "*:") == "":
		return errors.New("the subject pattern must contain something besides wildcards and colons")
	case strings.Contains(p.Subject, "**"):
		return errors.New("the subject pattern must not contain ** (a wildcard already matches a whole field)")
	case p.ClientID == "":
		return errors.New("a client is required")
	case p.MaxTTL < 0:
		return errors.New("the maximum lifetime must not be negative")
	}
	// Every field is printed by nsauth federation list: text that shows as
	// itself (package visible's rule).
	for _, f := range []struct{ what, value string }{
		{"the policy name", p.Name}, {"the issuer", p.Issuer}, {"the audience", p.Audience}, {"the subject pattern", p.Subject},
	} {
		if err := visible.Check(f.what, f.value); err != nil {
			return err
		}
	}
	if err := CheckIssuerURL(p.Issuer); err != nil {
		return err
	}
	for _, o := range own {
		if o != "" && sameIssuer(p.Issuer, o) {
			return fmt.Errorf("the issuer %q is this server's own: its tokens are not CI tokens and cannot be exchanged", o)
		}
	}
	return nil
}

// sameIssuer compares issuer URLs as the token check would be fooled by:
// exactly, and without a trailing slash.
func sameIssuer(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// CheckIssuerURL accepts an issuer URL of at most [MaxIssuerLen]
// characters that [issuerurl.Check] accepts with a path allowed (some
// providers have one): https, or http on a loopback host for tests and
// local setups, without user info, query or fragment.
func CheckIssuerURL(raw string) error {
	if raw == "" || len(raw) > MaxIssuerLen {
		return fmt.Errorf("the issuer must be a URL of at most %d characters", MaxIssuerLen)
	}
	_, err := issuerurl.Check(raw, issuerurl.Options{AllowPath: true})
	return err
}
