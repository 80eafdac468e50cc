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
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/internal/sealing"
	"github.com/nsauth/nsauth/internal/store/users"
	"github.com/nsauth/nsauth/internal/visible"
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
	// AuthRequest is the sealed auth request the sign-in is for; empty
	// when EnrolLink.
	AuthRequest string
	// EnrolLink: the sign-in proves who opened an enrolment link (a
	// password-less user's, in place of the password); the link's secret
	// is not stored.
	EnrolLink bool
	ExpiresAt time.Time
}

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

// Bounds on what a connector and an identity hold (upstream values
// included: an upstream is not trusted to keep them short).
const (
	// MaxDisplayNameLen bounds a connector's display name, in bytes.
	MaxDisplayNameLen = 128
	// MaxSettingsLen bounds a connector's settings, in bytes of JSON.
	MaxSettingsLen = 64 << 10
	// MaxSecretLen bounds a connector's secret, in bytes.
	MaxSecretLen = 4 << 10
	// MaxSubjectLen bounds an upstream subject, in bytes.
	MaxSubjectLen = 1024
	// MaxGroups bounds the groups kept for one identity: more are
	// refused, so a caller keeps the first MaxGroups (sorted) of what an
	// upstream sends.
	MaxGroups = 1024
	// MaxGroupLen bounds one group, prefix included, in bytes.
	MaxGroupLen = 512
	// MaxStateLen bounds an identity's state, in bytes.
	MaxStateLen = 4 << 10
	// maxAuthRequestLen bounds a pending sign-in's sealed auth request.
	maxAuthRequestLen = 16 << 10
)

// ErrIdentityBound means the upstream identity is bound to a user
// already. It wraps core.ErrConflict (store.ErrConflict), so that
// errors.Is(err, ErrConflict) holds too; a caller that retries a taken
// username with another one tells the two apart by it.
var ErrIdentityBound = fmt.Errorf("the upstream identity is bound to a user already: %w", core.ErrConflict)

// CheckName checks a connector's name: 1 to MaxNameLen characters from
// a-z, 0-9 and -, starting with a letter. The error never quotes it.
func CheckName(name string) error {
	ok := name != "" && len(name) <= MaxNameLen && name[0] >= 'a' && name[0] <= 'z'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
	}
	if !ok {
		return fmt.Errorf("a connector name must be 1 to %d characters from a-z, 0-9 and -, starting with a letter", MaxNameLen)
	}
	return nil
}

// checkConnector checks what a connector stores.
func checkConnector(c *Connector) error {
	if err := CheckName(c.Name); err != nil {
		return err
	}
	switch c.Type {
	case TypeOIDC, TypeGitHub, TypeLDAP:
	default:
		return fmt.Errorf("a connector's type must be %s, %s or %s", TypeOIDC, TypeGitHub, TypeLDAP)
	}
	if len(c.DisplayName) > MaxDisplayNameLen {
		return fmt.Errorf("a connector's display name must be at most %d bytes", MaxDisplayNameLen)
	}
	if err := visible.Check("a connector's display name", c.DisplayName); err != nil {
		return err
	}
	if len(c.Settings) > MaxSettingsLen || !json.Valid(c.Settings) {
		return fmt.Errorf("a connector's settings must be JSON of at most %d bytes", MaxSettingsLen)
	}
	if len(c.Secret) > MaxSecretLen {
		return fmt.Errorf("a connector's secret must be at most %d bytes", MaxSecretLen)
	}
	return nil
}

// checkSubject checks an upstream subject. The error never quotes it.
func checkSubject(subject string) error {
	if subject == "" || len(subject) > MaxSubjectLen {
		return fmt.Errorf("an upstream subject must be 1 to %d bytes", MaxSubjectLen)
	}
	return visible.Check("an upstream subject", subject)
}

