// Package connector signs people in with an identity they already have:
// an OpenID Connect provider (Google Workspace, Microsoft Entra, Okta,
// GitLab, ...), GitHub, or an LDAP directory. It speaks the upstream
// protocols only; the login pages, the users they map to and the audit
// trail are the login flow's (internal/issuer/connectorflow).
//
// A connector of a redirecting type (OIDC, GitHub) sends the browser to
// the upstream with state, nonce (OIDC) and PKCE S256, and turns the
// callback into an Identity, checking everything the upstream signed or
// said. A password connector (LDAP) checks a username and password
// against the directory. Every refusal is a *Refusal naming a reason
// category, which the audit trail keeps; its text never holds a token,
// a code or a secret, and never what the upstream sent verbatim.
package connector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/nsauth/nsauth/pkg/noredirect"
)

// Identity is who the upstream says signed in.
type Identity struct {
	// Subject is the upstream's stable id for the person: OIDC `sub`,
	// GitHub's numeric user id, the LDAP entry's unique attribute.
	Subject string
	// Username is a suggested nsauth username (preferred_username, the
	// GitHub login, the LDAP uid); it binds nothing.
	Username string
	Name     string
	// Email is set only when the upstream says it is verified.
	Email string
	// Groups are the upstream's groups, not prefixed (OIDC `groups`
	// claim, GitHub "org/team", LDAP group names).
	Groups []string
	// AMR is the upstream's amr claim (OIDC only), as sent.
	AMR []string
	// State is what a later Check needs (the LDAP entry's DN); empty
	// when Check needs nothing.
	State string
}

// Refusal reason categories (audit trail, tests). What the upstream sent
// is never one of them.
const (
	ReasonUpstreamError    = "upstream_error"     // the upstream answered error=… or failed
	ReasonBadState         = "bad_state"          // state missing, unknown, or of another browser or connector
	ReasonWrongIssuer      = "wrong_issuer"       // iss of the ID token or the RFC 9207 parameter
	ReasonWrongAudience    = "wrong_audience"     // aud/azp not this connector's client
	ReasonBadNonce         = "bad_nonce"          // nonce missing or wrong
	ReasonBadSignature     = "bad_signature"      // not signed by the upstream's keys, alg none or HMAC
	ReasonExpired          = "expired"            // ID token expired or issued in the future
	ReasonUnverifiedEmail  = "unverified_email"   // an email was needed and is not verified
	ReasonDomainNotAllowed = "domain_not_allowed" // the verified email's domain is not allowed
	ReasonNotInOrg         = "not_in_org"         // GitHub org rule
	ReasonNotInTeam        = "not_in_team"        // GitHub team rule
	ReasonWrongCredentials = "wrong_credentials"  // LDAP: unknown user or wrong password
	ReasonNotAllowed       = "not_allowed"        // LDAP: the user filter does not match
	ReasonUserGone         = "user_gone"          // deleted or disabled upstream
	ReasonMalformed        = "malformed"          // a response that does not parse
)

// Refusal is a sign-in the connector refused.
type Refusal struct {
	// Reason is one of the Reason* categories.
	Reason string
	// Message is safe to show the person: it never repeats what the
	// upstream or the person sent.
	Message string
}

func (r *Refusal) Error() string { return fmt.Sprintf("sign-in refused (%s): %s", r.Reason, r.Message) }

// Refused returns a *Refusal.
func Refused(reason, message string) error { return &Refusal{Reason: reason, Message: message} }

// ReasonOf returns the refusal category of err, "" when err is not a
// refusal (the upstream could not be reached, a bug).
func ReasonOf(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

// Redirecting is a connector that signs in at the upstream's pages (OIDC,
// GitHub).
type Redirecting interface {
	// AuthCodeURL is where to send the browser: the upstream's
	// authorization endpoint with state, nonce (where the protocol has
	// one), the PKCE S256 challenge of verifier, and the connector's
	// callback URL. It may fetch the upstream's discovery document.
	AuthCodeURL(ctx context.Context, state, nonce, verifier string) (string, error)
	// Exchange turns the callback's query into an identity: it refuses an
	// error response, checks the RFC 9207 iss parameter (and requires it
	// when the upstream says it sends it), redeems the code with
	// verifier, and checks what it gets (the ID token's signature,
	// algorithm, issuer, audience, expiry and nonce; GitHub's org and
	// team rules; email_verified before any email is used; the allowed
	// domains).
	Exchange(ctx context.Context, callback url.Values, nonce, verifier string) (Identity, error)
}

// PasswordChecker is a connector that checks a username and password
// itself (LDAP).
type PasswordChecker interface {
	// Login checks username and password: a *Refusal with
	// ReasonWrongCredentials for an unknown user or a wrong password,
	// ReasonNotAllowed or ReasonUserGone for one the connector's rules
	// keep out; another error when the directory fails.
	Login(ctx context.Context, username, password string) (Identity, error)
	// Check asks the directory whether the identity (its Subject and the
	// State Login returned) may still sign in: a *Refusal with
	// ReasonUserGone when it was deleted or disabled, or no longer passes
	// the filter.
	Check(ctx context.Context, subject, state string) error
	// CheckInterval is how often Check is worth asking on refresh.
	CheckInterval() time.Duration
}

// Env is what building a connector needs from the server.
type Env struct {
	// Callback is the connector's callback URL at nsauth
	// (issuer/login/connector/NAME/callback).
	Callback string
	// HTTPClient reaches the upstream; nil means a client with a timeout
	// of DefaultTimeout. Build makes a copy that follows no redirect
	// (package noredirect): a code, a client secret or an access token is
	// never sent on to where an answer points.
	HTTPClient *http.Client
	Now        func() time.Time
}

// Build makes the connector of a stored one: typ is "oidc", "github" or
// "ldap", settings its JSON settings (ParseSettings), secret its client
// secret or bind password. The result implements Redirecting or
// PasswordChecker. Build makes no request: an OIDC connector reads its
// provider's discovery document at its first use, and keeps it (and the
// provider's keys) as long as it lives, so a caller that builds one per
// use asks the provider each time and one that keeps it (per name and
// UpdatedAt) does not.
func Build(typ string, settings []byte, secret string, env Env) (any, error) {
	parsed, err := ParseSettings(typ, settings)
	if err != nil {
		return nil, err
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.HTTPClient == nil {
		env.HTTPClient = noredirect.NewClient(nil, DefaultTimeout)
	} else {
		client := *env.HTTPClient
		client.CheckRedirect = noredirect.CheckRedirect
		env.HTTPClient = &client
	}
	var c any
	switch s := parsed.(type) {
	case *OIDCSettings:
		c, err = newOIDC(s, secret, env)
	case *GitHubSettings:
		c, err = newGitHub(s, secret, env)
	case *LDAPSettings:
		c, err = newLDAP(s, secret, env)
	default:
		err = fmt.Errorf("connector type %q has no implementation", typ)
	}
	if err != nil {
		return nil, err // never a typed nil in the any
	}
	return c, nil
}

// DefaultTimeout bounds each request to an upstream when Env.HTTPClient is
// nil.
const DefaultTimeout = 10 * time.Second
