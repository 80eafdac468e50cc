// Package users keeps the accounts that log in to the built-in provider.
// A changed password, a disabled account and a deleted one revoke every
// token the user holds, in the same transaction.
package users

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/revocations"
	"github.com/nsauth/nsauth/internal/store/sessions"
	"github.com/nsauth/nsauth/internal/visible"
)

// UserStore keeps user accounts.
type UserStore struct {
	db  *core.DB
	rev *revocations.Revoker
}

// New returns the users of db, whose tokens rev revokes.
func New(db *core.DB, rev *revocations.Revoker) *UserStore {
	return &UserStore{db: db, rev: rev}
}

// User is an account that can log in to the built-in provider.
type User struct {
	// ID is the stable subject (`sub`) of the user's tokens.
	ID string
	// Username is what the user types at the login page; unique, stored
	// lower-case (see [NormalizeUsername]).
	Username string
	// Name and Email are optional profile claims.
	Name, Email string
	// PasswordHash is the argon2id PHC string; never the password. It is
	// empty for a user created by a connector sign-in (see
	// [CreateWithoutPassword]), whom no password lets in until one is set.
	PasswordHash string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// DisabledAt is when the account was disabled; zero when it is enabled.
	DisabledAt time.Time
}

// Disabled reports whether the account is disabled.
func (u *User) Disabled() bool { return !u.DisabledAt.IsZero() }

// HasPassword reports whether the account has a password: a user created
// by a connector sign-in has none, and a password check must then fail
// (spending the time of one, as for an unknown user).
func (u *User) HasPassword() bool { return u.PasswordHash != "" }

// MaxUsernameLen bounds usernames.
const MaxUsernameLen = 64

// NormalizeUsername lower-cases a username and checks it: 1 to 64
// characters from a-z, 0-9 and . _ @ + -, starting with a letter or digit.
// The error text never contains the input.
func NormalizeUsername(name string) (string, error) {
	n := strings.ToLower(name)
	if n == "" || len(n) > MaxUsernameLen {
		return "", fmt.Errorf("a username must be 1 to %d characters long", MaxUsernameLen)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (i > 0 && strings.IndexByte("._@+-", c) >= 0)
		if !ok {
			return "", fmt.Errorf("a username may contain only letters, digits and . _ @ + - (and must start with a letter or digit)")
		}
	}
	return n, nil
}

// maxProfileLen bounds the optional name and email.
const maxProfileLen = 256

// checkProfile checks the name and email an administrator reads in
// nsauth users list: bounded, and text that shows as itself (package
// visible's rule).
func checkProfile(u *User) error {
	if len(u.Name) > maxProfileLen || len(u.Email) > maxProfileLen {
		return fmt.Errorf("name and email must be at most %d bytes", maxProfileLen)
	}
	if err := visible.Check("a user's name", u.Name); err != nil {
		return err
	}
	return visible.Check("an email address", u.Email)
}

// CreateUser stores a new user. ID is generated when empty; the username
// is normalised. It returns an error wrapping [core.ErrConflict] when the
// username is taken.
func (s *UserStore) CreateUser(ctx context.Context, u *User) error {
	return s.createUser(ctx, s.db, u, false)
}

// CreateWithoutPassword is CreateUser, in tx, for a user without a
// password (u.PasswordHash must be empty): the connectors store creates
// one bound to an upstream identity in the same transaction. It is a
// function, not a method, so that it is not one of package store's.
func CreateWithoutPassword(ctx context.Context, s *UserStore, tx *sql.Tx, u *User) error {
	if u.PasswordHash != "" {
		return fmt.Errorf("a user created without a password has no password hash")
	}
	return s.createUser(ctx, tx, u, true)
}

