// Package passkeys keeps users' WebAuthn credentials (public keys only)
// and the ceremonies in progress, bounded per pool and per holder so that
// unauthenticated requests cannot grow them without limit.
package passkeys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/visible"
)

// PasskeyStore keeps passkeys and passkey ceremonies.
type PasskeyStore struct {
	db *core.DB
}

// New returns the passkeys of db.
func New(db *core.DB) *PasskeyStore {
	return &PasskeyStore{db: db}
}

// Passkey is a WebAuthn credential of a user. Only its public key is
// stored: nothing here logs anyone in.
type Passkey struct {
	// ID is nsauth's id of the passkey (what `nsauth users passkeys`
	// shows and --remove accepts besides the name).
	ID     string
	UserID string
	// Name is the user's label for it, unique per user.
	Name string
	// CredentialID is the authenticator's credential id, unique.
	CredentialID []byte
	// PublicKey is the COSE-encoded credential public key.
	PublicKey []byte
	// SignCount is the last signature counter seen.
	SignCount uint32
	// UserVerified: the authenticator verified the user at registration.
	UserVerified bool
	// BackupEligible and BackupState: the credential may be, and is,
	// synced between devices (a "synced passkey").
	BackupEligible, BackupState bool
	// CloneWarning: a signature counter went backwards once.
	CloneWarning    bool
	Transports      []string
	AAGUID          []byte
	AttestationType string
	CreatedAt       time.Time
	// LastUsedAt is zero until the passkey is first used to log in.
	LastUsedAt time.Time
}

// Passkey flag bits (the flags column).
const (
	passkeyUV = 1 << iota
	passkeyBE
	passkeyBS
	passkeyClone
)

func (p *Passkey) flags() int64 {
	var f int64
	for bit, set := range map[int64]bool{passkeyUV: p.UserVerified, passkeyBE: p.BackupEligible, passkeyBS: p.BackupState, passkeyClone: p.CloneWarning} {
		if set {
			f |= bit
		}
	}
	return f
}

// Limits on passkeys.
const (
	// MaxPasskeyNameLen bounds a passkey's name.
	MaxPasskeyNameLen = 64
	// MaxPasskeysPerUser bounds how many passkeys one user may register.
	MaxPasskeysPerUser = 20
	// maxCredentialIDLen is the WebAuthn bound on credential ids.
	maxCredentialIDLen = 1023
	// maxPublicKeyLen is generous for any COSE key in use (ML-DSA
	// included).
	maxPublicKeyLen = 4096
)

// ErrTooManyPasskeys means the user already has MaxPasskeysPerUser.
var ErrTooManyPasskeys = errors.New("too many passkeys")

// CheckPasskeyName checks a passkey name: 1 to MaxPasskeyNameLen bytes of
// UTF-8 text that shows as itself (package visible's rule: no control or
// format characters, which could make an administrator read another name
// in nsauth users passkeys or nsauth audit). The error never contains the
// input.
func CheckPasskeyName(name string) error {
	if name == "" || len(name) > MaxPasskeyNameLen || !utf8.ValidString(name) || strings.TrimSpace(name) != name {
		return fmt.Errorf("a passkey name must be 1 to %d characters of text, without leading or trailing spaces", MaxPasskeyNameLen)
	}
	return visible.Check("a passkey name", name)
}

// AddPasskey stores a new passkey for p.UserID. ID is generated when
// empty. It fails with [core.ErrConflict] when the user has a passkey of that
// name or the credential is registered already (to anyone), and with
// [ErrTooManyPasskeys] when the user has MaxPasskeysPerUser.
func (s *PasskeyStore) AddPasskey(ctx context.Context, p *Passkey) error {
	if err := CheckPasskeyName(p.Name); err != nil {
		return err
	}
	if p.UserID == "" || len(p.CredentialID) == 0 || len(p.CredentialID) > maxCredentialIDLen ||
		len(p.PublicKey) == 0 || len(p.PublicKey) > maxPublicKeyLen {
		return errors.New("a passkey needs a user, a credential id and a public key of bounded size")
	}
	if p.ID == "" {
		p.ID = core.NewID()
	}
	p.CreatedAt = time.UnixMilli(s.db.NowMillis())
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		// Lock the user's row so concurrent registrations count right.
		var one int
		if err := s.db.QueryRow(ctx, tx, `SELECT 1 FROM nsauth_users WHERE id = ?`+s.db.Dialect.LockRows, p.UserID).Scan(&one); err != nil {
			return core.NotFound(err, "user")
		}
		var n int
		if err := s.db.QueryRow(ctx, tx, `SELECT COUNT(*) FROM nsauth_passkeys WHERE user_id = ?`, p.UserID).Scan(&n); err != nil {
			return fmt.Errorf("counting passkeys: %w", err)
		}
		if n >= MaxPasskeysPerUser {
			return ErrTooManyPasskeys
		}
		_, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_passkeys (id, user_id, name, credential_id, public_key, sign_count, flags,
			transports, aaguid, attestation_type, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.UserID, p.Name, p.CredentialID, p.PublicKey, int64(p.SignCount), p.flags(),
			core.JoinList(p.Transports), p.AAGUID, p.AttestationType, p.CreatedAt.UnixMilli())
		if err != nil {
			if s.db.Dialect.IsUnique(err) {
				return fmt.Errorf("passkey %q: %w", p.Name, core.ErrConflict)
			}
			return fmt.Errorf("storing passkey: %w", err)
		}
		return nil
	})
}

