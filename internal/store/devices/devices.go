// Package devices keeps the device authorization grants of RFC 8628: a
// pending authorization waits for its user's decision, and an approved one
// is redeemed by exactly one poll.
package devices

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/revocations"
)

// DeviceStore keeps device authorizations.
type DeviceStore struct {
	db  *core.DB
	rev *revocations.Revoker
}

// New returns the device authorizations of db; a replayed device code
// revokes its grant through rev.
func New(db *core.DB, rev *revocations.Revoker) *DeviceStore {
	return &DeviceStore{db: db, rev: rev}
}

// States of a device authorization.
const (
	// DevicePending waits for the user to enter the code and decide.
	DevicePending = "pending"
	// DeviceApproved was approved by the user; tokens may be issued once.
	DeviceApproved = "approved"
	// DeviceDenied was refused by the user; it ends the login.
	DeviceDenied = "denied"
)

// Retention is how long a device authorization is kept after it
// expires: a late poll still answers expired_token, and a replayed device
// code is still recognised.
const Retention = time.Hour

// DeviceAuthorization is a device authorization grant (RFC 8628). Its
// device and user codes are never stored, only their digests.
type DeviceAuthorization struct {
	// ID identifies the grant: the tokens issued from it carry it as
	// their grant id.
	ID        string
	ClientID  string
	Scopes    []string
	CreatedAt time.Time
	ExpiresAt time.Time
	// State is DevicePending, DeviceApproved or DeviceDenied.
	State string
	// UserID, AuthTime and AMR are set when the user decided.
	UserID    string
	AuthTime  time.Time
	AMR       []string
	DecidedAt time.Time
	// UsedAt is when tokens were issued from it.
	UsedAt time.Time
	// PollInterval is the least time between two polls; it grows by each
	// slow_down answer.
	PollInterval time.Duration
}

// Expired reports whether the authorization's time is up at now.
func (d *DeviceAuthorization) Expired(now time.Time) bool { return !now.Before(d.ExpiresAt) }