// checkGroups checks an identity's groups: each prefixed with the
// connector's name and a colon.
func checkGroups(connector string, groups []string) error {
	if len(groups) > MaxGroups {
		return fmt.Errorf("at most %d groups are kept for an identity", MaxGroups)
	}
	for _, g := range groups {
		if !strings.HasPrefix(g, connector+":") || len(g) == len(connector)+1 || len(g) > MaxGroupLen {
			return fmt.Errorf("a group of connector %s must be %s:NAME, at most %d bytes", connector, connector, MaxGroupLen)
		}
		if err := visible.Check("a group", g); err != nil {
			return err
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sealSecret seals c's secret in tx; nil when it has none.
func (s *ConnectorStore) sealSecret(ctx context.Context, tx *sql.Tx, c *Connector) ([]byte, error) {
	if c.Secret == "" {
		return nil, nil
	}
	sealed, err := s.keys.SealIn(ctx, tx, []byte(c.Secret), sealing.ConnectorSecretAD(c.Name))
	if err != nil {
		return nil, fmt.Errorf("sealing the secret of connector %s: %w", c.Name, err)
	}
	return sealed, nil
}

// CreateConnector stores c (Secret sealed). ErrConflict when the name is
// taken. CreatedAt and UpdatedAt are set.
func (s *ConnectorStore) CreateConnector(ctx context.Context, c *Connector) error {
	if err := checkConnector(c); err != nil {
		return err
	}
	now := s.db.Now()
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		sealed, err := s.sealSecret(ctx, tx, c)
		if err != nil {
			return err
		}
		_, err = s.db.Exec(ctx, tx, `INSERT INTO nsauth_connectors (name, type, display_name, settings, secret, create_users, trust_upstream_mfa, created_at, updated_at, disabled_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.Name, c.Type, c.DisplayName, string(c.Settings), sealed, boolInt(c.CreateUsers), boolInt(c.TrustUpstreamMFA),
			now.UnixMilli(), now.UnixMilli(), core.Millis(c.DisabledAt))
		if err != nil {
			if s.db.Dialect.IsUnique(err) {
				return fmt.Errorf("connector %s: %w", c.Name, core.ErrConflict)
			}
			return fmt.Errorf("creating connector %s: %w", c.Name, err)
		}
		c.CreatedAt, c.UpdatedAt = now, now
		return nil
	})
}

const connectorColumns = `name, type, display_name, settings, secret, create_users, trust_upstream_mfa, created_at, updated_at, disabled_at`

// scanConnector reads a row of connectorColumns; the secret, as stored,
// goes to sealed.
func scanConnector(row core.Scanner, sealed *[]byte) (*Connector, error) {
	var c Connector
	var settings string
	var createUsers, trustMFA int
	var created, updated, disabled sql.NullInt64
	if err := row.Scan(&c.Name, &c.Type, &c.DisplayName, &settings, sealed, &createUsers, &trustMFA, &created, &updated, &disabled); err != nil {
		return nil, err
	}
	c.Settings = []byte(settings)
	c.CreateUsers, c.TrustUpstreamMFA = createUsers != 0, trustMFA != 0
	c.CreatedAt, c.UpdatedAt, c.DisabledAt = core.FromMillis(created), core.FromMillis(updated), core.FromMillis(disabled)
	return &c, nil
}

// ConnectorByName returns the connector with its secret opened.
// ErrNotFound when there is none.
func (s *ConnectorStore) ConnectorByName(ctx context.Context, name string) (*Connector, error) {
	if CheckName(name) != nil {
		return nil, fmt.Errorf("connector: %w", core.ErrNotFound)
	}
	var sealed []byte
	c, err := scanConnector(s.db.QueryRow(ctx, s.db, `SELECT `+connectorColumns+` FROM nsauth_connectors WHERE name = ?`, name), &sealed)
	if err != nil {
		return nil, core.NotFound(err, "connector")
	}
	if sealed != nil {
		plain, err := s.keys.Open(sealed, sealing.ConnectorSecretAD(c.Name))
		if err != nil {
			return nil, fmt.Errorf("opening the secret of connector %s: %w", c.Name, err)
		}
		c.Secret = string(plain)
	}
	return c, nil
}

// Connectors lists every connector by name, secrets left empty (no
// keyring needed).
func (s *ConnectorStore) Connectors(ctx context.Context) ([]Connector, error) {
	return core.QueryAll(ctx, s.db, "listing connectors", func(row core.Scanner) (*Connector, error) {
		var sealed []byte
		return scanConnector(row, &sealed)
	}, `SELECT `+connectorColumns+` FROM nsauth_connectors ORDER BY name`)
}

// UpdateConnector reads the connector, lets change edit it (Name and Type
// are kept; an empty Secret keeps the stored one) and writes it back, in
// one transaction. ErrNotFound when there is none.
//
// change is given the connector with Secret empty (the stored one is not
// opened: no keyring is needed unless change sets a new one). It may edit
// DisplayName, Settings, Secret, CreateUsers and TrustUpstreamMFA; the
// times are the store's (UpdatedAt is set). An error from change aborts
// the update and is returned as it is.
func (s *ConnectorStore) UpdateConnector(ctx context.Context, name string, change func(*Connector) error) error {
	if CheckName(name) != nil {
		return fmt.Errorf("connector: %w", core.ErrNotFound)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var stored []byte
		old, err := scanConnector(s.db.QueryRow(ctx, tx, `SELECT `+connectorColumns+` FROM nsauth_connectors WHERE name = ?`+s.db.Dialect.LockRows, name), &stored)
		if err != nil {
			return core.NotFound(err, "connector")
		}
		c := *old
		c.Settings = slices.Clone(old.Settings)
		if err := change(&c); err != nil {
			return err
		}
		c.Name, c.Type = old.Name, old.Type
		c.CreatedAt, c.DisabledAt = old.CreatedAt, old.DisabledAt
		if err := checkConnector(&c); err != nil {
			return err
		}
		sealed := stored
		if c.Secret != "" {
			if sealed, err = s.sealSecret(ctx, tx, &c); err != nil {
				return err
			}
		}
		_, err = s.db.Exec(ctx, tx, `UPDATE nsauth_connectors SET display_name = ?, settings = ?, secret = ?, create_users = ?, trust_upstream_mfa = ?, updated_at = ?
			WHERE name = ?`, c.DisplayName, string(c.Settings), sealed, boolInt(c.CreateUsers), boolInt(c.TrustUpstreamMFA), s.db.NowMillis(), name)
		if err != nil {
			return fmt.Errorf("updating connector %s: %w", name, err)
		}
		return nil
	})
}

// SetConnectorDisabled disables or enables a connector. ErrNotFound when
// there is none. Disabling one disabled already keeps when it was.
func (s *ConnectorStore) SetConnectorDisabled(ctx context.Context, name string, disabled bool) error {
	now := s.db.NowMillis()
	query, args := `UPDATE nsauth_connectors SET disabled_at = NULL, updated_at = ? WHERE name = ?`, []any{now, name}
	if disabled {
		query, args = `UPDATE nsauth_connectors SET disabled_at = COALESCE(disabled_at, ?), updated_at = ? WHERE name = ?`, []any{now, now, name}
	}
	res, err := s.db.Exec(ctx, s.db, query, args...)
	if err != nil {
		return fmt.Errorf("updating connector %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("connector: %w", core.ErrNotFound)
	}
	return nil
}

// DeleteConnector deletes a connector and the identities bound through it
// (the users stay), and the sign-ins waiting at it. ErrNotFound when there
// is none.
func (s *ConnectorStore) DeleteConnector(ctx context.Context, name string) error {
	res, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_connectors WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("deleting connector %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("connector: %w", core.ErrNotFound)
	}
	return nil
}

// exists reports whether query (SELECT 1 … with args) finds a row, in q.
func (s *ConnectorStore) exists(ctx context.Context, q core.Querier, query string, args ...any) (bool, error) {
	var one int
	err := s.db.QueryRow(ctx, q, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// insertIdentity binds id in tx, after checking the connector exists and
// the identity is free.
func (s *ConnectorStore) insertIdentity(ctx context.Context, tx *sql.Tx, id *Identity) error {
	// The connector's row is shared-locked: a concurrent delete waits.
	ok, err := s.exists(ctx, tx, `SELECT 1 FROM nsauth_connectors WHERE name = ?`+s.db.Dialect.ShareRows, id.Connector)
	if err != nil {
		return fmt.Errorf("reading connector %s: %w", id.Connector, err)
	}
	if !ok {
		return fmt.Errorf("connector %s: %w", id.Connector, core.ErrNotFound)
	}
	bound, err := s.exists(ctx, tx, `SELECT 1 FROM nsauth_identities WHERE connector = ? AND subject = ?`, id.Connector, id.Subject)
	if err != nil {
		return fmt.Errorf("reading identities: %w", err)
	}
	if bound {
		return ErrIdentityBound
	}
	groups, err := json.Marshal(nonNil(id.Groups))
	if err != nil {
		return err
	}
	var state []byte
	if id.State != "" {
		if state, err = s.keys.SealIn(ctx, tx, []byte(id.State), sealing.IdentityStateAD(id.Connector, id.Subject)); err != nil {
			return fmt.Errorf("sealing an identity's state: %w", err)
		}
	}
	now := s.db.Now()
	_, err = s.db.Exec(ctx, tx, `INSERT INTO nsauth_identities (connector, subject, user_id, group_names, state, created_at, last_login_at, checked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id.Connector, id.Subject, id.UserID, string(groups), state, now.UnixMilli(),
		core.Millis(id.LastLoginAt), core.Millis(id.CheckedAt))
	if err != nil {
		if s.db.Dialect.IsUnique(err) {
			// The subject was checked free: the user has an identity
			// of this connector (or the subject was bound meanwhile).
			return fmt.Errorf("the user has an identity of connector %s already, or this one is bound: %w", id.Connector, core.ErrConflict)
		}
		return fmt.Errorf("binding an identity: %w", err)
	}
	id.CreatedAt = now
	return nil
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func checkIdentity(id *Identity) error {
	if err := CheckName(id.Connector); err != nil {
		return err
	}
	if err := checkSubject(id.Subject); err != nil {
		return err
	}
	if len(id.State) > MaxStateLen {
		return fmt.Errorf("an identity's state must be at most %d bytes", MaxStateLen)
	}
	return checkGroups(id.Connector, id.Groups)
}

// LinkIdentity binds id.UserID to (id.Connector, id.Subject).
// ErrConflict when that identity is bound already (ErrIdentityBound), or
// the user has an identity of that connector; ErrNotFound when the user or
// connector does not exist. Groups, State, LastLoginAt and CheckedAt are
// stored as given (usually empty); CreatedAt is set.
func (s *ConnectorStore) LinkIdentity(ctx context.Context, id *Identity) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		ok, err := s.exists(ctx, tx, `SELECT 1 FROM nsauth_users WHERE id = ?`+s.db.Dialect.ShareRows, id.UserID)
		if err != nil {
			return fmt.Errorf("reading the user: %w", err)
		}
		if !ok {
			return fmt.Errorf("user: %w", core.ErrNotFound)
		}
		return s.insertIdentity(ctx, tx, id)
	})
}

// CreateUserWithIdentity creates u (without a password: PasswordHash
// empty, so the password form never lets them in) bound to id, in one
// transaction; id.UserID is set. ErrConflict when the username or the
// identity is taken (ErrIdentityBound for the identity: then no other
// username helps); ErrNotFound when the connector does not exist.
func (s *ConnectorStore) CreateUserWithIdentity(ctx context.Context, u *users.User, id *Identity) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	created := *u
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		// The identity first: a taken identity is reported as such
		// whatever the username.
		bound, err := s.exists(ctx, tx, `SELECT 1 FROM nsauth_identities WHERE connector = ? AND subject = ?`, id.Connector, id.Subject)
		if err != nil {
			return fmt.Errorf("reading identities: %w", err)
		}
		if bound {
			return ErrIdentityBound
		}
		if err := users.CreateWithoutPassword(ctx, s.users, tx, &created); err != nil {
			return err
		}
		bind := *id
		bind.UserID = created.ID
		err = s.insertIdentity(ctx, tx, &bind)
		if errors.Is(err, core.ErrConflict) {
			// The user is new: only the identity, bound meanwhile by
			// another sign-in, can conflict.
			return ErrIdentityBound
		}
		return err
	})
	if err != nil {
		return err
	}
	*u = created
	id.UserID, id.CreatedAt = created.ID, created.CreatedAt
	return nil
}

