// Package connectors keeps the login methods that sign people in with an
// identity they already have (OpenID Connect, GitHub, LDAP), the bindings
// of nsauth users to upstream identities, and the sign-ins waiting at an
// upstream provider.
//
// A user is bound to (connector, upstream subject), never to a name or an
// email: an identity row is the only way a connector sign-in finds a user.
// Connector secrets (a client secret, an LDAP bind password) and any
// upstream state kept for refresh checks are sealed like the store's other
// secrets; reading them needs the store's keyring.
package connectors

import (
	"context"
	"errors"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/internal/sealing"
	"github.com/nsauth/nsauth/internal/store/users"
)

// Types of connectors.
const (
	TypeOIDC   = "oidc"
	TypeGitHub = "github"
	TypeLDAP   = "ldap"
)

// MaxNameLen bounds a connector's name.
const MaxNameLen = 32

// Connector is one login method backed by an upstream identity source.
type Connector struct {
	// Name identifies the connector: 1 to 32 characters from a-z, 0-9
	// and -, starting with a letter. It names the callback path and
	// prefixes the groups the connector maps.
	Name string
	// Type is TypeOIDC, TypeGitHub or TypeLDAP.
	Type string
	// DisplayName is what the login page's button says ("Continue with
	// DisplayName"); the name when empty.
	DisplayName string
	// Settings is the type's settings as JSON (connector.OIDCSettings,
	// connector.GitHubSettings, connector.LDAPSettings); never a secret.
	Settings []byte
	// Secret is the client secret or the LDAP bind password, in clear
	// here and sealed in the database. Empty when there is none, and in
	// listings (Connectors), which do not open secrets.
	Secret string
	// CreateUsers: a first sign-in creates the nsauth user.
	CreateUsers bool
	// TrustUpstreamMFA: an upstream amr that says it did a second factor
	// counts as nsauth's second factor.
	TrustUpstreamMFA bool
	CreatedAt        time.Time
	UpdatedAt        time.Time
	// DisabledAt is when it was disabled; zero when enabled.
	DisabledAt time.Time
}

// Disabled reports whether the connector is disabled.
func (c *Connector) Disabled() bool { return !c.DisabledAt.IsZero() }

// Identity binds an nsauth user to an upstream identity.
type Identity struct {
	Connector string
	// Subject is the upstream's stable id (OIDC sub, GitHub numeric id,
	// LDAP entry's unique attribute).
	Subject string
	UserID  string
	// Groups are the upstream groups seen at the last sign-in, each
	// prefixed with the connector's name and a colon ("github:acme/ops").
	Groups []string
	// State is what a refresh check needs (the LDAP entry's DN): in
	// clear here, sealed in the database; empty when nothing is kept.
	State       string
	CreatedAt   time.Time
	LastLoginAt time.Time
	// CheckedAt is when the upstream last confirmed the identity (a
	// sign-in or a refresh check).
	CheckedAt time.Time
}

// Pending is a sign-in waiting at an upstream provider, stored under the
// digest of its key (the state sent upstream joined to the browser's CSRF
// token), single use.
type Pending struct {
	Connector string
	// AuthRequest is the sealed auth request the sign-in is for.
	AuthRequest string
	ExpiresAt   time.Time
}

// ErrNotImplemented is the skeleton's placeholder (issue 28).
var ErrNotImplemented = errors.New("not implemented")

// ConnectorStore keeps connectors, identities and pending sign-ins.
type ConnectorStore struct {
	db    *core.DB
	keys  *sealing.Keys
	users *users.UserStore
}

// New returns the connectors of db, whose secrets keys seal.
func New(db *core.DB, keys *sealing.Keys, us *users.UserStore) *ConnectorStore {
	return &ConnectorStore{db: db, keys: keys, users: us}
}

// CreateConnector stores c (Secret sealed). ErrConflict when the name is
// taken.
func (s *ConnectorStore) CreateConnector(ctx context.Context, c *Connector) error {
	return ErrNotImplemented
}

