package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nsauth/nsauth/internal/seal"
)

// The keys a running store holds can change: a rotation gives every
// process the new key (a key file they re-read, or a restart with it
// listed first), then seals every value again under it (see
// [Store.ResealSecrets]). Two rules keep every process able to open what
// the others seal, throughout:
//
//   - The database, not each process's newest key, names the key that
//     seals new values (the instance value sealingKeyName). A server
//     restarted with the new key listed first goes on sealing with the old
//     one, which the servers not yet restarted hold, until the rotation
//     switches the database to the new key; the rotation first checks that
//     every running server holds it (see keyholders.go).
//   - A sealer reads that name under a shared lock that the rotation takes
//     exclusively, in the transaction that stores the sealed value. A value
//     is therefore sealed either before the rotation reads the values to
//     seal again, or after it switched the key: none is left behind under
//     the old key.

// sealingKeyName is the instance value holding the id of the key new
// values are sealed with. It is an id, not a secret.
const sealingKeyName = "sealing_key_id"

// keyring is the keys a store holds now, and where to look for more.
type keyring struct {
	ring atomic.Pointer[seal.Keyring]
	// load is Options.LoadKeys.
	load func() ([]*seal.Key, error)
	// mu makes concurrent misses of one new key share one load.
	mu sync.Mutex
	// refused is the list of keys ReloadKeys last kept others beside, with
	// the database's sealing key then, and why: the same list is not
	// checked against the database again until it seals with another key
	// (a rotation).
	refused    []string
	refusedErr error
}

// Keyring returns the keys the store holds now, or nil when it was opened
// without keys.
func (s *Store) Keyring() *seal.Keyring { return s.keys.ring.Load() }

// learnKey makes sure the store holds the key with this id, reading its
// key source again when it does not, and returns the keyring then held.
// The keys read are added to those held, never put in their place: a
// value met before the source changed may need an older key. It reads no
// database, so it may run inside a transaction.
func (s *Store) learnKey(id string) (*seal.Keyring, error) {
	ring := s.Keyring()
	if ring == nil {
		return nil, ErrNoKeyring
	}
	if ring.Has(id) {
		return ring, nil
	}
	if s.keys.load == nil {
		return nil, &seal.KeyError{ID: id}
	}
	s.keys.mu.Lock()
	defer s.keys.mu.Unlock()
	if ring = s.Keyring(); ring.Has(id) { // another miss brought it meanwhile
		return ring, nil
	}
	loaded, err := s.keys.load()
	if err != nil {
		return nil, fmt.Errorf("%w; reading the keys again: %w", &seal.KeyError{ID: id}, err)
	}
	ring = withKeys(loaded, ring)
	s.keys.ring.Store(ring)
	if !ring.Has(id) {
		return nil, &seal.KeyError{ID: id}
	}
	return ring, nil
}

// withKeys is the keyring of keys, newest first, followed by those of
// held that keys lacks.
func withKeys(keys []*seal.Key, held *seal.Keyring) *seal.Keyring {
	return seal.NewKeyring(keys[0], append(slices.Clone(keys[1:]), held.Keys()...)...)
}

// openWith opens a sealed value with ring, or, when ring is nil, with the
// store's keys, learning a key they lack from the key source.
func (s *Store) openWith(ring *seal.Keyring, v, ad []byte) ([]byte, error) {
	if ring != nil {
		return ring.Open(v, ad)
	}
	if ring = s.Keyring(); ring == nil {
		return nil, ErrNoKeyring
	}
	plain, err := ring.Open(v, ad)
	var missing *seal.KeyError
	if !errors.As(err, &missing) {
		return plain, err
	}
	if ring, err = s.learnKey(missing.ID); err != nil {
		return nil, err
	}
	return ring.Open(v, ad)
}

// sealingKey returns the keyring that holds the key new values are sealed
// with, and that key's id. lock is appended to the query that reads the
// database's choice: a sealer gives dialect.shareRows, so that a rotation
// (which locks the row exclusively) waits for its transaction to end. A
// database that names no key yet (one never served by this version) takes
// the keyring's current key. ring nil means the store's own keys.
func (s *Store) sealingKey(ctx context.Context, q querier, ring *seal.Keyring, lock string) (*seal.Keyring, string, error) {
	var id string
	err := s.queryRow(ctx, q, `SELECT value FROM nsauth_instance_values WHERE name = ?`+lock, sealingKeyName).Scan(&id)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, "", fmt.Errorf("reading which key seals: %w", err)
	}
	own := ring == nil
	if own {
		if ring = s.Keyring(); ring == nil {
			return nil, "", ErrNoKeyring
		}
	}
	if id == "" {
		return ring, ring.CurrentID(), nil
	}
	if own {
		ring, err = s.learnKey(id)
	} else if !ring.Has(id) {
		err = &seal.KeyError{ID: id}
	}
	if err != nil {
		return nil, "", fmt.Errorf("the database seals new secrets with a key this process lacks: %w", err)
	}
	return ring, id, nil
}