const passkeyColumns = `id, user_id, name, credential_id, public_key, sign_count, flags, transports, aaguid, attestation_type, created_at, last_used_at`

func scanPasskey(row core.Scanner) (*Passkey, error) {
	var p Passkey
	var count, flags, created int64
	var transports string
	var used sql.NullInt64
	if err := row.Scan(&p.ID, &p.UserID, &p.Name, &p.CredentialID, &p.PublicKey, &count, &flags, &transports, &p.AAGUID,
		&p.AttestationType, &created, &used); err != nil {
		return nil, err
	}
	p.SignCount = uint32(count)
	p.UserVerified, p.BackupEligible = flags&passkeyUV != 0, flags&passkeyBE != 0
	p.BackupState, p.CloneWarning = flags&passkeyBS != 0, flags&passkeyClone != 0
	p.Transports = core.SplitList(transports)
	p.CreatedAt, p.LastUsedAt = time.UnixMilli(created), core.FromMillis(used)
	return &p, nil
}

// PasskeysByUser returns the user's passkeys, oldest first.
func (s *PasskeyStore) PasskeysByUser(ctx context.Context, userID string) ([]Passkey, error) {
	return core.QueryAll(ctx, s.db, "reading passkeys", scanPasskey, `SELECT `+passkeyColumns+` FROM nsauth_passkeys WHERE user_id = ? ORDER BY created_at, id`, userID)
}

// CountPasskeys returns how many passkeys the user has.
func (s *PasskeyStore) CountPasskeys(ctx context.Context, userID string) (int, error) {
	var n int
	if err := s.db.QueryRow(ctx, s.db, `SELECT COUNT(*) FROM nsauth_passkeys WHERE user_id = ?`, userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting passkeys: %w", err)
	}
	return n, nil
}

// PasskeyByCredentialID returns the passkey with that credential id, or an
// error wrapping [core.ErrNotFound].
func (s *PasskeyStore) PasskeyByCredentialID(ctx context.Context, credentialID []byte) (*Passkey, error) {
	if len(credentialID) == 0 || len(credentialID) > maxCredentialIDLen {
		return nil, fmt.Errorf("passkey: %w", core.ErrNotFound)
	}
	p, err := scanPasskey(s.db.QueryRow(ctx, s.db, `SELECT `+passkeyColumns+` FROM nsauth_passkeys WHERE credential_id = ?`, credentialID))
	if err != nil {
		return nil, core.NotFound(err, "passkey")
	}
	return p, nil
}

