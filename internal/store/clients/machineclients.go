package clients

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
)

// MachineClient is a confidential client that obtains access tokens for
// itself with the client-credentials grant: a program or a CI job rather
// than a person. Its tokens' subject is its ID.
//
// Machine clients share nsauth_clients with the native clients (the
// broker's own), so their access tokens are recorded and revoked like any
// other; [ClientStore.ClientByID] never returns one, so a machine client can
// never take part in a user's login.
type MachineClient struct {
	// ID is the client id, [MachineClientIDPrefix] and 128 random bits:
	// readable in logs, impossible to guess.
	ID string
	// Name is unique and chosen by the administrator (see
	// [NormalizeClientName]).
	Name string
	// SecretHash is [HashSecret] of the client secret; the secret itself
	// is shown once, when it is created or rotated, and never stored.
	SecretHash []byte
	// Scopes are the scopes the client may be granted; a token request
	// that names none gets them all.
	Scopes []string
	// TokenTTL is the lifetime of the client's access tokens; zero means
	// the server's cap. The server's cap bounds it either way.
	TokenTTL   time.Duration
	CreatedAt  time.Time
	UpdatedAt  time.Time
	DisabledAt time.Time
}

// MachineClientIDPrefix starts every machine client's id, so that an id
// says what it names.
const MachineClientIDPrefix = "m-"

// machineKind is the nsauth_clients.kind of machine clients.
const machineKind = "machine"

// NewMachineClientID returns a fresh machine client id.
func NewMachineClientID() string { return MachineClientIDPrefix + core.RandomToken(16) }

// NewMachineClientSecret returns a fresh client secret: 256 random bits,
// base64url.
func NewMachineClientSecret() string { return core.RandomToken(32) }

// Disabled reports whether the client is disabled.
func (c *MachineClient) Disabled() bool { return !c.DisabledAt.IsZero() }

// CheckSecret reports whether secret is the client's secret, in constant
// time.
func (c *MachineClient) CheckSecret(secret string) bool { return secretMatches(secret, c.SecretHash) }

// MaxClientNameLen bounds machine client names.
const MaxClientNameLen = 64

// NormalizeClientName lower-cases a machine client name and checks it: 1
// to 64 characters from a-z, 0-9 and . _ -, starting with a letter. The
// error text never contains the input.
func NormalizeClientName(name string) (string, error) {
	n := strings.ToLower(name)
	if n == "" || len(n) > MaxClientNameLen {
		return "", fmt.Errorf("a client name must be 1 to %d characters long", MaxClientNameLen)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := c >= 'a' && c <= 'z' || (i > 0 && (c >= '0' && c <= '9' || strings.IndexByte("._-", c) >= 0))
		if !ok {
			return "", fmt.Errorf("a client name may contain only letters, digits and . _ - (and must start with a letter)")
		}
	}
	return n, nil
}

// maxClientScopes bounds a client's allowed scopes.
const maxClientScopes = 32

func checkClientScopes(scopes []string) error {
	for _, sc := range scopes {
		if sc == "openid" || sc == "offline_access" {
			// A machine client gets no ID token (there is no person) and no
			// refresh token (it holds its secret).
			return fmt.Errorf("a machine client cannot be allowed the openid or offline_access scope")
		}
	}
	return checkScopeSyntax(scopes)
}

// checkScopeSyntax bounds a client's allowed scopes (machine client or
// app) and checks their characters.
func checkScopeSyntax(scopes []string) error {
	if len(scopes) > maxClientScopes {
		return fmt.Errorf("a client may have at most %d scopes", maxClientScopes)
	}
	for _, sc := range scopes {
		if sc == "" || len(sc) > 128 || strings.ContainsFunc(sc, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' || r > '~' }) {
			return fmt.Errorf("a scope must be 1 to 128 printable ASCII characters without spaces, quotes or backslashes")
		}
	}
	return nil
}

