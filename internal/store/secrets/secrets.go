// Package secrets keeps the installation's sealed values and the key that
// seals them: instance secrets, the record of which key seals new values,
// the processes that hold keys, and the checks and rotations that seal
// every secret of the store again (signing keys, TOTP secrets and
// connectors' secrets included).
//
// The keys a running store holds can change: a rotation gives every
// process the new key (a key file they re-read, or a restart with it
// listed first), then seals every value again under it (see
// [SecretStore.ResealSecrets]). The database, not each process's newest
// key, names the key that seals new values, and sealers read that name
// under a lock the rotation takes (see the internal package sealing).
package secrets

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store/instance"
	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/internal/sealing"
)

// SecretStore keeps sealed values and rotates the key that seals them.
type SecretStore struct {
	db     *core.DB
	keys   *sealing.Keys
	values *instance.ValueStore
}

// New returns the secrets of db, sealed with keys; values holds the
// instance values the secrets are kept among.
func New(db *core.DB, keys *sealing.Keys, values *instance.ValueStore) *SecretStore {
	return &SecretStore{db: db, keys: keys, values: values}
}

// SecretCounts counts sealed values by kind.
type SecretCounts struct {
	// SigningKeys counts rows of private signing keys.
	SigningKeys int
	// Values counts instance secrets (see [SecretStore.EnsureSecret]).
	Values int
	// SecondFactors counts users' TOTP secrets, and those offered to
	// users enrolling at the login page.
	SecondFactors int
	// Connectors counts connectors' secrets (client secrets, LDAP bind
	// passwords) and the states kept for identities' refresh checks.
	Connectors int
}

// Total is SigningKeys + Values + SecondFactors + Connectors.
func (c SecretCounts) Total() int { return c.SigningKeys + c.Values + c.SecondFactors + c.Connectors }