// RecordPasskeyUse stores what a successful assertion changed: the
// signature counter, the backup state, a clone warning (which stays once
// set) and the time of use. It fails with [core.ErrNotFound] when the passkey
// was removed meanwhile.
func (s *PasskeyStore) RecordPasskeyUse(ctx context.Context, id string, signCount uint32, backupState, cloneWarning bool) error {
	set := int64(0)
	if backupState {
		set |= passkeyBS
	}
	if cloneWarning {
		set |= passkeyClone
	}
	// flags keeps UV, BE and a clone warning; BS follows the authenticator.
	res, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_passkeys SET sign_count = ?, last_used_at = ?,
		flags = (flags - (flags & ?)) | ? WHERE id = ?`,
		int64(signCount), s.db.NowMillis(), int64(passkeyBS), set, id)
	if err != nil {
		return fmt.Errorf("recording passkey use: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("passkey: %w", core.ErrNotFound)
	}
	return nil
}

// DeletePasskey removes the user's passkey named, or with the id,
// nameOrID, and returns it; an error wrapping [core.ErrNotFound] when there is
// none.
func (s *PasskeyStore) DeletePasskey(ctx context.Context, userID, nameOrID string) (*Passkey, error) {
	var p *Passkey
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		p, err = scanPasskey(s.db.QueryRow(ctx, tx, `SELECT `+passkeyColumns+` FROM nsauth_passkeys
			WHERE user_id = ? AND (name = ? OR id = ?) ORDER BY CASE WHEN name = ? THEN 0 ELSE 1 END LIMIT 1`, userID, nameOrID, nameOrID, nameOrID))
		if err != nil {
			return core.NotFound(err, "passkey")
		}
		if _, err := s.db.Exec(ctx, tx, `DELETE FROM nsauth_passkeys WHERE id = ?`, p.ID); err != nil {
			return fmt.Errorf("deleting passkey: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// PasskeyCeremony is a WebAuthn ceremony in progress for a pending auth
// request.
type PasskeyCeremony struct {
	AuthRequestID string
	// Kind says what it is for (the issuer's vocabulary: "register",
	// "second_factor", "passwordless").
	Kind string
	// UserID is the user it is for; empty for a passwordless login, where
	// the authenticator picks the account.
	UserID string
	// Browser binds the ceremony to the browser that began it (a digest of
	// a secret only that browser holds); empty binds it to none. Only a
	// take naming the same Browser gets it.
	Browser string
	// Session is the library's session data, JSON.
	Session   []byte
	ExpiresAt time.Time
}

// CeremonyQuota is what a new ceremony counts against: a pool of
// ceremonies shared by many holders, and the share of one holder in it.
// Only unexpired ceremonies count, and not the one the new ceremony
// replaces.
type CeremonyQuota struct {
	// Pool names the pool; PoolLimit is how many ceremonies it may hold
	// (<= 0: no limit).
	Pool      string
	PoolLimit int
	// Holder names who begins the ceremony, in words that are unique
	// across pools (such as "addr:192.0.2.1"); HolderLimit is how many
	// ceremonies one holder may hold (<= 0, or no Holder: no limit).
	Holder      string
	HolderLimit int
}

// MaxPasskeyCeremonySession bounds a ceremony's stored session data.
const MaxPasskeyCeremonySession = 16 << 10

// maxCeremonyKeyLen bounds a ceremony's pool, holder and browser names.
const maxCeremonyKeyLen = 256

// Refusals of [PasskeyStore.PutPasskeyCeremony].
var (
	// ErrCeremoniesFull means the pool holds as many ceremonies as allowed.
	ErrCeremoniesFull = errors.New("too many passkey ceremonies in progress")
	// ErrCeremonyHolderFull means the holder holds as many ceremonies as
	// allowed.
	ErrCeremonyHolderFull = errors.New("too many passkey ceremonies in progress for one holder")
)

// PutPasskeyCeremony stores c, replacing any ceremony of the same auth
// request: one auth request has at most one live ceremony. It refuses with
// [ErrCeremonyHolderFull] or [ErrCeremoniesFull] when q's holder or pool
// is full, so that unauthenticated begin requests cannot grow the table
// without bound, nor one client take it whole.
//
// A refusal costs reads only: a flood of begins that are refused writes
// nothing. A ceremony that may fit is counted again and stored in one
// transaction that locks its pool's row, so simultaneous puts, from one
// process or from replicas sharing a PostgreSQL database, never exceed a
// bound between them. The pool's row keeps a ceiling on the pool's
// ceremonies (raised by every put, never lowered by a take or an expiry),
// so the pool is counted only when the ceiling reaches its limit, and
// the ceiling is then set to the count.
func (s *PasskeyStore) PutPasskeyCeremony(ctx context.Context, c *PasskeyCeremony, q CeremonyQuota) error {
	if c.AuthRequestID == "" || c.Kind == "" || c.ExpiresAt.IsZero() || len(c.Session) == 0 || len(c.Session) > MaxPasskeyCeremonySession {
		return errors.New("a passkey ceremony needs an auth request, a kind, an expiry and bounded session data")
	}
	if len(q.Pool) > maxCeremonyKeyLen || len(q.Holder) > maxCeremonyKeyLen || len(c.Browser) > maxCeremonyKeyLen {
		return errors.New("a passkey ceremony's pool, holder and browser must be short")
	}
	room := ceremonyRoom{s: s, id: c.AuthRequestID, q: q, now: s.db.NowMillis()}
	if err := room.holderFull(ctx, s.db); err != nil {
		return err
	}
	var ceiling int
	err := s.db.QueryRow(ctx, s.db, `SELECT ceiling FROM nsauth_passkey_ceremony_pools WHERE pool = ?`, q.Pool).Scan(&ceiling)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading the passkey ceremony pool: %w", err)
	}
	if _, err := room.poolFull(ctx, s.db, ceiling); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.QueryRow(ctx, tx, `INSERT INTO nsauth_passkey_ceremony_pools (pool, ceiling) VALUES (?, 0)
			ON CONFLICT (pool) DO UPDATE SET ceiling = nsauth_passkey_ceremony_pools.ceiling RETURNING ceiling`, q.Pool).Scan(&ceiling); err != nil {
			return fmt.Errorf("locking the passkey ceremony pool: %w", err)
		}
		if err := room.holderFull(ctx, tx); err != nil {
			return err
		}
		counted, err := room.poolFull(ctx, tx, ceiling)
		if err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_passkey_ceremonies (auth_request_id, kind, user_id, session, expires_at, pool, holder, browser)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (auth_request_id) DO UPDATE SET kind = excluded.kind, user_id = excluded.user_id,
			session = excluded.session, expires_at = excluded.expires_at, pool = excluded.pool, holder = excluded.holder,
			browser = excluded.browser`,
			c.AuthRequestID, c.Kind, c.UserID, string(c.Session), c.ExpiresAt.UnixMilli(), q.Pool, q.Holder, c.Browser); err != nil {
			return fmt.Errorf("storing passkey ceremony: %w", err)
		}
		if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_passkey_ceremony_pools SET ceiling = ? WHERE pool = ?`, counted+1, q.Pool); err != nil {
			return fmt.Errorf("raising the passkey ceremony pool's ceiling: %w", err)
		}
		return nil
	})
}

// ceremonyRoom checks whether a quota has room at now for the ceremony of
// the auth request id (the one it replaces left out).
type ceremonyRoom struct {
	s   *PasskeyStore
	id  string
	q   CeremonyQuota
	now int64
}

func (r ceremonyRoom) count(ctx context.Context, q core.Querier, column, value string) (int, error) {
	var n int
	err := r.s.db.QueryRow(ctx, q, `SELECT COUNT(*) FROM nsauth_passkey_ceremonies WHERE `+column+` = ? AND expires_at > ? AND auth_request_id <> ?`,
		value, r.now, r.id).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting passkey ceremonies: %w", err)
	}
	return n, nil
}

// holderFull refuses with ErrCeremonyHolderFull when the holder has no
// room. It is checked first: it is the cheaper count, and the refusal a
// flood from few addresses meets.
func (r ceremonyRoom) holderFull(ctx context.Context, q core.Querier) error {
	if r.q.Holder == "" || r.q.HolderLimit <= 0 {
		return nil
	}
	n, err := r.count(ctx, q, "holder", r.q.Holder)
	if err != nil {
		return err
	}
	if n >= r.q.HolderLimit {
		return ErrCeremonyHolderFull
	}
	return nil
}

// poolFull refuses with ErrCeremoniesFull when the pool has no room, given
// its ceiling; it returns the ceiling, lowered to the count when it
// counted the pool.
func (r ceremonyRoom) poolFull(ctx context.Context, q core.Querier, ceiling int) (int, error) {
	if r.q.PoolLimit <= 0 || ceiling < r.q.PoolLimit {
		return ceiling, nil
	}
	n, err := r.count(ctx, q, "pool", r.q.Pool)
	if err != nil {
		return 0, err
	}
	if n >= r.q.PoolLimit {
		return 0, ErrCeremoniesFull
	}
	return n, nil
}

// TakePasskeyCeremony removes and returns the auth request's ceremony
// bound to browser ("" for one bound to no browser): a ceremony is
// answered once, right or wrong. It fails with [core.ErrNotFound] when there is
// none, it has expired, or it is bound to another browser; the ceremony of
// another browser stays as it was.
func (s *PasskeyStore) TakePasskeyCeremony(ctx context.Context, authRequestID, browser string) (*PasskeyCeremony, error) {
	var c PasskeyCeremony
	var session string
	var expires int64
	err := s.db.QueryRow(ctx, s.db, `DELETE FROM nsauth_passkey_ceremonies WHERE auth_request_id = ? AND browser = ?
		RETURNING auth_request_id, kind, user_id, browser, session, expires_at`, authRequestID, browser).
		Scan(&c.AuthRequestID, &c.Kind, &c.UserID, &c.Browser, &session, &expires)
	if err != nil {
		return nil, core.NotFound(err, "passkey ceremony")
	}
	c.Session, c.ExpiresAt = []byte(session), time.UnixMilli(expires)
	if expires <= s.db.NowMillis() {
		return nil, fmt.Errorf("passkey ceremony: %w", core.ErrNotFound)
	}
	return &c, nil
}