// sealIn seals plaintext, in tx, under the key the database names.
func (s *Store) sealIn(ctx context.Context, tx *sql.Tx, plaintext, ad []byte) ([]byte, error) {
	ring, id, err := s.sealingKey(ctx, tx, nil, s.d.shareRows)
	if err != nil {
		return nil, err
	}
	return ring.SealWith(id, plaintext, ad)
}

// switchSealingKey is the first step of a rotation, in its transaction:
// it locks the database's record of the sealing key (sealers wait, and
// those that hold it are done), calls ready with the live key holders, and
// records ring's current key. It returns that key's id.
func (s *Store) switchSealingKey(ctx context.Context, tx *sql.Tx, ring *seal.Keyring, ready func([]KeyHolder) error) (string, error) {
	var prev string
	err := s.queryRow(ctx, tx, `SELECT value FROM nsauth_instance_values WHERE name = ?`+s.d.lockRows, sealingKeyName).Scan(&prev)
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
	if _, err := s.exec(ctx, tx, `INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, sealingKeyName, id, s.nowMillis()); err != nil {
		return "", fmt.Errorf("recording the sealing key: %w", err)
	}
	return id, nil
}

// SealingKeyID returns the id of the key the database has new values
// sealed with, or "" when it names none yet.
func (s *Store) SealingKeyID(ctx context.Context) (string, error) {
	v, err := s.Value(ctx, sealingKeyName)
	if errors.Is(err, ErrNotFound) {
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
func (s *Store) EnsureSealingKey(ctx context.Context) (string, error) {
	ring := s.Keyring()
	if ring == nil {
		return "", ErrNoKeyring
	}
	id := ring.CurrentID()
	var newest []byte
	err := s.queryRow(ctx, s.db, `SELECT private_key FROM nsauth_signing_keys ORDER BY created_at DESC, id DESC LIMIT 1`).Scan(&newest)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("reading the newest signing key: %w", err)
	}
	if inUse := seal.KeyID(newest); inUse != "" && ring.Has(inUse) {
		id = inUse
	}
	return s.EnsureValue(ctx, sealingKeyName, id)
}

// ReloadKeys reads the keys again from Options.LoadKeys (it does nothing
// without one) and returns the keyring then held. Keys the source gained
// are held at once. Keys it no longer lists (a retired key) are dropped
// only once those it lists open every sealed value in the database and
// include the one the database seals with; until then they are kept, and
// the error says which key id is still needed. A server calls it from
// time to time, outside any transaction: it reads every sealed value when
// a key is to be dropped.
func (s *Store) ReloadKeys(ctx context.Context) (*seal.Keyring, error) {
	held := s.Keyring()
	if s.keys.load == nil || held == nil {
		return held, nil
	}
	loaded, err := s.keys.load()
	if err != nil {
		return held, fmt.Errorf("reading the keys again: %w", err)
	}
	listed := seal.NewKeyring(loaded[0], loaded[1:]...)
	merged := withKeys(loaded, held)
	if len(merged.IDs()) == len(listed.IDs()) {
		s.keys.ring.Store(listed)
		return listed, nil
	}
	// Some key held is no longer listed: drop it only if nothing needs it
	// (the check needs the database's sealing key too). The check reads
	// every sealed value, so a list refused once is not checked again
	// until the source lists other keys.
	sealing, err := s.SealingKeyID(ctx)
	if err != nil {
		s.keys.ring.Store(merged)
		return merged, err
	}
	check := append(listed.IDs(), "sealing:"+sealing)
	s.keys.mu.Lock()
	refused, refusedErr := s.keys.refused, s.keys.refusedErr
	s.keys.mu.Unlock()
	if !slices.Equal(refused, check) {
		_, refusedErr = s.walkSecrets(ctx, walk{ring: listed, mode: checkSecrets})
	}
	if refusedErr != nil {
		if ctx.Err() == nil {
			s.keys.mu.Lock()
			s.keys.refused, s.keys.refusedErr = check, refusedErr
			s.keys.mu.Unlock()
		}
		s.keys.ring.Store(merged)
		return merged, fmt.Errorf("keeping the keys the key source no longer lists: %w", refusedErr)
	}
	s.keys.ring.Store(listed)
	return listed, nil
}