// CreateMachineClient stores a new machine client. ID is generated when
// empty; Name is normalised; SecretHash is required. It returns an error
// wrapping [core.ErrConflict] when the name is taken.
func (s *ClientStore) CreateMachineClient(ctx context.Context, c *MachineClient) error {
	name, err := NormalizeClientName(c.Name)
	if err != nil {
		return err
	}
	if len(c.SecretHash) == 0 {
		return fmt.Errorf("a client secret hash is required")
	}
	if err := checkClientScopes(c.Scopes); err != nil {
		return err
	}
	if c.TokenTTL < 0 {
		return fmt.Errorf("a token lifetime cannot be negative")
	}
	c.Name = name
	if c.ID == "" {
		c.ID = NewMachineClientID()
	}
	now := s.db.Now()
	c.CreatedAt, c.UpdatedAt = now, now
	_, err = s.db.Exec(ctx, s.db, `INSERT INTO nsauth_clients (id, secret_hash, redirect_uris, created_at, kind, name, scopes, token_ttl_ms, updated_at, disabled_at)
		VALUES (?, ?, '[]', ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.SecretHash, now.UnixMilli(), machineKind, c.Name, core.JoinList(c.Scopes), c.TokenTTL.Milliseconds(), now.UnixMilli(), core.Millis(c.DisabledAt))
	if err != nil {
		if s.db.Dialect.IsUnique(err) {
			return fmt.Errorf("client %q: %w", c.Name, core.ErrConflict)
		}
		return fmt.Errorf("creating client: %w", err)
	}
	return nil
}

const machineClientColumns = `id, name, secret_hash, scopes, token_ttl_ms, created_at, updated_at, disabled_at`

func scanMachineClient(row core.Scanner) (*MachineClient, error) {
	var c MachineClient
	var scopes string
	var ttl, created int64
	var updated, disabled sql.NullInt64
	if err := row.Scan(&c.ID, &c.Name, &c.SecretHash, &scopes, &ttl, &created, &updated, &disabled); err != nil {
		return nil, err
	}
	c.Scopes, c.TokenTTL = core.SplitList(scopes), time.Duration(ttl)*time.Millisecond
	c.CreatedAt, c.UpdatedAt, c.DisabledAt = time.UnixMilli(created), core.FromMillis(updated), core.FromMillis(disabled)
	return &c, nil
}

// MachineClientByID returns a machine client, disabled or not, or an
// error wrapping [core.ErrNotFound] (also for the id of a native client).
func (s *ClientStore) MachineClientByID(ctx context.Context, id string) (*MachineClient, error) {
	c, err := scanMachineClient(s.db.QueryRow(ctx, s.db, `SELECT `+machineClientColumns+` FROM nsauth_clients WHERE id = ? AND kind = ?`, id, machineKind))
	if err != nil {
		return nil, core.NotFound(err, "client")
	}
	return c, nil
}

// MachineClientByName returns the machine client with that
// (case-insensitive) name, or an error wrapping [core.ErrNotFound].
func (s *ClientStore) MachineClientByName(ctx context.Context, name string) (*MachineClient, error) {
	n, err := NormalizeClientName(name)
	if err != nil {
		return nil, fmt.Errorf("client: %w", core.ErrNotFound)
	}
	c, err := scanMachineClient(s.db.QueryRow(ctx, s.db, `SELECT `+machineClientColumns+` FROM nsauth_clients WHERE name = ? AND kind = ?`, n, machineKind))
	if err != nil {
		return nil, core.NotFound(err, "client")
	}
	return c, nil
}

// ListMachineClients returns every machine client, ordered by name.
func (s *ClientStore) ListMachineClients(ctx context.Context) ([]MachineClient, error) {
	return core.QueryAll(ctx, s.db, "listing clients", scanMachineClient, `SELECT `+machineClientColumns+` FROM nsauth_clients WHERE kind = ? ORDER BY name`, machineKind)
}

// SetMachineClientSecret replaces a machine client's secret hash and
// revokes every token issued to the client, atomically: the old secret
// and what it obtained stop working together.
func (s *ClientStore) SetMachineClientSecret(ctx context.Context, id string, secretHash []byte) error {
	if len(secretHash) == 0 {
		return fmt.Errorf("a client secret hash is required")
	}
	return s.updateMachineClient(ctx, id, `UPDATE nsauth_clients SET secret_hash = ?, updated_at = ? WHERE id = ? AND kind = 'machine' RETURNING id`,
		secretHash, s.db.NowMillis())
}

// SetMachineClientDisabled disables or enables a machine client.
// Disabling revokes every token issued to it.
func (s *ClientStore) SetMachineClientDisabled(ctx context.Context, id string, disabled bool) error {
	now := s.db.NowMillis()
	if disabled {
		return s.updateMachineClient(ctx, id, `UPDATE nsauth_clients SET disabled_at = COALESCE(disabled_at, ?), updated_at = ? WHERE id = ? AND kind = 'machine' RETURNING id`, now, now)
	}
	res, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_clients SET disabled_at = NULL, updated_at = ? WHERE id = ? AND kind = ?`, now, id, machineKind)
	if err != nil {
		return fmt.Errorf("enabling client: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("client: %w", core.ErrNotFound)
	}
	return nil
}

// updateMachineClient runs an UPDATE … WHERE id = ? … RETURNING id (id
// is appended to args) and revokes the client's tokens, atomically.
func (s *ClientStore) updateMachineClient(ctx context.Context, id, query string, args ...any) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var got string
		if err := s.db.QueryRow(ctx, tx, query, append(args, id)...).Scan(&got); err != nil {
			return core.NotFound(err, "client")
		}
		return s.rev.ClientTokens(ctx, tx, id)
	})
}

// DeleteMachineClient deletes a machine client and, by cascade, the
// records of its tokens. The tokens are revoked first, so that the
// revocations outlive the records.
func (s *ClientStore) DeleteMachineClient(ctx context.Context, id string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var got string
		if err := s.db.QueryRow(ctx, tx, `SELECT id FROM nsauth_clients WHERE id = ? AND kind = ?`+s.db.Dialect.LockRows, id, machineKind).Scan(&got); err != nil {
			return core.NotFound(err, "client")
		}
		if err := s.rev.ClientTokens(ctx, tx, id); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, `DELETE FROM nsauth_clients WHERE id = ?`, id); err != nil {
			return fmt.Errorf("deleting client: %w", err)
		}
		return nil
	})
}
