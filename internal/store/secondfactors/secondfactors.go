// Package secondfactors keeps what a login needs beyond the password
// (issue 15): a user's TOTP secret, their recovery codes, the logins
// waiting between password and second factor, and the enrolment links
// that let a user add a factor in the browser. [FactorStore.ResetSecondFactors]
// is the one place that removes every factor (passkeys included), so a
// new kind is added there.
package secondfactors

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/internal/sealing"
	"github.com/nsauth/nsauth/internal/store/users"
)

// FactorStore keeps second factors and the logins waiting for one.
type FactorStore struct {
	db    *core.DB
	keys  *sealing.Keys
	users *users.UserStore
}

// New returns the second factors of db: TOTP secrets are sealed with
// keys, and enrolment links name users of users.
func New(db *core.DB, keys *sealing.Keys, users *users.UserStore) *FactorStore {
	return &FactorStore{db: db, keys: keys, users: users}
}

// SecondFactors says which second factors a user has.
type SecondFactors struct {
	// TOTP is true when the user has a confirmed TOTP secret.
	TOTP bool
	// RecoveryCodes is how many unused recovery codes the user has.
	RecoveryCodes int
	// Passkeys is how many passkeys the user has (package passkeys).
	Passkeys int
}

// Any reports whether the user has a factor that can log in on its own
// (recovery codes alone do not count: they are the way back in when the
// factor is lost).
func (f SecondFactors) Any() bool { return f.TOTP || f.Passkeys > 0 }

// SecondFactors returns which second factors the user has; none (and no
// error) for an unknown user.
func (s *FactorStore) SecondFactors(ctx context.Context, userID string) (SecondFactors, error) {
	var f SecondFactors
	var totp int
	err := s.db.QueryRow(ctx, s.db, `SELECT
		(SELECT COUNT(*) FROM nsauth_totp WHERE user_id = ?),
		(SELECT COUNT(*) FROM nsauth_recovery_codes WHERE user_id = ?),
		(SELECT COUNT(*) FROM nsauth_passkeys WHERE user_id = ?)`, userID, userID, userID).Scan(&totp, &f.RecoveryCodes, &f.Passkeys)
	if err != nil {
		return SecondFactors{}, fmt.Errorf("reading second factors: %w", err)
	}
	f.TOTP = totp > 0
	return f, nil
}

// SecondFactorsOf is [FactorStore.SecondFactors] of each of userIDs (at
// most [core.MaxInArgs]), in three queries whatever their number: a page
// of a user listing. A user without factors is absent from the map.
func (s *FactorStore) SecondFactorsOf(ctx context.Context, userIDs []string) (map[string]SecondFactors, error) {
	out := make(map[string]SecondFactors)
	if len(userIDs) == 0 {
		return out, nil
	}
	in, args := core.InArgs(userIDs)
	type count struct {
		id string
		n  int
	}
	for _, t := range []struct {
		table string
		set   func(f *SecondFactors, n int)
	}{
		{"nsauth_totp", func(f *SecondFactors, n int) { f.TOTP = n > 0 }},
		{"nsauth_recovery_codes", func(f *SecondFactors, n int) { f.RecoveryCodes = n }},
		{"nsauth_passkeys", func(f *SecondFactors, n int) { f.Passkeys = n }},
	} {
		counts, err := core.QueryAll(ctx, s.db, "reading second factors", func(row core.Scanner) (*count, error) {
			var c count
			return &c, row.Scan(&c.id, &c.n)
		}, `SELECT user_id, COUNT(*) FROM `+t.table+` WHERE user_id IN (`+in+`) GROUP BY user_id`, args...)
		if err != nil {
			return nil, err
		}
		for _, c := range counts {
			f := out[c.id]
			t.set(&f, c.n)
			out[c.id] = f
		}
	}
	return out, nil
}