// EnsureSecret is [SecretStore.EnsureValue] for a secret: the value is sealed
// before it is stored, and the stored one is returned opened. Processes
// racing to initialise the same secret all get the one that won.
func (s *SecretStore) EnsureSecret(ctx context.Context, name, value string) (string, error) {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		sealed, err := s.keys.SealIn(ctx, tx, []byte(value), sealing.ValueAD(name))
		if err != nil {
			return fmt.Errorf("sealing %s: %w", name, err)
		}
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO NOTHING`, name, string(sealed), s.db.NowMillis()); err != nil {
			return fmt.Errorf("storing %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return s.Secret(ctx, name)
}

// Secret returns a secret stored by [SecretStore.EnsureSecret], opened, or an
// error wrapping [core.ErrNotFound], [core.ErrNoKeyring] or one of package seal's.
func (s *SecretStore) Secret(ctx context.Context, name string) (string, error) {
	v, err := s.values.Value(ctx, name)
	if err != nil {
		return "", err
	}
	plain, err := s.keys.Open([]byte(v), sealing.ValueAD(name))
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
func (s *SecretStore) CheckSecrets(ctx context.Context) error {
	_, err := s.walkSecrets(ctx, walk{mode: checkSecrets})
	return err
}

// SealSecrets checks every sealed value, as [SecretStore.CheckSecrets] does, and
// seals in place, in one transaction, the secrets that an earlier nsauth
// stored in clear: every private signing key, and the instance values
// whose name isSecret accepts. It returns how many it sealed. When it
// sealed any, the space the plaintext occupied is rewritten too (see
// scrub), so the database files no longer hold it.
func (s *SecretStore) SealSecrets(ctx context.Context, isSecret func(name string) bool) (SecretCounts, error) {
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
// its lock (see package sealing).
//
// It returns how many values it rewrote; if any value does not open, it
// rewrites none. Like SealSecrets, it scrubs the space of the values it
// replaced.
func (s *SecretStore) ResealSecrets(ctx context.Context, isSecret func(name string) bool, ready func([]KeyHolder) error) (SecretCounts, error) {
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

func (s *SecretStore) walkSecrets(ctx context.Context, w walk) (SecretCounts, error) {
	var n SecretCounts
	ring := w.ring
	if ring == nil {
		ring = s.keys.Ring()
	}
	if ring == nil {
		return n, core.ErrNoKeyring
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
		plain, err := s.keys.OpenWith(w.ring, v, ad)
		if err != nil {
			return false, nil, err
		}
		if w.mode != resealAll || seal.KeyID(v) == sealID {
			return false, nil, nil
		}
		sealed, err := ring.SealWith(sealID, plain, ad)
		return err == nil, sealed, err
	}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		// Key rotation by another replica waits for this transaction.
		var lock string
		if err := s.db.QueryRow(ctx, tx, `SELECT name FROM nsauth_locks WHERE name = 'signing_keys'`+s.db.Dialect.LockRows).Scan(&lock); err != nil {
			return fmt.Errorf("taking the signing-key lock: %w", err)
		}
		if w.mode == resealAll {
			var err error
			if sealID, err = s.switchSealingKey(ctx, tx, ring, w.ready); err != nil {
				return err
			}
		} else {
			var err error
			if ring, sealID, err = s.keys.SealingKey(ctx, tx, w.ring, s.db.Dialect.ShareRows); err != nil {
				return err
			}
		}
		type row struct {
			key   string
			value []byte
		}
		read := func(query string) ([]row, error) {
			rows, err := s.db.Query(ctx, tx, query)
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
		keys, err := read(`SELECT id, private_key FROM nsauth_signing_keys ORDER BY id` + s.db.Dialect.LockRows)
		if err != nil {
			return fmt.Errorf("reading signing keys: %w", err)
		}
		for _, k := range keys {
			change, sealed, err := rewrite(k.value, sealing.SigningKeyAD(k.key), true)
			if err != nil {
				return fmt.Errorf("signing key %s: %w", k.key, err)
			}
			if !change {
				continue
			}
			if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_signing_keys SET private_key = ? WHERE id = ?`, sealed, k.key); err != nil {
				return fmt.Errorf("sealing signing key %s: %w", k.key, err)
			}
			n.SigningKeys++
		}
		values, err := read(`SELECT name, value FROM nsauth_instance_values ORDER BY name` + s.db.Dialect.LockRows)
		if err != nil {
			return fmt.Errorf("reading instance values: %w", err)
		}
		for _, v := range values {
			change, sealed, err := rewrite(v.value, sealing.ValueAD(v.key), isSecret(v.key))
			if err != nil {
				return fmt.Errorf("%s: %w", v.key, err)
			}
			if !change {
				continue
			}
			if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_instance_values SET value = ? WHERE name = ?`, string(sealed), v.key); err != nil {
				return fmt.Errorf("sealing %s: %w", v.key, err)
			}
			n.Values++
		}
		// TOTP secrets have been sealed from the start (schema 9): none is
		// in clear, but a rotation must seal them again like the rest.
		totps, err := read(`SELECT user_id, secret FROM nsauth_totp ORDER BY user_id` + s.db.Dialect.LockRows)
		if err != nil {
			return fmt.Errorf("reading TOTP secrets: %w", err)
		}
		for _, v := range totps {
			change, sealed, err := rewrite(v.value, sealing.TOTPSecretAD(v.key), true)
			if err != nil {
				return fmt.Errorf("the TOTP secret of user %s: %w", v.key, err)
			}
			if !change {
				continue
			}
			if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_totp SET secret = ? WHERE user_id = ?`, sealed, v.key); err != nil {
				return fmt.Errorf("sealing a TOTP secret: %w", err)
			}
			n.SecondFactors++
		}
		pending, err := s.db.Query(ctx, tx, `SELECT token_hash, totp_secret FROM nsauth_mfa_pending WHERE totp_secret IS NOT NULL ORDER BY token_hash`+s.db.Dialect.LockRows)
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
			change, sealed, err := rewrite(o.value, sealing.PendingSecretAD(o.hash), true)
			if err != nil {
				return fmt.Errorf("a TOTP secret offered at the login page: %w", err)
			}
			if !change {
				continue
			}
			if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_mfa_pending SET totp_secret = ? WHERE token_hash = ?`, sealed, o.hash); err != nil {
				return fmt.Errorf("sealing an offered TOTP secret: %w", err)
			}
			n.SecondFactors++
		}
		// Connectors' secrets and identities' states have been sealed
		// from the start (schema 15), like TOTP secrets.
		conns, err := read(`SELECT name, secret FROM nsauth_connectors WHERE secret IS NOT NULL ORDER BY name` + s.db.Dialect.LockRows)
		if err != nil {
			return fmt.Errorf("reading connectors' secrets: %w", err)
		}
		for _, c := range conns {
			change, sealed, err := rewrite(c.value, sealing.ConnectorSecretAD(c.key), true)
			if err != nil {
				return fmt.Errorf("the secret of connector %s: %w", c.key, err)
			}
			if !change {
				continue
			}
			if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_connectors SET secret = ? WHERE name = ?`, sealed, c.key); err != nil {
				return fmt.Errorf("sealing the secret of connector %s: %w", c.key, err)
			}
			n.Connectors++
		}
		states, err := s.db.Query(ctx, tx, `SELECT connector, subject, state FROM nsauth_identities WHERE state IS NOT NULL ORDER BY connector, subject`+s.db.Dialect.LockRows)
		if err != nil {
			return fmt.Errorf("reading identities' states: %w", err)
		}
		type identityState struct {
			connector, subject string
			value              []byte
		}
		var kept []identityState
		for states.Next() {
			var v identityState
			if err := states.Scan(&v.connector, &v.subject, &v.value); err != nil {
				states.Close()
				return fmt.Errorf("reading identities' states: %w", err)
			}
			kept = append(kept, v)
		}
		if err := errors.Join(states.Err(), states.Close()); err != nil {
			return fmt.Errorf("reading identities' states: %w", err)
		}
		for _, v := range kept {
			change, sealed, err := rewrite(v.value, sealing.IdentityStateAD(v.connector, v.subject), true)
			if err != nil {
				return fmt.Errorf("the state of an identity of connector %s: %w", v.connector, err)
			}
			if !change {
				continue
			}
			if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_identities SET state = ? WHERE connector = ? AND subject = ?`, sealed, v.connector, v.subject); err != nil {
				return fmt.Errorf("sealing the state of an identity of connector %s: %w", v.connector, err)
			}
			n.Connectors++
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
// FULL writes the tables of secrets anew, without the dead row versions. Neither
// reaches copies made before (backups, PostgreSQL's WAL archive).
func (s *SecretStore) scrub(ctx context.Context) error {
	if s.db.Dialect.Name == "postgres" {
		if _, err := s.db.SQL.ExecContext(ctx, `VACUUM (FULL) nsauth_signing_keys, nsauth_instance_values, nsauth_totp, nsauth_mfa_pending, nsauth_connectors, nsauth_identities`); err != nil {
			return fmt.Errorf("the secrets are sealed, but rewriting their tables failed: %w", err)
		}
		return nil
	}
	if _, err := s.db.SQL.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("the secrets are sealed, but rewriting the database file failed: %w", err)
	}
	var busy, logFrames, checkpointed int64
	if err := s.db.SQL.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed); err != nil {
		return fmt.Errorf("the secrets are sealed, but truncating the write-ahead log failed: %w", err)
	}
	return nil
}

// Keyring returns the keys the store holds now, or nil when it was opened
// without keys.
func (s *SecretStore) Keyring() *seal.Keyring { return s.keys.Ring() }

// switchSealingKey is the first step of a rotation, in its transaction:
// it locks the database's record of the sealing key (sealers wait, and
// those that hold it are done), calls ready with the live key holders, and
// records ring's current key. It returns that key's id.
func (s *SecretStore) switchSealingKey(ctx context.Context, tx *sql.Tx, ring *seal.Keyring, ready func([]KeyHolder) error) (string, error) {
	var prev string
	err := s.db.QueryRow(ctx, tx, `SELECT value FROM nsauth_instance_values WHERE name = ?`+s.db.Dialect.LockRows, sealing.SealingKeyName).Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("locking the record of the sealing key: %w", err)
	}
	if ready != nil {
		holders, err := s.keyHolders(ctx, tx)
		if err != nil {
			return "", err
		}
		if err := ready(holders); err != nil {
			return "", err
		}
	}
	id := ring.CurrentID()
	if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, sealing.SealingKeyName, id, s.db.NowMillis()); err != nil {
		return "", fmt.Errorf("recording the sealing key: %w", err)
	}
	return id, nil
}

// SealingKeyID returns the id of the key the database has new values
// sealed with, or "" when it names none yet.
func (s *SecretStore) SealingKeyID(ctx context.Context) (string, error) {
	v, err := s.values.Value(ctx, sealing.SealingKeyName)
	if errors.Is(err, core.ErrNotFound) {
		return "", nil
	}
	return v, err
}

// EnsureSealingKey records which key new values are sealed with, unless
// the database names one already, and returns the id the database names.
// A server calls it at start, so that every rotation finds the record to
// lock. The key recorded is the one the newest signing key is sealed
// with, when the store holds it: a database from before the record was
// kept, first started by a server given a new key above the one in use,
// goes on sealing with the one in use. Otherwise (a new database) it is
// the store's current key.
func (s *SecretStore) EnsureSealingKey(ctx context.Context) (string, error) {
	ring := s.keys.Ring()
	if ring == nil {
		return "", core.ErrNoKeyring
	}
	id := ring.CurrentID()
	var newest []byte
	err := s.db.QueryRow(ctx, s.db, `SELECT private_key FROM nsauth_signing_keys ORDER BY created_at DESC, id DESC LIMIT 1`).Scan(&newest)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("reading the newest signing key: %w", err)
	}
	if inUse := seal.KeyID(newest); inUse != "" && ring.Has(inUse) {
		id = inUse
	}
	return s.values.EnsureValue(ctx, sealing.SealingKeyName, id)
}

// ReloadKeys reads the keys again from the store's key source
// (store.Options.LoadKeys; it does nothing without one) and returns the
// keyring then held. Keys the source gained are held at once. Keys it no
// longer lists (a retired key) are dropped only once those it lists open
// every sealed value in the database and include the one the database
// seals with; until then they are kept, and the error says which key id
// is still needed. A server calls it from time to time, outside any
// transaction: it reads every sealed value when a key is to be dropped.
func (s *SecretStore) ReloadKeys(ctx context.Context) (*seal.Keyring, error) {
	return s.keys.Reload(ctx, s.SealingKeyID, func(ctx context.Context, listed *seal.Keyring) error {
		_, err := s.walkSecrets(ctx, walk{ring: listed, mode: checkSecrets})
		return err
	})
}