func (s *UserStore) createUser(ctx context.Context, q core.Querier, u *User, noPassword bool) error {
	name, err := NormalizeUsername(u.Username)
	if err != nil {
		return err
	}
	if err := checkProfile(u); err != nil {
		return err
	}
	if u.PasswordHash == "" && !noPassword {
		return fmt.Errorf("a password hash is required")
	}
	u.Username = name
	if u.ID == "" {
		u.ID = core.NewID()
	}
	now := s.db.Now()
	u.CreatedAt, u.UpdatedAt = now, now
	_, err = s.db.Exec(ctx, q, `INSERT INTO nsauth_users (id, username, name, email, password_hash, created_at, updated_at, disabled_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, u.Name, u.Email, u.PasswordHash, now.UnixMilli(), now.UnixMilli(), core.Millis(u.DisabledAt))
	if err != nil {
		if s.db.Dialect.IsUnique(err) {
			return fmt.Errorf("user %q: %w", u.Username, core.ErrConflict)
		}
		return fmt.Errorf("creating user: %w", err)
	}
	return nil
}

// CreateInitialAdmin creates u unless the first-start administrator was
// created before (by this or another process sharing the database), and
// reports whether it did. It returns false with no error when a user with
// that name already exists, which is then left untouched. Deleting the
// administrator later does not bring it back at the next start.
//
// The administrator it creates is made a member of the nsauth group
// [AdminGroup] (created if missing), in the same transaction, so that the
// first administrator can use the admin API (nsauth.admin.v1) at once.
func (s *UserStore) CreateInitialAdmin(ctx context.Context, u *User) (bool, error) {
	created := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_instance_values (name, value, created_at) VALUES ('admin_bootstrapped', ?, ?)
			ON CONFLICT (name) DO NOTHING`, u.Username, s.db.NowMillis())
		if err != nil {
			return fmt.Errorf("recording first start: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		name, err := NormalizeUsername(u.Username)
		if err != nil {
			return err
		}
		var exists int
		err = s.db.QueryRow(ctx, tx, `SELECT 1 FROM nsauth_users WHERE username = ?`, name).Scan(&exists)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("reading users: %w", err)
		}
		if err := s.createUser(ctx, tx, u, false); err != nil {
			return err
		}
		now := s.db.NowMillis()
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_groups (name, description, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO NOTHING`, AdminGroup, adminGroupDescription, now); err != nil {
			return fmt.Errorf("creating the group %q: %w", AdminGroup, err)
		}
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_group_members (group_name, user_id, created_at) VALUES (?, ?, ?)`,
			AdminGroup, u.ID, now); err != nil {
			return fmt.Errorf("making the administrator a member of %q: %w", AdminGroup, err)
		}
		created = true
		return nil
	})
	return created, err
}

// AdminGroup is the nsauth group whose members may use the admin API.
const AdminGroup = "admin"

const adminGroupDescription = "nsauth administrators (the admin API)"

const userColumns = `id, username, name, email, password_hash, created_at, updated_at, disabled_at`

func scanUser(row core.Scanner) (*User, error) {
	var u User
	var created, updated, disabled sql.NullInt64
	if err := row.Scan(&u.ID, &u.Username, &u.Name, &u.Email, &u.PasswordHash, &created, &updated, &disabled); err != nil {
		return nil, err
	}
	u.CreatedAt, u.UpdatedAt, u.DisabledAt = core.FromMillis(created), core.FromMillis(updated), core.FromMillis(disabled)
	return &u, nil
}

// UserByUsername returns the user with that (case-insensitive) name, or an
// error wrapping [core.ErrNotFound].
func (s *UserStore) UserByUsername(ctx context.Context, username string) (*User, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return nil, fmt.Errorf("user: %w", core.ErrNotFound)
	}
	u, err := scanUser(s.db.QueryRow(ctx, s.db, `SELECT `+userColumns+` FROM nsauth_users WHERE username = ?`, name))
	if err != nil {
		return nil, core.NotFound(err, "user")
	}
	return u, nil
}

// UserByID returns the user with that id, or an error wrapping
// [core.ErrNotFound].
func (s *UserStore) UserByID(ctx context.Context, id string) (*User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, s.db, `SELECT `+userColumns+` FROM nsauth_users WHERE id = ?`, id))
	if err != nil {
		return nil, core.NotFound(err, "user")
	}
	return u, nil
}

// ListUsers returns every user, ordered by username.
func (s *UserStore) ListUsers(ctx context.Context) ([]User, error) {
	return core.QueryAll(ctx, s.db, "listing users", scanUser, `SELECT `+userColumns+` FROM nsauth_users ORDER BY username`)
}

// ListUsersAfter returns at most limit users whose username sorts after
// after, ordered by username: a page, one range of the username index
// however deep it starts.
func (s *UserStore) ListUsersAfter(ctx context.Context, after string, limit int) ([]User, error) {
	return core.QueryAll(ctx, s.db, "listing users", scanUser,
		`SELECT `+userColumns+` FROM nsauth_users WHERE username > ? ORDER BY username LIMIT ?`, after, limit)
}