const identityColumns = `connector, subject, user_id, group_names, state, created_at, last_login_at, checked_at`

// scanIdentity reads a row of identityColumns, opening the state.
func (s *ConnectorStore) scanIdentity(row core.Scanner) (*Identity, error) {
	var id Identity
	var groups string
	var state []byte
	var created, lastLogin, checked sql.NullInt64
	if err := row.Scan(&id.Connector, &id.Subject, &id.UserID, &groups, &state, &created, &lastLogin, &checked); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(groups), &id.Groups); err != nil {
		return nil, fmt.Errorf("reading the groups of an identity: %w", err)
	}
	if len(id.Groups) == 0 {
		id.Groups = nil
	}
	if state != nil {
		plain, err := s.keys.Open(state, sealing.IdentityStateAD(id.Connector, id.Subject))
		if err != nil {
			return nil, fmt.Errorf("opening the state of an identity of connector %s: %w", id.Connector, err)
		}
		id.State = string(plain)
	}
	id.CreatedAt, id.LastLoginAt, id.CheckedAt = core.FromMillis(created), core.FromMillis(lastLogin), core.FromMillis(checked)
	return &id, nil
}

// IdentityBySubject returns the identity bound to (connector, subject),
// its state opened (which needs the keyring when it has one).
// ErrNotFound when none.
func (s *ConnectorStore) IdentityBySubject(ctx context.Context, connector, subject string) (*Identity, error) {
	id, err := s.scanIdentity(s.db.QueryRow(ctx, s.db, `SELECT `+identityColumns+` FROM nsauth_identities WHERE connector = ? AND subject = ?`, connector, subject))
	if err != nil {
		return nil, core.NotFound(err, "identity")
	}
	return id, nil
}

