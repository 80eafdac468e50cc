// Package signingkeys keeps the provider's token-signing keys, their
// private halves sealed, and serialises their rotation across processes.
package signingkeys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/internal/sealing"
)

// KeyStore keeps signing keys.
type KeyStore struct {
	db   *core.DB
	keys *sealing.Keys
}

// New returns the signing keys of db, sealed with keys.
func New(db *core.DB, keys *sealing.Keys) *KeyStore {
	return &KeyStore{db: db, keys: keys}
}

// SigningKey is a token-signing key pair.
type SigningKey struct {
	// ID is the key's `kid`.
	ID string
	// Algorithm is the JWS algorithm, such as RS256.
	Algorithm string
	// PrivateKey is the PKCS #8 DER encoding of the private key. It is
	// sealed in the database (see [Options.Keyring]) and clear here.
	PrivateKey []byte
	CreatedAt  time.Time
	// ActivatesAt is when the key starts signing. Keys are published before
	// they activate, so every verifier has them by then.
	ActivatesAt time.Time
	// ExpiresAt is when the key leaves the key set: after every token it
	// signed has expired. Zero while the key is current.
	ExpiresAt time.Time
}

// KeyChange is what an [KeyStore.UpdateSigningKeys] callback decides.
type KeyChange struct {
	// Add is a key to store, or nil.
	Add *SigningKey
	// Expire sets ExpiresAt of existing keys, by id.
	Expire map[string]time.Time
}

// SigningKeys returns the keys that have not expired, oldest activation
// first.
func (s *KeyStore) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	return s.signingKeys(ctx, s.db)
}

func (s *KeyStore) signingKeys(ctx context.Context, q core.Querier) ([]SigningKey, error) {
	query := `SELECT id, algorithm, private_key, created_at, activates_at, expires_at FROM nsauth_signing_keys
		WHERE expires_at IS NULL OR expires_at > ? ORDER BY activates_at, id`
	rows, err := s.db.Query(ctx, q, query, s.db.NowMillis())
	if err != nil {
		return nil, fmt.Errorf("reading signing keys: %w", err)
	}
	defer rows.Close()
	var out []SigningKey
	for rows.Next() {
		var k SigningKey
		var created, activates int64
		var expires sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PrivateKey, &created, &activates, &expires); err != nil {
			return nil, fmt.Errorf("reading signing keys: %w", err)
		}
		k.CreatedAt, k.ActivatesAt, k.ExpiresAt = time.UnixMilli(created), time.UnixMilli(activates), core.FromMillis(expires)
		der, err := s.keys.Open(k.PrivateKey, sealing.SigningKeyAD(k.ID))
		if err != nil {
			return nil, fmt.Errorf("opening signing key %s: %w", k.ID, err)
		}
		k.PrivateKey = der
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading signing keys: %w", err)
	}
	return out, nil
}

// UpdateSigningKeys calls decide with the current keys while holding a lock
// that every process sharing the database respects, and applies the change
// it returns. Two processes deciding at once therefore see each other's
// result: the second one finds the key the first one added. decide may be
// called with no keys at all (first start).
func (s *KeyStore) UpdateSigningKeys(ctx context.Context, decide func(keys []SigningKey) (KeyChange, error)) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var name string
		if err := s.db.QueryRow(ctx, tx, `SELECT name FROM nsauth_locks WHERE name = 'signing_keys'`+s.db.Dialect.LockRows).Scan(&name); err != nil {
			return fmt.Errorf("taking the signing-key lock: %w", err)
		}
		keys, err := s.signingKeys(ctx, tx)
		if err != nil {
			return err
		}
		change, err := decide(keys)
		if err != nil {
			return err
		}
		for id, at := range change.Expire {
			if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_signing_keys SET expires_at = ? WHERE id = ?`, at.UnixMilli(), id); err != nil {
				return fmt.Errorf("scheduling key expiry: %w", err)
			}
		}
		if k := change.Add; k != nil {
			if k.ID == "" || k.Algorithm == "" || len(k.PrivateKey) == 0 {
				return errors.New("a signing key needs an id, an algorithm and a private key")
			}
			sealed, err := s.keys.SealIn(ctx, tx, k.PrivateKey, sealing.SigningKeyAD(k.ID))
			if err != nil {
				return fmt.Errorf("sealing signing key: %w", err)
			}
			k.CreatedAt = s.db.Now()
			if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_signing_keys (id, algorithm, private_key, created_at, activates_at, expires_at)
				VALUES (?, ?, ?, ?, ?, ?)`, k.ID, k.Algorithm, sealed, k.CreatedAt.UnixMilli(), k.ActivatesAt.UnixMilli(), core.Millis(k.ExpiresAt)); err != nil {
				return fmt.Errorf("storing signing key: %w", err)
			}
		}
		return nil
	})
}
