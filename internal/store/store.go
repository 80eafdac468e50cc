// Package store persists the built-in OpenID provider's state: users,
// clients, federation policies, completed authorization requests (pending
// ones are not stored), authorization codes, refresh and access token
// records, signing keys, failed-login counters and the audit trail.
//
// Two backends share one implementation over database/sql: an embedded
// SQLite file (modernc.org/sqlite, no cgo) for a single process, and
// PostgreSQL (pgx) for one or more processes. Every operation that must be
// atomic across processes (redeeming a code, rotating a refresh token,
// adding a signing key, counting failed logins) is a single statement or a
// transaction that locks what it reads, so replicas sharing a PostgreSQL
// database behave as one provider.
//
// Secrets never reach the database in clear: codes, refresh tokens and
// client secrets are stored as SHA-256 digests (they are random and long,
// so a fast hash is enough), passwords only as the argon2id hashes callers
// pass in. What must be read back (the private signing keys, and the
// instance secrets every replica shares: the broker's client secret, the
// keys that seal pending authorization requests and sign device cookies)
// is sealed with AES-256-GCM under [Options.Keyring], whose keys are kept
// out of the database (see package seal). A copy of the database alone
// therefore mints no token. A rotated refresh token keeps its successor
// for a short retry window sealed under a key derived from its own value,
// which only its holder knows (see package tokens).
//
// Errors are plain Go errors; callers branch on [ErrNotFound],
// [ErrConflict], [ErrReused] and [ErrRevoked]. No error carries a secret.
//
// # Layout
//
// [Store] is the sum of sub-stores, one per domain, each in a package of
// its own under internal/store and each with one job:
//
//   - users: accounts (a changed password revokes the user's tokens and
//     ends their browser sessions);
//   - clients: apps (native clients, the broker's among them), machine
//     clients, and federation policies;
//   - authrequests: completed authorization requests and their codes;
//   - tokens: refresh and access token records, and the rotation grace;
//   - revocations: the one place tokens are revoked, and following the
//     revocations of access tokens;
//   - devices: device authorization grants (RFC 8628);
//   - secondfactors: TOTP, recovery codes, logins waiting for a second
//     factor, enrolment links;
//   - passkeys: WebAuthn credentials and ceremonies;
//   - attempts: login-attempt counters;
//   - auditlog: the audit trail;
//   - signingkeys: token-signing keys;
//   - instance: values every replica shares;
//   - secrets: sealed values, key holders and key rotation;
//   - sessions: browser sessions and the grants issued within them;
//   - consents: what users allowed third-party apps;
//   - connectors: login methods backed by an upstream identity source
//     (OpenID Connect, GitHub, LDAP), the users bound to upstream
//     identities, and sign-ins waiting at an upstream provider;
//   - groups: the groups nsauth keeps and their members (a user's
//     groups in tokens are these and the connectors', [Store.UserGroups]);
//   - accountlinks: one-time links (invite, reset) that let their holder
//     set a user's password.
//
// They share internal/store/internal/core (the database, its dialect,
// transactions, the clock, the sentinel errors) and
// internal/store/internal/sealing (the keys that seal secrets); none of
// them imports package store. Store embeds a pointer to each, so every
// method is called on the store as before, and the types and constants
// of the sub-packages keep their names here (names.go). Opening the
// database, applying migrations and deleting what expired (which spans
// every domain) stay in this package.
//
// A flow that needs one domain only can be given its sub-store (for the
// device flow, s.DeviceStore) or depend on a role interface of roles.go
// ([DeviceFlowStorage], [CodeFlowStorage], [TokenStorage],
// [LoginAttemptStorage], [UserLookup], [SecondFactorStorage],
// [PasskeyStorage], [SigningKeyStorage], [MachineGrantStorage],
// [SessionStorage], [ConsentStorage]), as
// fosite pairs each flow with the storage it needs.
package store

import (
	"context"
	"slices"
	"time"

	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store/accountlinks"
	"github.com/nsauth/nsauth/internal/store/attempts"
	"github.com/nsauth/nsauth/internal/store/auditlog"
	"github.com/nsauth/nsauth/internal/store/authrequests"
	"github.com/nsauth/nsauth/internal/store/clients"
	"github.com/nsauth/nsauth/internal/store/connectors"
	"github.com/nsauth/nsauth/internal/store/consents"
	"github.com/nsauth/nsauth/internal/store/devices"
	"github.com/nsauth/nsauth/internal/store/groups"
	"github.com/nsauth/nsauth/internal/store/instance"
	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/internal/sealing"
	"github.com/nsauth/nsauth/internal/store/passkeys"
	"github.com/nsauth/nsauth/internal/store/revocations"
	"github.com/nsauth/nsauth/internal/store/secondfactors"
	"github.com/nsauth/nsauth/internal/store/secrets"
	"github.com/nsauth/nsauth/internal/store/sessions"
	"github.com/nsauth/nsauth/internal/store/signingkeys"
	"github.com/nsauth/nsauth/internal/store/tokens"
	"github.com/nsauth/nsauth/internal/store/users"
)