// IdentitiesOfUser lists a user's identities, by connector, their states
// opened (which needs the keyring when one has a state).
func (s *ConnectorStore) IdentitiesOfUser(ctx context.Context, userID string) ([]Identity, error) {
	return core.QueryAll(ctx, s.db, "listing identities", s.scanIdentity,
		`SELECT `+identityColumns+` FROM nsauth_identities WHERE user_id = ? ORDER BY connector`, userID)
}

// RecordIdentityLogin notes a sign-in through an identity: its groups,
// state (sealed; empty keeps none), LastLoginAt and CheckedAt = at.
// ErrNotFound when the identity is not bound.
func (s *ConnectorStore) RecordIdentityLogin(ctx context.Context, connector, subject string, groups []string, state string, at time.Time) error {
	if err := checkGroups(connector, groups); err != nil {
		return err
	}
	if len(state) > MaxStateLen {
		return fmt.Errorf("an identity's state must be at most %d bytes", MaxStateLen)
	}
	enc, err := json.Marshal(nonNil(groups))
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var sealed []byte
		if state != "" {
			var err error
			if sealed, err = s.keys.SealIn(ctx, tx, []byte(state), sealing.IdentityStateAD(connector, subject)); err != nil {
				return fmt.Errorf("sealing an identity's state: %w", err)
			}
		}
		res, err := s.db.Exec(ctx, tx, `UPDATE nsauth_identities SET group_names = ?, state = ?, last_login_at = ?, checked_at = ?
			WHERE connector = ? AND subject = ?`, string(enc), sealed, at.UnixMilli(), at.UnixMilli(), connector, subject)
		if err != nil {
			return fmt.Errorf("recording a sign-in: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("identity: %w", core.ErrNotFound)
		}
		return nil
	})
}

