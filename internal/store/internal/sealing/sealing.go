// Package sealing seals and opens the secrets the store keeps, under the
// keys the store holds and with the key the database names.
//
// The keys a running store holds can change: a rotation gives every
// process the new key (a key file they re-read, or a restart with it
// listed first), then seals every value again under it (see
// store.ResealSecrets). Two rules keep every process able to open what
// the others seal, throughout:
//
//   - The database, not each process's newest key, names the key that
//     seals new values (the instance value [SealingKeyName]). A server
//     restarted with the new key listed first goes on sealing with the old
//     one, which the servers not yet restarted hold, until the rotation
//     switches the database to the new key; the rotation first checks that
//     every running server holds it (see package secrets' key holders).
//   - A sealer reads that name under a shared lock that the rotation takes
//     exclusively, in the transaction that stores the sealed value. A value
//     is therefore sealed either before the rotation reads the values to
//     seal again, or after it switched the key: none is left behind under
//     the old key.
package sealing

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store/internal/core"
)

// SealingKeyName is the instance value holding the id of the key new
// values are sealed with. It is an id, not a secret.
const SealingKeyName = "sealing_key_id"

// Associated data binds each sealed value to its row: a value copied into
// another row (another key's id, another secret's name) does not open.

// SigningKeyAD binds a private signing key to its key's id.
func SigningKeyAD(id string) []byte {
	return []byte("nsauth_signing_keys.private_key\x00" + id)
}

// ValueAD binds an instance secret to its name.
func ValueAD(name string) []byte {
	return []byte("nsauth_instance_values.value\x00" + name)
}

// TOTPSecretAD binds a user's TOTP secret to the user.
func TOTPSecretAD(userID string) []byte {
	return []byte("nsauth_totp.secret\x00" + userID)
}

// PendingSecretAD binds a TOTP secret offered at the login page to the
// digest of the pending step that offers it.
func PendingSecretAD(tokenHash []byte) []byte {
	return []byte("nsauth_mfa_pending.totp_secret\x00" + hex.EncodeToString(tokenHash))
}

// ConnectorSecretAD binds a connector's secret (client secret, LDAP bind
// password) to the connector's name.
func ConnectorSecretAD(name string) []byte {
	return []byte("nsauth_connectors.secret\x00" + name)
}

// IdentityStateAD binds the state kept for an identity's refresh checks
// to the identity (connector and subject).
func IdentityStateAD(connector, subject string) []byte {
	return []byte("nsauth_identities.state\x00" + connector + "\x00" + subject)
}

// Keys is the keys a store holds now, and where to look for more.
type Keys struct {
	db   *core.DB
	ring atomic.Pointer[seal.Keyring]
	// load is store.Options.LoadKeys.
	load func() ([]*seal.Key, error)
	// mu makes concurrent misses of one new key share one load.
	mu sync.Mutex
	// refused is the list of keys Reload last kept others beside, with
	// the database's sealing key then, and why: the same list is not
	// checked against the database again until it seals with another key
	// (a rotation).
	refused    []string
	refusedErr error
}

// New returns the keys of db: ring (nil: none) and, when load is not nil,
// whatever load reads later.
func New(db *core.DB, ring *seal.Keyring, load func() ([]*seal.Key, error)) *Keys {
	k := &Keys{db: db, load: load}
	if ring != nil {
		k.ring.Store(ring)
	}
	return k
}

// Ring returns the keys held now, or nil when the store was opened
// without keys.
func (k *Keys) Ring() *seal.Keyring { return k.ring.Load() }

