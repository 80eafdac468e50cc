// Package storage adapts the store to the OpenID library: it is the
// provider's op.Storage, and issues the token responses of the grants
// whose state it keeps (codes, refresh tokens, device codes).
//
// It stands alone: a [Storage] is built from a [Config] that spells out
// what it depends on (the store, the clock, the settings, the signing
// keys, the sealer of pending auth requests and the event recorder), and
// knows nothing of the issuer that serves it. The library's one
// interface is served by small role types (auth requests, tokens,
// clients, userinfo, keys, devices), each a file's worth, that
// [Storage] embeds.
//
// Every error it hands the library is an *oidc.Error with a fixed
// description: the library writes descriptions to clients, and a
// database error must not reach them. Details travel as the error's
// parent, which the library logs.
package storage

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/stringset"
)

// Bounds on what the library hands the storage: far above what honest
// clients send.
const (
	MaxScopes        = 32
	MaxScopeLen      = 128
	MaxClientIDLen   = 128
	maxRefreshLength = 512
)

// CodeTTL is the lifetime of an authorization code.
const CodeTTL = 60 * time.Second

// ErrRequestTooLarge is what a Sealer fails with when an auth request is
// too large to seal.
var ErrRequestTooLarge = errors.New("the auth request is too large")

// Sealer seals the pending auth requests, which are stored nowhere until
// a user logs in for them.
type Sealer interface {
	Seal(ar *store.AuthRequest) (string, error)
	Open(sealed string) (*store.AuthRequest, error)
}

// Config is what a Storage depends on. Every field is required unless
// it says otherwise.
type Config struct {
	Store *store.Store
	// Now is the clock.
	Now func() time.Time
	// Issuer is the issuer URL; Audience the `aud` of access tokens;
	// ClientID the broker's client, which introspects machine tokens.
	Issuer, Audience, ClientID string
	// LoginURL is the login page, where the library sends browsers.
	LoginURL string
	// DeviceURI is the verification URI of the device flow.
	DeviceURI string
	// The lifetimes (issuer.Config's, defaults applied).
	AccessTokenTTL, RefreshTokenTTL, RefreshTokenMaxLifetime time.Duration
	// RefreshReuseGrace is the rotation grace; zero means none.
	RefreshReuseGrace time.Duration
	// DevicePollInterval is the first interval of device polls.
	DevicePollInterval time.Duration
	// RequirePKCE refuses codes issued without a challenge.
	RequirePKCE bool
	// AllowedRedirectURIs are added to the broker's client's (ClientID);
	// AllowedScopes are
	// the scopes beyond the standard ones clients may ask for (a set).
	AllowedRedirectURIs []string
	AllowedScopes       map[string]bool
	Sealer              Sealer
	Keys                *Keys
	Events              *events.Recorder
	// Upstream asks the upstream identity sources at each refresh whether
	// the user may still sign in (connectorflow.Flow); nil asks none.
	Upstream UpstreamCheck
	// Log receives operational messages. Nil discards them.
	Log *slog.Logger
}

// UpstreamCheck asks the upstream identity sources (LDAP directories)
// whether a user may still sign in.
type UpstreamCheck interface {
	// MayRefresh is false when an upstream says the user is gone; an
	// error when one cannot say.
	MayRefresh(ctx context.Context, userID string) (bool, error)
}

// ScopeGroups asks for the user's groups (the groups claim).
const ScopeGroups = "groups"

// Storage is the provider's op.Storage. Its methods are safe for
// concurrent use.
type Storage struct {
	*requests
	*tokens
	*clients
	*userinfo
	*keySet
	*devices
	*core
}

var _ op.Storage = (*Storage)(nil)
var _ op.CanSetUserinfoFromRequest = (*Storage)(nil)
var _ op.ClientCredentialsStorage = (*Storage)(nil)

// core is what every role shares: the dependencies, and the whole Storage
// for what one role asks of another.
type core struct {
	cfg           Config
	store         *store.Store
	sealer        Sealer
	keys          *Keys
	events        *events.Recorder
	log           *slog.Logger
	allowedScopes map[string]bool
	// serverRedirects is cfg.AllowedRedirectURIs as a set.
	serverRedirects map[string]bool
	all             *Storage
}

// The roles: each serves one part of op.Storage.
type (
	requests struct{ *core } // pending and completed auth requests, codes
	tokens   struct{ *core } // access and refresh tokens, token responses
	clients  struct{ *core } // clients and their authentication
	userinfo struct{ *core } // userinfo and introspection
	keySet   struct{ *core } // the signing keys as the library sees them
	devices  struct{ *core } // device authorizations
)

// New returns the Storage of cfg.
func New(cfg Config) *Storage {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	c := &core{cfg: cfg, store: cfg.Store, sealer: cfg.Sealer, keys: cfg.Keys, events: cfg.Events, log: cfg.Log,
		allowedScopes: cfg.AllowedScopes, serverRedirects: stringset.Of(cfg.AllowedRedirectURIs)}
	s := &Storage{requests: &requests{c}, tokens: &tokens{c}, clients: &clients{c}, userinfo: &userinfo{c},
		keySet: &keySet{c}, devices: &devices{c}, core: c}
	c.all = s
	return s
}