// CreateDeviceAuthorization stores a new pending device authorization
// under the digests of its codes. d.ID is generated when empty; ClientID,
// ExpiresAt and PollInterval are required. It fails with [core.ErrConflict]
// when either code is already stored (the caller draws new ones).
func (s *DeviceStore) CreateDeviceAuthorization(ctx context.Context, d *DeviceAuthorization, deviceCode, userCode string) error {
	if d.ClientID == "" || d.ExpiresAt.IsZero() || d.PollInterval <= 0 || deviceCode == "" || userCode == "" {
		return errors.New("a device authorization needs a client, an expiry, a poll interval and both codes")
	}
	if d.ID == "" {
		d.ID = core.NewID()
	}
	d.State = DevicePending
	d.CreatedAt = time.UnixMilli(s.db.NowMillis())
	_, err := s.db.Exec(ctx, s.db, `INSERT INTO nsauth_device_authorizations (id, device_code_hash, user_code_hash, client_id, scopes,
		created_at, expires_at, state, poll_interval_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, core.HashSecret(deviceCode), core.HashSecret(userCode), d.ClientID, core.JoinList(d.Scopes),
		d.CreatedAt.UnixMilli(), d.ExpiresAt.UnixMilli(), DevicePending, d.PollInterval.Milliseconds())
	if err != nil {
		if s.db.Dialect.IsUnique(err) {
			return fmt.Errorf("device authorization code: %w", core.ErrConflict)
		}
		return fmt.Errorf("storing device authorization: %w", err)
	}
	return nil
}

const deviceColumns = `id, client_id, scopes, created_at, expires_at, state, user_id, auth_time, amr, decided_at, used_at, poll_interval_ms`

func scanDevice(row core.Scanner) (*DeviceAuthorization, error) {
	var d DeviceAuthorization
	var scopes, amr string
	var created, expires, interval int64
	var userID sql.NullString
	var authTime, decided, used sql.NullInt64
	if err := row.Scan(&d.ID, &d.ClientID, &scopes, &created, &expires, &d.State, &userID, &authTime, &amr, &decided, &used, &interval); err != nil {
		return nil, err
	}
	d.Scopes, d.AMR = core.SplitList(scopes), core.SplitList(amr)
	d.CreatedAt, d.ExpiresAt = time.UnixMilli(created), time.UnixMilli(expires)
	d.UserID = userID.String
	d.AuthTime, d.DecidedAt, d.UsedAt = core.FromMillis(authTime), core.FromMillis(decided), core.FromMillis(used)
	d.PollInterval = time.Duration(interval) * time.Millisecond
	return &d, nil
}

// PendingDeviceAuthorization returns the pending, unexpired device
// authorization whose user code is userCode, or an error wrapping
// [core.ErrNotFound]: a user code is good only until it is approved or denied.
func (s *DeviceStore) PendingDeviceAuthorization(ctx context.Context, userCode string) (*DeviceAuthorization, error) {
	d, err := scanDevice(s.db.QueryRow(ctx, s.db, `SELECT `+deviceColumns+` FROM nsauth_device_authorizations
		WHERE user_code_hash = ? AND state = ? AND expires_at > ?`, core.HashSecret(userCode), DevicePending, s.db.NowMillis()))
	if err != nil {
		return nil, core.NotFound(err, "device authorization")
	}
	return d, nil
}

// DeviceAuthorizationByID returns a device authorization in any state, or
// an error wrapping [core.ErrNotFound].
func (s *DeviceStore) DeviceAuthorizationByID(ctx context.Context, id string) (*DeviceAuthorization, error) {
	d, err := scanDevice(s.db.QueryRow(ctx, s.db, `SELECT `+deviceColumns+` FROM nsauth_device_authorizations WHERE id = ?`, id))
	if err != nil {
		return nil, core.NotFound(err, "device authorization")
	}
	return d, nil
}

// DecideDeviceAuthorization records the user's decision on a pending
// device authorization: approved for userID (who logged in at authTime
// with amr), or denied. It is one conditional statement, so of two
// decisions (two tabs, two replicas) exactly one wins; the other fails
// with [core.ErrConflict]. An unknown or expired authorization fails with
// [core.ErrNotFound].
func (s *DeviceStore) DecideDeviceAuthorization(ctx context.Context, id string, approve bool, userID string, authTime time.Time, amr []string) (*DeviceAuthorization, error) {
	if userID == "" {
		return nil, errors.New("a device authorization is decided by a user")
	}
	state := DeviceDenied
	if approve {
		state = DeviceApproved
	}
	now := s.db.NowMillis()
	d, err := scanDevice(s.db.QueryRow(ctx, s.db, `UPDATE nsauth_device_authorizations
		SET state = ?, user_id = ?, auth_time = ?, amr = ?, decided_at = ?
		WHERE id = ? AND state = ? AND expires_at > ? RETURNING `+deviceColumns,
		state, userID, authTime.UnixMilli(), core.JoinList(amr), now, id, DevicePending, now))
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("deciding device authorization: %w", err)
	}
	cur, err := s.DeviceAuthorizationByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if cur.State != DevicePending {
		return nil, fmt.Errorf("device authorization decided before: %w", core.ErrConflict)
	}
	return nil, fmt.Errorf("device authorization expired: %w", core.ErrNotFound)
}

// DevicePoll is the outcome of [DeviceStore.PollDeviceAuthorization].
type DevicePoll struct {
	// Auth is the authorization as the poll left it. When its State is
	// DeviceApproved, this poll redeemed it: tokens are to be issued now,
	// and no other poll will get them.
	Auth *DeviceAuthorization
	// Expired is true when the authorization's time was up before it was
	// redeemed (a denied one reports its denial instead).
	Expired bool
	// SlowDown is true when a pending authorization was polled sooner than
	// its interval after the previous poll; the interval has grown by the
	// slow-down step.
	SlowDown bool
}

// PollDeviceAuthorization answers a client's poll with deviceCode, in one
// transaction that locks the row, so a poll racing the user's decision, or
// two polls racing each other on two replicas, are safe: an approved
// authorization is redeemed by exactly one poll. A pending one records
// the poll's time; a poll sooner than the interval after the previous one
// is answered SlowDown and grows the interval by step, up to maxInterval.
//
// An unknown device code, or one issued to another client than clientID,
// fails with [core.ErrNotFound]. A device code that was redeemed before fails
// with [core.ErrReused], after every token issued from it has been revoked.
func (s *DeviceStore) PollDeviceAuthorization(ctx context.Context, deviceCode, clientID string, step, maxInterval time.Duration) (*DevicePoll, error) {
	var out DevicePoll
	var reused bool
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		now := s.db.Now()
		var last sql.NullInt64
		var used sql.NullInt64
		row := s.db.QueryRow(ctx, tx, `SELECT `+deviceColumns+`, last_polled_at FROM nsauth_device_authorizations
			WHERE device_code_hash = ?`+s.db.Dialect.LockRows, core.HashSecret(deviceCode))
		d, err := scanDevice(scanAlso{row, []any{&last}})
		if err != nil {
			return core.NotFound(err, "device authorization")
		}
		if d.ClientID != clientID {
			return fmt.Errorf("device authorization of another client: %w", core.ErrNotFound)
		}
		out.Auth = d
		switch {
		case !d.UsedAt.IsZero():
			reused = true
			return s.rev.Grant(ctx, tx, d.ID)
		case d.State == DeviceDenied:
			return nil
		case d.Expired(now):
			out.Expired = true
			return nil
		case d.State == DeviceApproved:
			used = sql.NullInt64{Int64: now.UnixMilli(), Valid: true}
			if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_device_authorizations SET used_at = ? WHERE id = ?`, used, d.ID); err != nil {
				return fmt.Errorf("redeeming device authorization: %w", err)
			}
			d.UsedAt = core.FromMillis(used)
			return nil
		}
		interval := d.PollInterval
		if last.Valid && now.Sub(time.UnixMilli(last.Int64)) < interval {
			out.SlowDown = true
			interval = min(interval+step, max(maxInterval, d.PollInterval))
		}
		if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_device_authorizations SET last_polled_at = ?, poll_interval_ms = ? WHERE id = ?`,
			now.UnixMilli(), interval.Milliseconds(), d.ID); err != nil {
			return fmt.Errorf("recording a device poll: %w", err)
		}
		d.PollInterval = interval
		return nil
	})
	if reused && err == nil {
		return nil, fmt.Errorf("device code: %w", core.ErrReused)
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// scanAlso scans a row of deviceColumns followed by more columns.
type scanAlso struct {
	row  core.Scanner
	more []any
}

func (s scanAlso) Scan(dest ...any) error { return s.row.Scan(append(dest, s.more...)...) }
