package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
)

// OpenSealedStore opens the built-in provider's store as `nsauth serve`
// does: with the keys that seal its secrets, checked to open every sealed
// value, and with what an earlier nsauth stored in clear sealed in place.
// A nil logger discards what it would say (such as the making of a key
// file).
//
// Without a configured key (SQLite only; config refuses PostgreSQL without
// one) the key is the file config.DefaultSecretKeyFile in the data
// directory. At first start it is made there, 0600, once the database is
// known not to hold values sealed under another key: a lost key file is
// then reported rather than silently replaced.
func OpenSealedStore(ctx context.Context, b config.Builtin, now func() time.Time, logger *slog.Logger) (*store.Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	loc := config.Store{DataDir: b.DataDir, DatabaseURL: b.DatabaseURL}
	// Two processes making the key file at once: the loser reads the
	// winner's, on its second turn.
	for range 2 {
		keys, err := secretKeyring(b)
		if err != nil {
			return nil, err
		}
		st, err := openStore(ctx, loc, store.Options{Now: now, Keyring: keys.ring, AuditRetention: b.AuditRetention})
		if err != nil {
			return nil, err
		}
		if keys.generated != "" {
			if err := st.CheckSecrets(ctx); err != nil {
				_ = st.Close()
				if _, statErr := os.Stat(keys.file); statErr == nil {
					continue // another process made the file and sealed with it meanwhile
				}
				return nil, fmt.Errorf("the database in %s holds secrets sealed with another key, and its secret key file %s is missing: "+
					"restore that file from a backup, or set %s to the key: %w", b.DataDir, keys.file, config.SecretKeySettings(), keyIDError(err))
			}
			created, err := createKeyFile(keys.file, keys.generated)
			if err != nil {
				_ = st.Close()
				return nil, err
			}
			if !created {
				_ = st.Close()
				continue
			}
			logger.Warn("made the secret key that seals the provider's private keys and secrets in its database: "+
				"back this file up, apart from the database (without it the database cannot be used; with it, a copy of the database can mint tokens); "+
				"to keep it elsewhere, set "+config.SecretKeySettings(),
				"file", keys.file)
		}
		n, err := st.SealSecrets(ctx, issuer.SecretValue)
		if err != nil {
			_ = st.Close()
			return nil, secretKeyError(err, keys)
		}
		if n.Total() > 0 {
			logger.Info("sealed the secrets an earlier nsauth stored in clear", "signing_keys", n.SigningKeys, "values", n.Values)
		}
		return st, nil
	}
	return nil, fmt.Errorf("the secret key file %s changed while nsauth started: start it again", filepath.Join(b.DataDir, config.DefaultSecretKeyFile))
}

// RotateSecretKey seals every secret in the store loc points at again,
// under keys.Current, in one transaction: afterwards only that key is
// needed. keys.Old is the key being replaced; with SQLite the data
// directory's key file, when there is one, is tried too. It returns how
// many values it sealed again.
func RotateSecretKey(ctx context.Context, loc config.Store, keys config.SecretKeys, now func() time.Time) (store.SecretCounts, error) {
	if keys.Current == nil {
		return store.SecretCounts{}, fmt.Errorf("no new secret key: set %s to it (make one with `nsauth keys generate-secret-key`)", config.SecretKeySettings())
	}
	old := []*seal.Key{keys.Old}
	if loc.DatabaseURL == "" {
		if k, err := config.ReadSecretKeyFile(filepath.Join(loc.DataDir, config.DefaultSecretKeyFile)); err == nil {
			old = append(old, k)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return store.SecretCounts{}, err
		}
	}
	ring := &keyring{ring: seal.NewKeyring(keys.Current, old...), setting: config.SecretKeySettings()}
	st, err := openStore(ctx, loc, store.Options{Now: now, Keyring: ring.ring})
	if err != nil {
		return store.SecretCounts{}, err
	}
	defer st.Close()
	n, err := st.ResealSecrets(ctx, issuer.SecretValue)
	if err != nil {
		return store.SecretCounts{}, secretKeyError(err, ring)
	}
	return n, nil
}

// keyring is the secret keys a server runs with, and where they came from.
type keyring struct {
	ring *seal.Keyring
	// setting names where the current key was given, for messages.
	setting string
	// file is the data directory's key file, when the key is (or is to
	// be) that file.
	file string
	// generated is a new key's text, not yet written to file.
	generated string
}

// secretKeyring returns the configured keys, or the data directory's key
// file, or a new key to be written there.
func secretKeyring(b config.Builtin) (*keyring, error) {
	if k := b.SecretKeys.Current; k != nil {
		return &keyring{ring: seal.NewKeyring(k, b.SecretKeys.Old), setting: config.SecretKeySettings()}, nil
	}
	// config guarantees a key with PostgreSQL; this is SQLite.
	if err := os.MkdirAll(b.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	file := filepath.Join(b.DataDir, config.DefaultSecretKeyFile)
	setting := "the secret key file " + file + " (or " + config.SecretKeySettings() + ")"
	k, err := config.ReadSecretKeyFile(file)
	if err == nil {
		return &keyring{ring: seal.NewKeyring(k), setting: setting, file: file}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%v: restore the file from a backup, or set %s", err, config.SecretKeySettings())
	}
	text := seal.GenerateKey()
	k, err = seal.ParseKey(text)
	if err != nil {
		return nil, err
	}
	return &keyring{ring: seal.NewKeyring(k), setting: setting, file: file, generated: text}, nil
}

// createKeyFile writes a new key file, mode 0600, that appears whole or
// not at all: it is written under a temporary name and linked into place,
// which fails when the file exists (another process made it first:
// created is then false and the file is left as it is).
func createKeyFile(path, text string) (created bool, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret.key-*")
	if err != nil {
		return false, fmt.Errorf("creating the secret key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return false, fmt.Errorf("creating the secret key file: %w", err)
	}
	if _, err := tmp.WriteString(text + "\n"); err != nil {
		_ = tmp.Close()
		return false, fmt.Errorf("writing the secret key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return false, fmt.Errorf("writing the secret key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("writing the secret key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("creating the secret key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return true, nil
}

// secretKeyError explains why the store's secrets did not open, naming the
// setting to fix; key ids are hashes and safe to show, keys never appear.
func secretKeyError(err error, keys *keyring) error {
	switch {
	case errors.Is(err, seal.ErrUnknownKey):
		return fmt.Errorf("the database's secrets do not open with the secret key given in %s (key id %s): "+
			"set it to the key they were sealed with; while rotating, give the previous key in %s: %w",
			keys.setting, keys.ring.CurrentID(), config.OldSecretKeySettings(), keyIDError(err))
	case errors.Is(err, seal.ErrNotAuthentic), errors.Is(err, seal.ErrMalformed):
		return fmt.Errorf("a sealed secret in the database does not open under the key of its key id, given in %s: "+
			"it was altered or copied from another row; restore the database from a backup: %w", keys.setting, err)
	}
	return fmt.Errorf("sealing the provider's secrets: %w", err)
}

// keyIDError is err as said to people: which key id the database needs.
func keyIDError(err error) error {
	var ke *seal.KeyError
	if errors.As(err, &ke) {
		return fmt.Errorf("the database needs the key with id %s", ke.ID)
	}
	return err
}