// SetIdentityChecked sets CheckedAt after a refresh check. ErrNotFound
// when the identity is not bound.
func (s *ConnectorStore) SetIdentityChecked(ctx context.Context, connector, subject string, at time.Time) error {
	res, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_identities SET checked_at = ? WHERE connector = ? AND subject = ?`, at.UnixMilli(), connector, subject)
	if err != nil {
		return fmt.Errorf("recording a check: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("identity: %w", core.ErrNotFound)
	}
	return nil
}

// UnlinkIdentity removes a binding. ErrNotFound when none.
func (s *ConnectorStore) UnlinkIdentity(ctx context.Context, connector, subject string) error {
	res, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_identities WHERE connector = ? AND subject = ?`, connector, subject)
	if err != nil {
		return fmt.Errorf("removing an identity: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("identity: %w", core.ErrNotFound)
	}
	return nil
}

// GroupsOf returns, for each of userIDs (at most [core.MaxInArgs]), the
// groups of every identity of the user, sorted, without duplicates, in one
// query. A user with no upstream group is absent. It reads no sealed value.
func (s *ConnectorStore) GroupsOf(ctx context.Context, userIDs []string) (map[string][]string, error) {
	out := make(map[string][]string)
	if len(userIDs) == 0 {
		return out, nil
	}
	in, args := core.InArgs(userIDs)
	lists, err := core.QueryAll(ctx, s.db, "reading users' groups", func(row core.Scanner) (*[2]string, error) {
		var l [2]string
		return &l, row.Scan(&l[0], &l[1])
	}, `SELECT user_id, group_names FROM nsauth_identities WHERE user_id IN (`+in+`)`, args...)
	if err != nil {
		return nil, err
	}
	for _, l := range lists {
		var gs []string
		if err := json.Unmarshal([]byte(l[1]), &gs); err != nil {
			return nil, fmt.Errorf("reading a user's groups: %w", err)
		}
		if len(gs) > 0 {
			out[l[0]] = append(out[l[0]], gs...)
		}
	}
	for id, gs := range out {
		slices.Sort(gs)
		out[id] = slices.Compact(gs)
	}
	return out, nil
}