// Sentinel errors. Every sub-store returns these very values.
var (
	// ErrNotFound means the record does not exist or has expired.
	ErrNotFound = core.ErrNotFound
	// ErrConflict means a unique value (such as a username) is taken.
	ErrConflict = core.ErrConflict
	// ErrReused means a single-use credential (an authorization code or a
	// refresh token) was presented again. Everything issued from it has been
	// revoked by the time this error is returned.
	ErrReused = core.ErrReused
	// ErrRevoked means the credential was revoked.
	ErrRevoked = core.ErrRevoked
	// ErrNoKeyring means a secret was to be read or written by a store
	// opened without [Options.Keyring].
	ErrNoKeyring = core.ErrNoKeyring
)

// IsDiskFull reports whether err is a write refused because the disk
// holding the database is full: SQLite's SQLITE_FULL, PostgreSQL's
// disk_full (SQLSTATE 53100) or ENOSPC. It is the one test of it: the
// RPCs' edges map such an error to Unavailable, since the same call
// succeeds once space is freed, without a restart.
func IsDiskFull(err error) bool { return core.IsDiskFull(err) }

// IsUnavailable reports whether err says the database cannot be reached
// or cannot write now, so that the same call may succeed later: a full
// disk ([IsDiskFull]), a connection refused, reset, cut or closed,
// PostgreSQL's connection exceptions (SQLSTATE class 08) and the
// 57P01–57P03 a restarting server sends. It is the one rule of it: the
// edges answer such an error with Unavailable (the admin API) or HTTP 503
// (the provider's endpoints and pages), never as a fault of the server's.
// Constraint, syntax and data errors are not unavailable, nor the caller's
// own cancellation.
func IsUnavailable(err error) bool { return core.IsUnavailable(err) }

// Outage records the first error [IsUnavailable] recognises among the
// store calls made under a context of [WatchOutage] (see [core.Outage]).
type Outage = core.Outage

// WatchOutage returns ctx with an [Outage] that every store call made
// under it reports to: an edge that sees only a handler's status 500 asks
// it whether the database was unreachable meanwhile. A connection lost
// while a single row is being read is not seen (its error comes at Scan).
func WatchOutage(ctx context.Context) (context.Context, *Outage) { return core.WatchOutage(ctx) }

// DiskFullSettle is how long writes must go without one failing for a full
// disk before a success is told to [Options.DiskFull] as the disk having
// space again: while the disk is full, some writes still succeed (in
// pages SQLite's write-ahead log already holds).
const DiskFullSettle = core.DiskFullSettle