// SetPassword replaces a user's password hash, revokes every token the
// user holds and ends the user's browser sessions, so a changed password
// ends existing sessions.
func (s *UserStore) SetPassword(ctx context.Context, username, hash string) error {
	if hash == "" {
		return fmt.Errorf("a password hash is required")
	}
	return s.updateUser(ctx, username, nil, `UPDATE nsauth_users SET password_hash = ?, updated_at = ? WHERE username = ? RETURNING id`, hash, s.db.NowMillis())
}

// SetDisabled disables or enables a user. Disabling revokes every token the
// user holds, ends the user's browser sessions and deletes the user's
// one-time account link (package accountlinks; the caller, which audits
// it, reads it first with UserLink).
func (s *UserStore) SetDisabled(ctx context.Context, username string, disabled bool) error {
	now := s.db.NowMillis()
	if disabled {
		return s.updateUser(ctx, username, deleteLinks, `UPDATE nsauth_users SET disabled_at = COALESCE(disabled_at, ?), updated_at = ? WHERE username = ? RETURNING id`, now, now)
	}
	name, err := NormalizeUsername(username)
	if err != nil {
		return fmt.Errorf("user: %w", core.ErrNotFound)
	}
	res, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_users SET disabled_at = NULL, updated_at = ? WHERE username = ?`, now, name)
	if err != nil {
		return fmt.Errorf("enabling user: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user: %w", core.ErrNotFound)
	}
	return nil
}

// deleteLinks deletes a user's one-time account links, in tx.
func deleteLinks(ctx context.Context, db *core.DB, tx *sql.Tx, userID string) error {
	if _, err := db.Exec(ctx, tx, `DELETE FROM nsauth_account_links WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("revoking the user's account links: %w", err)
	}
	return nil
}

// updateUser runs an UPDATE … WHERE username = ? RETURNING id (the
// username is appended to args), revokes the user's tokens and ends the
// user's browser sessions, and runs also (when not nil), atomically.
func (s *UserStore) updateUser(ctx context.Context, username string, also func(context.Context, *core.DB, *sql.Tx, string) error, query string, args ...any) error {
	name, err := NormalizeUsername(username)
	if err != nil {
		return fmt.Errorf("user: %w", core.ErrNotFound)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var id string
		if err := s.db.QueryRow(ctx, tx, query, append(args, name)...).Scan(&id); err != nil {
			return core.NotFound(err, "user")
		}
		// Sessions first: end-session locks a session, then its grants'
		// tokens; taking the locks in the same order cannot deadlock.
		if err := sessions.EndRevokedUserSessions(ctx, s.db, tx, id); err != nil {
			return err
		}
		if err := s.rev.UserTokens(ctx, tx, id); err != nil {
			return err
		}
		if also != nil {
			return also(ctx, s.db, tx, id)
		}
		return nil
	})
}

// ChangePassword replaces the password hash of the user with that id (a
// change on the account page), ends the user's other browser sessions and
// revokes every token the user holds but those issued within session
// keepSessionID (when it is a live session of the user): the session the
// password was changed in goes on, every other refresh token is refused.
// It fails with [core.ErrNotFound] when there is no such user.
func (s *UserStore) ChangePassword(ctx context.Context, userID, hash, keepSessionID string) error {
	if hash == "" {
		return fmt.Errorf("a password hash is required")
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var id string
		if err := s.db.QueryRow(ctx, tx, `UPDATE nsauth_users SET password_hash = ?, updated_at = ? WHERE id = ? RETURNING id`,
			hash, s.db.NowMillis(), userID).Scan(&id); err != nil {
			return core.NotFound(err, "user")
		}
		// Sessions first, as in updateUser.
		keep, err := sessions.EndRevokedOtherSessions(ctx, s.db, tx, id, keepSessionID)
		if err != nil {
			return err
		}
		return s.rev.UserTokensExcept(ctx, tx, id, keep)
	})
}

// DeleteUser deletes a user and, by cascade, everything issued to it. Its
// tokens are revoked first, so that the revocations outlive the token
// records.
func (s *UserStore) DeleteUser(ctx context.Context, username string) error {
	name, err := NormalizeUsername(username)
	if err != nil {
		return fmt.Errorf("user: %w", core.ErrNotFound)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var id string
		if err := s.db.QueryRow(ctx, tx, `SELECT id FROM nsauth_users WHERE username = ?`+s.db.Dialect.LockRows, name).Scan(&id); err != nil {
			return core.NotFound(err, "user")
		}
		if err := s.rev.UserTokens(ctx, tx, id); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, `DELETE FROM nsauth_users WHERE id = ?`, id); err != nil {
			return fmt.Errorf("deleting user: %w", err)
		}
		return nil
	})
}
