package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/nsauth/nsauth/internal/seal"
)

// ErrNoKeyring means a secret was to be read or written by a store opened
// without [Options.Keyring].
var ErrNoKeyring = errors.New("the store was opened without a secret key")

// SecretCounts counts sealed values by kind.
type SecretCounts struct {
	// SigningKeys counts rows of private signing keys.
	SigningKeys int
	// Values counts instance secrets (see [Store.EnsureSecret]).
	Values int
	// SecondFactors counts users' TOTP secrets, and those offered to
	// users enrolling at the login page.
	SecondFactors int
}

// Total is SigningKeys + Values + SecondFactors.
func (c SecretCounts) Total() int { return c.SigningKeys + c.Values + c.SecondFactors }

// Associated data binds each sealed value to its row: a value copied into
// another row (another key's id, another secret's name) does not open.
func signingKeyAD(id string) []byte {
	return []byte("nsauth_signing_keys.private_key\x00" + id)
}

func valueAD(name string) []byte {
	return []byte("nsauth_instance_values.value\x00" + name)
}

// open opens a sealed value with the store's keys. A value still in clear
// is an error: it is sealed at start (see [Store.SealSecrets]), before
// anything reads it.
func (s *Store) open(v, ad []byte) ([]byte, error) {
	if s.Keyring() == nil {
		return nil, ErrNoKeyring
	}
	if !seal.IsSealed(v) {
		return nil, errors.New("stored in clear: it is sealed when nsauth serve starts")
	}
	return s.openWith(nil, v, ad)
}