// Options configure a [Store].
type Options struct {
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Keyring seals the secrets the store keeps (signing keys and the
	// values of [Store.EnsureSecret]) and opens them. Nil means the store
	// holds no key: methods that read or write a secret fail with
	// [ErrNoKeyring], and the rest work (as `nsauth users` needs).
	Keyring *seal.Keyring
	// LoadKeys, when set, reads again the keys Keyring was made of, newest
	// first, from a source a rotation rewrites (a key file): the store
	// calls it when a value names a key it does not hold, or the database
	// seals with one (see [Store.ReloadKeys] for when keys are dropped).
	// It returns the same keys when its source has not changed. Nil: the
	// keys are fixed.
	LoadKeys func() ([]*seal.Key, error)
	// AuditRetention is how long audit events are kept: [Store.DeleteExpired]
	// deletes older ones. Zero means [DefaultAuditRetention]; a negative
	// value keeps them for good.
	AuditRetention time.Duration
	// DiskFull, when set, is called when writes start failing because the
	// disk is full (full true, with the first such error) and when a write
	// succeeds [DiskFullSettle] or more after the last such failure (full
	// false): once per change, not once per failed write, for the one log
	// line an operator needs. The clock is Now. It must not block.
	DiskFull func(full bool, cause error)
}

// DefaultAuditRetention is the default of Options.AuditRetention: 90 days.
const DefaultAuditRetention = 90 * 24 * time.Hour

// Store is the provider's persistence. It is safe for concurrent use, and
// several processes may share one PostgreSQL database.
//
// Its methods are those of its sub-stores, one per domain (see the
// package documentation); a flow that needs one domain only may be given
// that sub-store (s.DeviceStore, say) or a role interface such as
// [DeviceFlowStorage].
type Store struct {
	*users.UserStore
	*clients.ClientStore
	*authrequests.RequestStore
	*tokens.TokenStore
	*revocations.RevocationStore
	*devices.DeviceStore
	*passkeys.PasskeyStore
	*secondfactors.FactorStore
	*attempts.AttemptStore
	*auditlog.AuditStore
	*signingkeys.KeyStore
	*instance.ValueStore
	*secrets.SecretStore
	*sessions.SessionStore
	*consents.ConsentStore
	*connectors.ConnectorStore
	*groups.GroupStore
	*accountlinks.LinkStore

	db       *core.DB
	location string
	// channel is the PostgreSQL notification channel of revocations.
	channel string
	// auditRetention is Options.AuditRetention, defaulted.
	auditRetention time.Duration
}

// newStore assembles the sub-stores over db, a migrated database.
func newStore(db *core.DB, location, channel string, opts Options) *Store {
	retention := opts.AuditRetention
	if retention == 0 {
		retention = DefaultAuditRetention
	}
	db.OnDiskFull(opts.DiskFull)
	keys := sealing.New(db, opts.Keyring, opts.LoadKeys)
	revs, revoker := revocations.New(db, channel)
	values := instance.New(db)
	us := users.New(db, revoker)
	trail := auditlog.New(db)
	return &Store{
		UserStore:       us,
		ClientStore:     clients.New(db, revoker),
		RequestStore:    authrequests.New(db, revoker),
		TokenStore:      tokens.New(db, revoker, trail),
		RevocationStore: revs,
		DeviceStore:     devices.New(db, revoker),
		PasskeyStore:    passkeys.New(db),
		FactorStore:     secondfactors.New(db, keys, us),
		AttemptStore:    attempts.New(db),
		AuditStore:      trail,
		KeyStore:        signingkeys.New(db, keys),
		ValueStore:      values,
		SecretStore:     secrets.New(db, keys, values),
		SessionStore:    sessions.New(db, revoker),
		ConsentStore:    consents.New(db),
		ConnectorStore:  connectors.New(db, keys, us),
		GroupStore:      groups.New(db),
		LinkStore:       accountlinks.New(db),
		db:              db,
		location:        location,
		channel:         channel,
		auditRetention:  retention,
	}
}

// Backend names the database kind: "sqlite" or "postgres".
func (s *Store) Backend() string { return s.db.Dialect.Name }

// Location describes where the data lives, for people: a file path, or a
// PostgreSQL URL with any password removed.
func (s *Store) Location() string { return s.location }

// Close closes the database, once the store's own work on it has ended.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.SQL.PingContext(ctx) }

// UserGroups returns the user's groups as tokens carry them (the `groups`
// claim): the groups nsauth keeps that the user is in, and the groups
// its connectors saw upstream (CONNECTOR:name), sorted, without
// duplicates; nil when none.
func (s *Store) UserGroups(ctx context.Context, userID string) ([]string, error) {
	all, err := s.UsersGroups(ctx, []string{userID})
	return all[userID], err
}

// UsersGroups is [Store.UserGroups] of each of userIDs (at most
// MaxUsersAtOnce) in two queries whatever their number: a page of a user
// listing. A user in no group is absent from the map.
func (s *Store) UsersGroups(ctx context.Context, userIDs []string) (map[string][]string, error) {
	local, err := s.GroupStore.LocalGroupsOf(ctx, userIDs)
	if err != nil {
		return nil, err
	}
	upstream, err := s.ConnectorStore.GroupsOf(ctx, userIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(local)+len(upstream))
	for id := range local {
		out[id] = mergeGroups(local[id], upstream[id])
	}
	for id := range upstream {
		if _, done := out[id]; !done {
			out[id] = mergeGroups(nil, upstream[id])
		}
	}
	return out, nil
}

// MaxUsersAtOnce is the most users one call of [Store.UsersGroups] or
// SecondFactorsOf may name.
const MaxUsersAtOnce = core.MaxInArgs

// mergeGroups is a user's groups as tokens carry them, from the groups
// nsauth keeps and the connectors': sorted, without duplicates; nil when
// none.
func mergeGroups(local, upstream []string) []string {
	all := slices.Concat(local, upstream)
	if len(all) == 0 {
		return nil
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// HashSecret returns the digest under which a random secret (code, token,
// client secret) is stored and looked up.
func HashSecret(secret string) []byte { return core.HashSecret(secret) }

// NewID returns a random identifier: 128 bits, base64url.
func NewID() string { return core.NewID() }

// RandomToken returns n random bytes, base64url-encoded without padding.
func RandomToken(n int) string { return core.RandomToken(n) }