// MaxPendingLogins bounds the pending sign-ins kept in all (unauthenticated
// requests create them): CreatePendingLogin fails with ErrFull beyond it,
// after deleting expired ones.
const MaxPendingLogins = 100000

// ErrFull means too many sign-ins are waiting at upstream providers.
var ErrFull = errors.New("too many sign-ins waiting")

// CreatePendingLogin stores p under the digest of key. ErrNotFound when
// the connector does not exist; ErrConflict when the key is taken; ErrFull
// when MaxPendingLogins are waiting (replicas creating at once may pass
// the bound by a few).
func (s *ConnectorStore) CreatePendingLogin(ctx context.Context, key string, p *Pending) error {
	if key == "" {
		return errors.New("a pending sign-in needs a key")
	}
	if CheckName(p.Connector) != nil {
		return fmt.Errorf("connector: %w", core.ErrNotFound)
	}
	if (p.AuthRequest == "") != p.EnrolLink || len(p.AuthRequest) > maxAuthRequestLen {
		return fmt.Errorf("a pending sign-in is for an auth request (1 to %d bytes) or an enrolment link, one of them", maxAuthRequestLen)
	}
	now := s.db.Now()
	if !p.ExpiresAt.After(now) {
		return errors.New("a pending sign-in must expire in the future")
	}
	var n int64
	if err := s.db.QueryRow(ctx, s.db, `SELECT COUNT(*) FROM nsauth_connector_pending`).Scan(&n); err != nil {
		return fmt.Errorf("counting pending sign-ins: %w", err)
	}
	if n >= MaxPendingLogins {
		if _, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_connector_pending WHERE expires_at <= ?`, now.UnixMilli()); err != nil {
			return fmt.Errorf("deleting expired pending sign-ins: %w", err)
		}
		if err := s.db.QueryRow(ctx, s.db, `SELECT COUNT(*) FROM nsauth_connector_pending`).Scan(&n); err != nil {
			return fmt.Errorf("counting pending sign-ins: %w", err)
		}
		if n >= MaxPendingLogins {
			return ErrFull
		}
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		ok, err := s.exists(ctx, tx, `SELECT 1 FROM nsauth_connectors WHERE name = ?`+s.db.Dialect.ShareRows, p.Connector)
		if err != nil {
			return fmt.Errorf("reading connector %s: %w", p.Connector, err)
		}
		if !ok {
			return fmt.Errorf("connector %s: %w", p.Connector, core.ErrNotFound)
		}
		_, err = s.db.Exec(ctx, tx, `INSERT INTO nsauth_connector_pending (key_hash, connector, auth_request, enrol_link, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			core.HashSecret(key), p.Connector, p.AuthRequest, boolInt(p.EnrolLink), now.UnixMilli(), p.ExpiresAt.UnixMilli())
		if err != nil {
			if s.db.Dialect.IsUnique(err) {
				return fmt.Errorf("pending sign-in: %w", core.ErrConflict)
			}
			return fmt.Errorf("storing a pending sign-in: %w", err)
		}
		return nil
	})
}

// TakePendingLogin returns and deletes the pending sign-in stored under
// key; ErrNotFound when there is none or it has expired. One statement
// takes it: of concurrent takers (replicas included), one gets it.
func (s *ConnectorStore) TakePendingLogin(ctx context.Context, key string) (*Pending, error) {
	var p Pending
	var expires, link int64
	err := s.db.QueryRow(ctx, s.db, `DELETE FROM nsauth_connector_pending WHERE key_hash = ? RETURNING connector, auth_request, enrol_link, expires_at`,
		core.HashSecret(key)).Scan(&p.Connector, &p.AuthRequest, &link, &expires)
	if err != nil {
		return nil, core.NotFound(err, "pending sign-in")
	}
	p.ExpiresAt, p.EnrolLink = time.UnixMilli(expires), link == 1
	if !p.ExpiresAt.After(s.db.Now()) {
		return nil, fmt.Errorf("pending sign-in: %w", core.ErrNotFound)
	}
	return &p, nil
}