// EnsureSecret is [Store.EnsureValue] for a secret: the value is sealed
// before it is stored, and the stored one is returned opened. Processes
// racing to initialise the same secret all get the one that won.
func (s *Store) EnsureSecret(ctx context.Context, name, value string) (string, error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		sealed, err := s.sealIn(ctx, tx, []byte(value), valueAD(name))
		if err != nil {
			return fmt.Errorf("sealing %s: %w", name, err)
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO NOTHING`, name, string(sealed), s.nowMillis()); err != nil {
			return fmt.Errorf("storing %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return s.Secret(ctx, name)
}

// Secret returns a secret stored by [Store.EnsureSecret], opened, or an
// error wrapping [ErrNotFound], [ErrNoKeyring] or one of package seal's.
func (s *Store) Secret(ctx context.Context, name string) (string, error) {
	v, err := s.Value(ctx, name)
	if err != nil {
		return "", err
	}
	plain, err := s.open([]byte(v), valueAD(name))
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", name, err)
	}
	return string(plain), nil
}

// secretsMode says what walkSecrets does with each secret.
type secretsMode int

const (
	// checkSecrets only opens every sealed value.
	checkSecrets secretsMode = iota
	// sealPlaintext also seals the values still in clear.
	sealPlaintext
	// resealAll also seals again, under the current key, every value
	// sealed under another one.
	resealAll
)

// CheckSecrets opens every sealed value in the database and changes
// nothing: it fails, with an error wrapping [seal.ErrUnknownKey] or
// [seal.ErrNotAuthentic], when the keyring cannot open one of them.
func (s *Store) CheckSecrets(ctx context.Context) error {
	_, err := s.walkSecrets(ctx, walk{mode: checkSecrets})
	return err
}

// SealSecrets checks every sealed value, as [Store.CheckSecrets] does, and
// seals in place, in one transaction, the secrets that an earlier nsauth
// stored in clear: every private signing key, and the instance values
// whose name isSecret accepts. It returns how many it sealed. When it
// sealed any, the space the plaintext occupied is rewritten too (see
// scrub), so the database files no longer hold it.
func (s *Store) SealSecrets(ctx context.Context, isSecret func(name string) bool) (SecretCounts, error) {
	return s.walkSecrets(ctx, walk{isSecret: isSecret, mode: sealPlaintext})
}

// ResealSecrets makes the keyring's current key the one the database
// seals with, and seals every secret again under it, in one transaction:
// the values sealed under another key of the keyring (an old one given for
// a rotation), and those still in clear as SealSecrets would. Afterwards
// only the current key is needed.
//
// ready is called in the transaction, before anything changes, with the
// processes that hold keys and have not expired (see [KeyHolder]): a
// process publishing itself later finds the values sealed under the new
// key when it checks them. An error from ready aborts the rotation. No
// sealer can store a value under the old key once this transaction holds
// its lock (see keyring.go).
//
// It returns how many values it rewrote; if any value does not open, it
// rewrites none. Like SealSecrets, it scrubs the space of the values it
// replaced.
func (s *Store) ResealSecrets(ctx context.Context, isSecret func(name string) bool, ready func([]KeyHolder) error) (SecretCounts, error) {
	return s.walkSecrets(ctx, walk{isSecret: isSecret, mode: resealAll, ready: ready})
}

// walk says what walkSecrets does.
type walk struct {
	// ring opens (and seals); nil means the store's keys.
	ring     *seal.Keyring
	isSecret func(string) bool
	mode     secretsMode
	// ready vets the key holders before a rotation (resealAll).
	ready func([]KeyHolder) error
}

func (s *Store) walkSecrets(ctx context.Context, w walk) (SecretCounts, error) {
	var n SecretCounts
	ring := w.ring
	if ring == nil {
		ring = s.Keyring()
	}
	if ring == nil {
		return n, ErrNoKeyring
	}
	isSecret := w.isSecret
	if isSecret == nil {
		isSecret = func(string) bool { return false }
	}
	// sealID is the key values are sealed with: the database's, or for a
	// rotation the keyring's current one.
	var sealID string
	// rewrite says whether a stored value must be sealed (again), after
	// checking that a sealed one opens.
	rewrite := func(v, ad []byte, secret bool) (bool, []byte, error) {
		if !seal.IsSealed(v) {
			if !secret || w.mode == checkSecrets {
				return false, nil, nil
			}
			sealed, err := ring.SealWith(sealID, v, ad)
			return err == nil, sealed, err
		}
		plain, err := s.openWith(w.ring, v, ad)
		if err != nil {
			return false, nil, err
		}
		if w.mode != resealAll || seal.KeyID(v) == sealID {
			return false, nil, nil
		}
		sealed, err := ring.SealWith(sealID, plain, ad)
		return err == nil, sealed, err
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Key rotation by another replica waits for this transaction.
		var lock string
		if err := s.queryRow(ctx, tx, `SELECT name FROM nsauth_locks WHERE name = 'signing_keys'`+s.d.lockRows).Scan(&lock); err != nil {
			return fmt.Errorf("taking the signing-key lock: %w", err)
		}
		if w.mode == resealAll {
			var err error
			if sealID, err = s.switchSealingKey(ctx, tx, ring, w.ready); err != nil {
				return err
			}
		} else {
			var err error
			if ring, sealID, err = s.sealingKey(ctx, tx, w.ring, s.d.shareRows); err != nil {
				return err
			}
		}
		type row struct {
			key   string
			value []byte
		}
		read := func(query string) ([]row, error) {
			rows, err := s.query(ctx, tx, query)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var out []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.key, &r.value); err != nil {
					return nil, err
				}
				out = append(out, r)
			}
			return out, rows.Err()
		}
		keys, err := read(`SELECT id, private_key FROM nsauth_signing_keys ORDER BY id` + s.d.lockRows)
		if err != nil {
			return fmt.Errorf("reading signing keys: %w", err)
		}
		for _, k := range keys {
			change, sealed, err := rewrite(k.value, signingKeyAD(k.key), true)
			if err != nil {
				return fmt.Errorf("signing key %s: %w", k.key, err)
			}
			if !change {
				continue
			}
			if _, err := s.exec(ctx, tx, `UPDATE nsauth_signing_keys SET private_key = ? WHERE id = ?`, sealed, k.key); err != nil {
				return fmt.Errorf("sealing signing key %s: %w", k.key, err)
			}
			n.SigningKeys++
		}
		values, err := read(`SELECT name, value FROM nsauth_instance_values ORDER BY name` + s.d.lockRows)
		if err != nil {
			return fmt.Errorf("reading instance values: %w", err)
		}
		for _, v := range values {
			change, sealed, err := rewrite(v.value, valueAD(v.key), isSecret(v.key))
			if err != nil {
				return fmt.Errorf("%s: %w", v.key, err)
			}
			if !change {
				continue
			}
			if _, err := s.exec(ctx, tx, `UPDATE nsauth_instance_values SET value = ? WHERE name = ?`, string(sealed), v.key); err != nil {
				return fmt.Errorf("sealing %s: %w", v.key, err)
			}
			n.Values++
		}
		// TOTP secrets have been sealed from the start (schema 9): none is
		// in clear, but a rotation must seal them again like the rest.
		totps, err := read(`SELECT user_id, secret FROM nsauth_totp ORDER BY user_id` + s.d.lockRows)
		if err != nil {
			return fmt.Errorf("reading TOTP secrets: %w", err)
		}
		for _, v := range totps {
			change, sealed, err := rewrite(v.value, totpSecretAD(v.key), true)
			if err != nil {
				return fmt.Errorf("the TOTP secret of user %s: %w", v.key, err)
			}
			if !change {
				continue
			}
			if _, err := s.exec(ctx, tx, `UPDATE nsauth_totp SET secret = ? WHERE user_id = ?`, sealed, v.key); err != nil {
				return fmt.Errorf("sealing a TOTP secret: %w", err)
			}
			n.SecondFactors++
		}
		pending, err := s.query(ctx, tx, `SELECT token_hash, totp_secret FROM nsauth_mfa_pending WHERE totp_secret IS NOT NULL ORDER BY token_hash`+s.d.lockRows)
		if err != nil {
			return fmt.Errorf("reading offered TOTP secrets: %w", err)
		}
		type offered struct{ hash, value []byte }
		var offers []offered
		for pending.Next() {
			var o offered
			if err := pending.Scan(&o.hash, &o.value); err != nil {
				pending.Close()
				return fmt.Errorf("reading offered TOTP secrets: %w", err)
			}
			offers = append(offers, o)
		}
		if err := errors.Join(pending.Err(), pending.Close()); err != nil {
			return fmt.Errorf("reading offered TOTP secrets: %w", err)
		}
		for _, o := range offers {
			change, sealed, err := rewrite(o.value, pendingSecretAD(o.hash), true)
			if err != nil {
				return fmt.Errorf("a TOTP secret offered at the login page: %w", err)
			}
			if !change {
				continue
			}
			if _, err := s.exec(ctx, tx, `UPDATE nsauth_mfa_pending SET totp_secret = ? WHERE token_hash = ?`, sealed, o.hash); err != nil {
				return fmt.Errorf("sealing an offered TOTP secret: %w", err)
			}
			n.SecondFactors++
		}
		return nil
	})
	if err != nil {
		return SecretCounts{}, err
	}
	if n.Total() > 0 {
		if err := s.scrub(ctx); err != nil {
			return n, err
		}
	}
	return n, nil
}

// scrub rewrites the tables of secrets after values were replaced, so the
// replaced ones (plaintext, or sealed under a retired key) are not left in
// free space. SQLite: VACUUM rebuilds the file from the live rows, and a
// truncating checkpoint empties the write-ahead log. PostgreSQL: VACUUM
// FULL writes the two tables anew, without the dead row versions. Neither
// reaches copies made before (backups, PostgreSQL's WAL archive).
func (s *Store) scrub(ctx context.Context) error {
	if s.d.name == "postgres" {
		if _, err := s.db.ExecContext(ctx, `VACUUM (FULL) nsauth_signing_keys, nsauth_instance_values, nsauth_totp, nsauth_mfa_pending`); err != nil {
			return fmt.Errorf("the secrets are sealed, but rewriting their tables failed: %w", err)
		}
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("the secrets are sealed, but rewriting the database file failed: %w", err)
	}
	var busy, logFrames, checkpointed int64
	if err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed); err != nil {
		return fmt.Errorf("the secrets are sealed, but truncating the write-ahead log failed: %w", err)
	}
	return nil
}