// EnrollTOTP stores a user's confirmed TOTP secret and replaces their
// recovery codes with recoveryCodes, in one transaction. usedStep is the
// time step of the code that confirmed the secret: that code cannot be
// used again. It returns an error wrapping [core.ErrConflict] when the user
// already has a TOTP secret, and [core.ErrNotFound] when there is no such
// user. The secret is sealed under the keyring.
func (s *FactorStore) EnrollTOTP(ctx context.Context, userID, secret string, usedStep int64, recoveryCodes []string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := s.db.QueryRow(ctx, tx, `SELECT 1 FROM nsauth_users WHERE id = ?`+s.db.Dialect.LockRows, userID).Scan(&one); err != nil {
			return core.NotFound(err, "user")
		}
		sealed, err := s.keys.SealIn(ctx, tx, []byte(secret), sealing.TOTPSecretAD(userID))
		if err != nil {
			return fmt.Errorf("sealing the TOTP secret: %w", err)
		}
		now := s.db.NowMillis()
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_totp (user_id, secret, last_step, created_at) VALUES (?, ?, ?, ?)`,
			userID, sealed, usedStep, now); err != nil {
			if s.db.Dialect.IsUnique(err) {
				return fmt.Errorf("the user already has a TOTP secret: %w", core.ErrConflict)
			}
			return fmt.Errorf("storing the TOTP secret: %w", err)
		}
		return s.replaceRecoveryCodes(ctx, tx, userID, recoveryCodes)
	})
}

// ReplaceRecoveryCodes replaces a user's recovery codes.
func (s *FactorStore) ReplaceRecoveryCodes(ctx context.Context, userID string, codes []string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error { return s.replaceRecoveryCodes(ctx, tx, userID, codes) })
}

// AddRecoveryCodesIfNone stores codes as a user's recovery codes when the
// user has none, in one transaction: of two simultaneous calls, one
// stores its codes and the other gets an error wrapping [core.ErrConflict]
// (as does a user who has some). [core.ErrNotFound]: no such user.
func (s *FactorStore) AddRecoveryCodesIfNone(ctx context.Context, userID string, codes []string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := s.db.QueryRow(ctx, tx, `SELECT 1 FROM nsauth_users WHERE id = ?`+s.db.Dialect.LockRows, userID).Scan(&one); err != nil {
			return core.NotFound(err, "user")
		}
		var n int
		if err := s.db.QueryRow(ctx, tx, `SELECT COUNT(*) FROM nsauth_recovery_codes WHERE user_id = ?`, userID).Scan(&n); err != nil {
			return fmt.Errorf("counting recovery codes: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("the user has recovery codes: %w", core.ErrConflict)
		}
		return s.replaceRecoveryCodes(ctx, tx, userID, codes)
	})
}

func (s *FactorStore) replaceRecoveryCodes(ctx context.Context, tx *sql.Tx, userID string, codes []string) error {
	if _, err := s.db.Exec(ctx, tx, `DELETE FROM nsauth_recovery_codes WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("removing recovery codes: %w", err)
	}
	now := s.db.NowMillis()
	for _, c := range codes {
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)`,
			userID, core.HashSecret(c), now); err != nil {
			return fmt.Errorf("storing recovery codes: %w", err)
		}
	}
	return nil
}

// TOTPSecret returns a user's TOTP secret, in clear, and the time step of
// the last code accepted. It returns an error wrapping [core.ErrNotFound] when
// the user has none.
func (s *FactorStore) TOTPSecret(ctx context.Context, userID string) (secret string, lastStep int64, err error) {
	var sealed []byte
	if err := s.db.QueryRow(ctx, s.db, `SELECT secret, last_step FROM nsauth_totp WHERE user_id = ?`, userID).Scan(&sealed, &lastStep); err != nil {
		return "", 0, core.NotFound(err, "TOTP secret")
	}
	plain, err := s.keys.Open(sealed, sealing.TOTPSecretAD(userID))
	if err != nil {
		return "", 0, fmt.Errorf("opening the TOTP secret: %w", err)
	}
	return string(plain), lastStep, nil
}

// UseTOTPStep records that a code of time step `step` was accepted for a
// user. It returns an error wrapping [core.ErrReused] when a code of that step
// or a later one was accepted before (so of two simultaneous uses of one
// code exactly one succeeds, across replicas), and [core.ErrNotFound] when the
// user has no TOTP secret.
func (s *FactorStore) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	res, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_totp SET last_step = ? WHERE user_id = ? AND last_step < ?`, step, userID, step)
	if err != nil {
		return fmt.Errorf("recording a TOTP code: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var one int
	if err := s.db.QueryRow(ctx, s.db, `SELECT 1 FROM nsauth_totp WHERE user_id = ?`, userID).Scan(&one); err != nil {
		return core.NotFound(err, "TOTP secret")
	}
	return fmt.Errorf("TOTP code: %w", core.ErrReused)
}

// UseRecoveryCode uses up one of a user's recovery codes. It returns an
// error wrapping [core.ErrNotFound] when the user has no such unused code: of
// two simultaneous uses of one code, exactly one succeeds.
func (s *FactorStore) UseRecoveryCode(ctx context.Context, userID, code string) error {
	res, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_recovery_codes WHERE user_id = ? AND code_hash = ?`, userID, core.HashSecret(code))
	if err != nil {
		return fmt.Errorf("using a recovery code: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("recovery code: %w", core.ErrNotFound)
	}
	return nil
}

// RemoveTOTP removes a user's TOTP secret. Recovery codes stay. It
// returns an error wrapping [core.ErrNotFound] when the user had none.
func (s *FactorStore) RemoveTOTP(ctx context.Context, userID string) error {
	res, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_totp WHERE user_id = ?`, userID)
	if err != nil {
		return fmt.Errorf("removing the TOTP secret: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("TOTP secret: %w", core.ErrNotFound)
	}
	return nil
}

// ResetSecondFactors removes every second factor of a user (TOTP secret,
// recovery codes, passkeys) and the logins and passkey ceremonies waiting
// for one, in one transaction, for
// a user who lost their device. It returns how many rows went. Every new
// kind of second factor must be removed here too.
func (s *FactorStore) ResetSecondFactors(ctx context.Context, userID string) (int64, error) {
	var total int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM nsauth_totp WHERE user_id = ?`,
			`DELETE FROM nsauth_recovery_codes WHERE user_id = ?`,
			`DELETE FROM nsauth_mfa_pending WHERE user_id = ?`,
			`DELETE FROM nsauth_passkeys WHERE user_id = ?`,
			`DELETE FROM nsauth_passkey_ceremonies WHERE user_id = ?`,
		} {
			res, err := s.db.Exec(ctx, tx, q, userID)
			if err != nil {
				return fmt.Errorf("resetting second factors: %w", err)
			}
			n, _ := res.RowsAffected()
			total += n
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return total, nil
}

// Kinds of [PendingMFA].
const (
	// PendingVerify waits for a second factor the user has.
	PendingVerify = "verify"
	// PendingEnroll waits for the user to enrol a second factor, which the
	// policy requires.
	PendingEnroll = "enroll"
	// PendingEnrolled waits for the user who just enrolled to go on, once
	// they have their recovery codes.
	PendingEnrolled = "enrolled"
	// PendingOffer waits for the user's answer to the offer of a passkey,
	// after a login that proved two factors.
	PendingOffer = "offer"
)

// Steps a [PendingMFA] records as done.
const (
	// StepEnrolLink: the flow began with an enrolment link, not an auth
	// request; it ends when the user has enrolled.
	StepEnrolLink = "enrol_link"
	// StepOffered: the offer of a passkey was answered (a passkey added,
	// or "Not now"); it is not made twice in one login.
	StepOffered = "offered"
	// StepEnrolled: the user set up a factor in this flow.
	StepEnrolled = "enrolled"
)

// maxPendingCeremony bounds the WebAuthn session data kept on a step.
const maxPendingCeremony = 16 << 10

// PendingMFA is a login whose password was right and whose next step
// (second factor, enrolment, recovery codes, the offer of a passkey) is
// still to come. It is stored under a key the browser that gave the
// password holds half of (its CSRF token), so that no other browser can
// take a step of it.
type PendingMFA struct {
	// AuthRequestID is the auth request the login is for; the state is
	// good for no other. Empty only for a flow that began with an
	// enrolment link (Steps holds StepEnrolLink).
	AuthRequestID string
	UserID        string
	// AMR lists the methods used so far ("pwd").
	AMR []string
	// Kind is PendingVerify, PendingEnroll, PendingEnrolled or
	// PendingOffer.
	Kind string
	// Steps lists what the flow has done (StepEnrolLink, StepOffered).
	Steps []string
	// TOTPSecret is the secret offered to a user enrolling in the browser,
	// in clear here and sealed in the database; "" otherwise.
	TOTPSecret string
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// MaxPendingMFAPerUser bounds the waiting logins kept per user: creating
// one more removes the oldest.
const MaxPendingMFAPerUser = 5

// CreatePendingMFA stores p under token, a random value the browser
// holds (only its digest is stored). CreatedAt is set. A user keeps at
// most [MaxPendingMFAPerUser] of them: the oldest go first.
func (s *FactorStore) CreatePendingMFA(ctx context.Context, p *PendingMFA, token string) error {
	viaLink := slices.Contains(p.Steps, StepEnrolLink)
	if (p.AuthRequestID == "") != viaLink || p.UserID == "" || p.ExpiresAt.IsZero() ||
		!slices.Contains([]string{PendingVerify, PendingEnroll, PendingEnrolled, PendingOffer}, p.Kind) {
		return errors.New("a pending second factor needs an auth request (or an enrolment link), a user, a kind and an expiry")
	}
	hash := core.HashSecret(token)
	p.CreatedAt = s.db.Now()
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var sealed []byte
		if p.TOTPSecret != "" {
			var err error
			if sealed, err = s.keys.SealIn(ctx, tx, []byte(p.TOTPSecret), sealing.PendingSecretAD(hash)); err != nil {
				return fmt.Errorf("sealing the offered TOTP secret: %w", err)
			}
		}
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_mfa_pending (token_hash, auth_request_id, user_id, amr, kind, totp_secret, steps, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, hash, p.AuthRequestID, p.UserID, core.JoinList(p.AMR), p.Kind, sealed, core.JoinList(p.Steps),
			p.CreatedAt.UnixMilli(), p.ExpiresAt.UnixMilli()); err != nil {
			return fmt.Errorf("storing a pending second factor: %w", err)
		}
		if _, err := s.db.Exec(ctx, tx, `DELETE FROM nsauth_mfa_pending WHERE user_id = ? AND token_hash NOT IN
			(SELECT token_hash FROM nsauth_mfa_pending WHERE user_id = ? AND expires_at > ? ORDER BY created_at DESC, token_hash LIMIT ?)`,
			p.UserID, p.UserID, p.CreatedAt.UnixMilli(), MaxPendingMFAPerUser); err != nil {
			return fmt.Errorf("bounding pending second factors: %w", err)
		}
		return nil
	})
}

// PendingMFA returns the unexpired pending state stored under token, or
// an error wrapping [core.ErrNotFound].
func (s *FactorStore) PendingMFA(ctx context.Context, token string) (*PendingMFA, error) {
	hash := core.HashSecret(token)
	return s.scanPending(s.db.QueryRow(ctx, s.db, `SELECT `+pendingColumns+`
		FROM nsauth_mfa_pending WHERE token_hash = ? AND expires_at > ?`, hash, s.db.NowMillis()), hash)
}

// TakePendingMFA deletes and returns the unexpired pending state stored
// under token, or returns an error wrapping [core.ErrNotFound]: of two
// simultaneous takes, exactly one gets it.
func (s *FactorStore) TakePendingMFA(ctx context.Context, token string) (*PendingMFA, error) {
	hash := core.HashSecret(token)
	return s.scanPending(s.db.QueryRow(ctx, s.db, `DELETE FROM nsauth_mfa_pending WHERE token_hash = ? AND expires_at > ?
		RETURNING `+pendingColumns, hash, s.db.NowMillis()), hash)
}

const pendingColumns = `auth_request_id, user_id, amr, kind, totp_secret, steps, created_at, expires_at`

func (s *FactorStore) scanPending(row *core.Row, hash []byte) (*PendingMFA, error) {
	var p PendingMFA
	var amr, steps string
	var sealed []byte
	var created, expires int64
	if err := row.Scan(&p.AuthRequestID, &p.UserID, &amr, &p.Kind, &sealed, &steps, &created, &expires); err != nil {
		return nil, core.NotFound(err, "pending second factor")
	}
	p.AMR, p.Steps, p.CreatedAt, p.ExpiresAt = core.SplitList(amr), core.SplitList(steps), time.UnixMilli(created), time.UnixMilli(expires)
	if len(sealed) > 0 {
		plain, err := s.keys.Open(sealed, sealing.PendingSecretAD(hash))
		if err != nil {
			return nil, fmt.Errorf("opening the offered TOTP secret: %w", err)
		}
		p.TOTPSecret = string(plain)
	}
	return &p, nil
}

// SetPendingCeremony keeps the WebAuthn ceremony of the step stored under
// token (the library's session data), replacing the one begun before: a
// step has at most one ceremony in progress. It fails with [core.ErrNotFound]
// when the step is gone or expired.
func (s *FactorStore) SetPendingCeremony(ctx context.Context, token string, session []byte) error {
	if len(session) == 0 || len(session) > maxPendingCeremony {
		return errors.New("a ceremony needs bounded session data")
	}
	res, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_mfa_pending SET ceremony = ? WHERE token_hash = ? AND expires_at > ?`,
		string(session), core.HashSecret(token), s.db.NowMillis())
	if err != nil {
		return fmt.Errorf("storing a ceremony: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("pending second factor: %w", core.ErrNotFound)
	}
	return nil
}

// TakePendingCeremony removes and returns the ceremony of the step stored
// under token: a ceremony is answered once, right or wrong, and of two
// simultaneous answers exactly one gets it. The step itself stays. It
// fails with [core.ErrNotFound] when there is no ceremony (none begun, or
// taken) or the step is gone.
func (s *FactorStore) TakePendingCeremony(ctx context.Context, token string) ([]byte, error) {
	hash := core.HashSecret(token)
	var session sql.NullString
	err := s.db.QueryRow(ctx, s.db, `SELECT ceremony FROM nsauth_mfa_pending WHERE token_hash = ? AND expires_at > ?`, hash, s.db.NowMillis()).Scan(&session)
	if err != nil {
		return nil, core.NotFound(err, "pending second factor")
	}
	if !session.Valid {
		return nil, fmt.Errorf("ceremony: %w", core.ErrNotFound)
	}
	// Compare and clear: only the answer that still finds this very
	// ceremony takes it.
	res, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_mfa_pending SET ceremony = NULL WHERE token_hash = ? AND ceremony = ?`, hash, session.String)
	if err != nil {
		return nil, fmt.Errorf("taking a ceremony: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, fmt.Errorf("ceremony: %w", core.ErrNotFound)
	}
	return []byte(session.String), nil
}