// ConnectorByName returns the connector with its secret opened.
// ErrNotFound when there is none.
func (s *ConnectorStore) ConnectorByName(ctx context.Context, name string) (*Connector, error) {
	return nil, ErrNotImplemented
}

// Connectors lists every connector by name, secrets left empty (no
// keyring needed).
func (s *ConnectorStore) Connectors(ctx context.Context) ([]Connector, error) {
	return nil, ErrNotImplemented
}

// UpdateConnector reads the connector, lets change edit it (Name and Type
// are kept; an empty Secret keeps the stored one) and writes it back, in
// one transaction. ErrNotFound when there is none.
func (s *ConnectorStore) UpdateConnector(ctx context.Context, name string, change func(*Connector) error) error {
	return ErrNotImplemented
}

// SetConnectorDisabled disables or enables a connector. ErrNotFound when
// there is none.
func (s *ConnectorStore) SetConnectorDisabled(ctx context.Context, name string, disabled bool) error {
	return ErrNotImplemented
}

// DeleteConnector deletes a connector and the identities bound through it
// (the users stay). ErrNotFound when there is none.
func (s *ConnectorStore) DeleteConnector(ctx context.Context, name string) error {
	return ErrNotImplemented
}

// LinkIdentity binds id.UserID to (id.Connector, id.Subject).
// ErrConflict when that identity is bound already, or the user has an
// identity of that connector; ErrNotFound when the user or connector does
// not exist.
func (s *ConnectorStore) LinkIdentity(ctx context.Context, id *Identity) error {
	return ErrNotImplemented
}

// CreateUserWithIdentity creates u (without a password: PasswordHash
// empty, so the password form never lets them in) bound to id, in one
// transaction; id.UserID is set. ErrConflict when the username or the
// identity is taken.
func (s *ConnectorStore) CreateUserWithIdentity(ctx context.Context, u *users.User, id *Identity) error {
	return ErrNotImplemented
}

// IdentityBySubject returns the identity bound to (connector, subject).
// ErrNotFound when none.
func (s *ConnectorStore) IdentityBySubject(ctx context.Context, connector, subject string) (*Identity, error) {
	return nil, ErrNotImplemented
}

// IdentitiesOfUser lists a user's identities, by connector.
func (s *ConnectorStore) IdentitiesOfUser(ctx context.Context, userID string) ([]Identity, error) {
	return nil, ErrNotImplemented
}

// RecordIdentityLogin notes a sign-in through an identity: its groups,
// state, LastLoginAt and CheckedAt = at.
func (s *ConnectorStore) RecordIdentityLogin(ctx context.Context, connector, subject string, groups []string, state string, at time.Time) error {
	return ErrNotImplemented
}

// SetIdentityChecked sets CheckedAt after a refresh check.
func (s *ConnectorStore) SetIdentityChecked(ctx context.Context, connector, subject string, at time.Time) error {
	return ErrNotImplemented
}

// UnlinkIdentity removes a binding. ErrNotFound when none.
func (s *ConnectorStore) UnlinkIdentity(ctx context.Context, connector, subject string) error {
	return ErrNotImplemented
}

// UserGroups returns the groups of every identity of the user, sorted,
// without duplicates.
func (s *ConnectorStore) UserGroups(ctx context.Context, userID string) ([]string, error) {
	return nil, ErrNotImplemented
}

// MaxPendingLogins bounds the pending sign-ins kept in all (unauthenticated
// requests create them): CreatePendingLogin fails with ErrFull beyond it,
// after deleting expired ones.
const MaxPendingLogins = 100000

// ErrFull means too many sign-ins are waiting at upstream providers.
var ErrFull = errors.New("too many sign-ins waiting")

// CreatePendingLogin stores p under the digest of key.
func (s *ConnectorStore) CreatePendingLogin(ctx context.Context, key string, p *Pending) error {
	return ErrNotImplemented
}

// TakePendingLogin returns and deletes the pending sign-in stored under
// key; ErrNotFound when there is none or it has expired.
func (s *ConnectorStore) TakePendingLogin(ctx context.Context, key string) (*Pending, error) {
	return nil, ErrNotImplemented
}