// learn makes sure the store holds the key with this id, reading its
// key source again when it does not, and returns the keyring then held.
// The keys read are added to those held, never put in their place: a
// value met before the source changed may need an older key. It reads no
// database, so it may run inside a transaction.
func (k *Keys) learn(id string) (*seal.Keyring, error) {
	ring := k.Ring()
	if ring == nil {
		return nil, core.ErrNoKeyring
	}
	if ring.Has(id) {
		return ring, nil
	}
	if k.load == nil {
		return nil, &seal.KeyError{ID: id}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if ring = k.Ring(); ring.Has(id) { // another miss brought it meanwhile
		return ring, nil
	}
	loaded, err := k.load()
	if err != nil {
		return nil, fmt.Errorf("%w; reading the keys again: %w", &seal.KeyError{ID: id}, err)
	}
	ring = withKeys(loaded, ring)
	k.ring.Store(ring)
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

// Open opens a sealed value with the store's keys. A value still in clear
// is an error: it is sealed at start (see store.SealSecrets), before
// anything reads it.
func (k *Keys) Open(v, ad []byte) ([]byte, error) {
	if k.Ring() == nil {
		return nil, core.ErrNoKeyring
	}
	if !seal.IsSealed(v) {
		return nil, errors.New("stored in clear: it is sealed when nsauth serve starts")
	}
	return k.OpenWith(nil, v, ad)
}

// OpenWith opens a sealed value with ring, or, when ring is nil, with the
// store's keys, learning a key they lack from the key source.
func (k *Keys) OpenWith(ring *seal.Keyring, v, ad []byte) ([]byte, error) {
	if ring != nil {
		return ring.Open(v, ad)
	}
	if ring = k.Ring(); ring == nil {
		return nil, core.ErrNoKeyring
	}
	plain, err := ring.Open(v, ad)
	var missing *seal.KeyError
	if !errors.As(err, &missing) {
		return plain, err
	}
	if ring, err = k.learn(missing.ID); err != nil {
		return nil, err
	}
	return ring.Open(v, ad)
}

// SealingKey returns the keyring that holds the key new values are sealed
// with, and that key's id. lock is appended to the query that reads the
// database's choice: a sealer gives Dialect.ShareRows, so that a rotation
// (which locks the row exclusively) waits for its transaction to end. A
// database that names no key yet (one never served by this version) takes
// the keyring's current key. ring nil means the store's own keys.
func (k *Keys) SealingKey(ctx context.Context, q core.Querier, ring *seal.Keyring, lock string) (*seal.Keyring, string, error) {
	var id string
	err := k.db.QueryRow(ctx, q, `SELECT value FROM nsauth_instance_values WHERE name = ?`+lock, SealingKeyName).Scan(&id)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, "", fmt.Errorf("reading which key seals: %w", err)
	}
	own := ring == nil
	if own {
		if ring = k.Ring(); ring == nil {
			return nil, "", core.ErrNoKeyring
		}
	}
	if id == "" {
		return ring, ring.CurrentID(), nil
	}
	if own {
		ring, err = k.learn(id)
	} else if !ring.Has(id) {
		err = &seal.KeyError{ID: id}
	}
	if err != nil {
		return nil, "", fmt.Errorf("the database seals new secrets with a key this process lacks: %w", err)
	}
	return ring, id, nil
}

// SealIn seals plaintext, in tx, under the key the database names.
func (k *Keys) SealIn(ctx context.Context, tx *sql.Tx, plaintext, ad []byte) ([]byte, error) {
	ring, id, err := k.SealingKey(ctx, tx, nil, k.db.Dialect.ShareRows)
	if err != nil {
		return nil, err
	}
	return ring.SealWith(id, plaintext, ad)
}

// Reload reads the keys again from the key source (it does nothing
// without one) and returns the keyring then held. Keys the source gained
// are held at once. Keys it no longer lists are dropped only once check
// accepts the keyring of those it lists, given the id sealing names (the
// key the database seals with); until then they are kept, and the error
// is check's. check reads every sealed value, so a list refused once is
// not checked again until the source, or the database's sealing key,
// changes.
func (k *Keys) Reload(ctx context.Context, sealing func(context.Context) (string, error), check func(context.Context, *seal.Keyring) error) (*seal.Keyring, error) {
	held := k.Ring()
	if k.load == nil || held == nil {
		return held, nil
	}
	loaded, err := k.load()
	if err != nil {
		return held, fmt.Errorf("reading the keys again: %w", err)
	}
	listed := seal.NewKeyring(loaded[0], loaded[1:]...)
	merged := withKeys(loaded, held)
	if len(merged.IDs()) == len(listed.IDs()) {
		k.ring.Store(listed)
		return listed, nil
	}
	// Some key held is no longer listed: drop it only if nothing needs it
	// (the check needs the database's sealing key too). The check reads
	// every sealed value, so a list refused once is not checked again
	// until the source lists other keys.
	sealingID, err := sealing(ctx)
	if err != nil {
		k.ring.Store(merged)
		return merged, err
	}
	checked := append(listed.IDs(), "sealing:"+sealingID)
	k.mu.Lock()
	refused, refusedErr := k.refused, k.refusedErr
	k.mu.Unlock()
	if !slices.Equal(refused, checked) {
		refusedErr = check(ctx, listed)
	}
	if refusedErr != nil {
		if ctx.Err() == nil {
			k.mu.Lock()
			k.refused, k.refusedErr = checked, refusedErr
			k.mu.Unlock()
		}
		k.ring.Store(merged)
		return merged, fmt.Errorf("keeping the keys the key source no longer lists: %w", refusedErr)
	}
	k.ring.Store(listed)
	return listed, nil
}
