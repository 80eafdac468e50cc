package storage

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// accessTokenType is the JOSE `typ` of access tokens (RFC 9068 §2.1). It
// lets a resource server refuse an ID token presented as an access token.
const accessTokenType = "at+jwt"

// SessionIDClaim is the ID token claim naming the session the token belongs
// to (OpenID Connect Front-Channel Logout 1.0 §3). Its value is the grant
// id: the auth request that the login completed, and the family id of the
// refresh tokens issued from it, so it stays the same across refreshes.
const SessionIDClaim = "sid"

// accessTokenClaims are the claims of an RFC 9068 access token.
type accessTokenClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	ID       string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	AuthTime int64    `json:"auth_time,omitempty"`
	// AMR is how the user authenticated (RFC 8176), as the ID token says:
	// a resource server can tell a login with a second factor from one
	// without. Machine tokens have none.
	AMR []string `json:"amr,omitempty"`
	// Groups are the user's groups when the grant includes the `groups`
	// scope (RFC 9068 §2.2.3.1): nsauth groups and, prefixed with their
	// connector, the groups a connector reported; read when the token is
	// issued. Machine tokens have none.
	Groups []string `json:"groups,omitempty"`
}

// AccessTokenSubject is what an access token is signed for: a user's
// grant (a tokenRequest) or a machine client (machineSubject).
type AccessTokenSubject interface {
	GetSubject() string
	GetScopes() []string
	GetAuthTime() time.Time
}

// SignAccessToken signs the access token whose record (jti, exp) the
// storage created.
func (s *core) SignAccessToken(ctx context.Context, req AccessTokenSubject, clientID, jti string, exp time.Time) (string, error) {
	key, err := s.keys.signing(ctx)
	if err != nil {
		return "", InternalError("loading the signing key", err)
	}
	claims := accessTokenClaims{
		Issuer:   s.cfg.Issuer,
		Subject:  req.GetSubject(),
		Audience: s.tokenAudience(nil),
		Expiry:   exp.Unix(),
		IssuedAt: s.cfg.Now().Unix(),
		ID:       jti,
		ClientID: clientID,
		Scope:    strings.Join(req.GetScopes(), " "),
	}
	if t := req.GetAuthTime(); !t.IsZero() {
		claims.AuthTime = t.Unix()
	}
	if r, ok := req.(interface{ GetAMR() []string }); ok {
		claims.AMR = r.GetAMR()
	}
	if r, ok := req.(interface{ GetResources() []string }); ok {
		claims.Audience = s.tokenAudience(r.GetResources())
	}
	if _, user := req.(tokenRequest); user && slices.Contains(req.GetScopes(), ScopeGroups) {
		if claims.Groups, err = s.store.UserGroups(ctx, req.GetSubject()); err != nil {
			return "", InternalError("reading the user's groups", err)
		}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", InternalError("encoding the access token", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: key.alg, Key: jose.JSONWebKey{Key: key.priv, KeyID: key.id}},
		(&jose.SignerOptions{}).WithType(accessTokenType),
	)
	if err != nil {
		return "", InternalError("preparing the signer", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", InternalError("signing the access token", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", InternalError("serializing the access token", err)
	}
	return out, nil
}

// NoOpaqueTokens is the library's Crypto: it encrypts opaque access tokens
// and decrypts presented ones. nsauth issues only JWT access tokens and
// random codes, so it refuses both directions; without it the library
// would accept tokens "encrypted" with a configured (or zero) key.
type NoOpaqueTokens struct{}

func (NoOpaqueTokens) Encrypt(string) (string, error) { return "", errOpaque }
func (NoOpaqueTokens) Decrypt(string) (string, error) { return "", errOpaque }

var errOpaque = opaqueError{}

type opaqueError struct{}

func (opaqueError) Error() string { return "opaque tokens are not issued by this provider" }
