package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
//
// Keys read from a file (that one, or NSAUTH_SECRET_KEY_FILE) are read
// again when the store meets a key it lacks, which is how a rotation
// reaches a running server (see store.Options.LoadKeys).
func OpenSealedStore(ctx context.Context, b config.Builtin, now func() time.Time, logger *slog.Logger) (*store.Store, error) {
	return openSealedStore(ctx, b, now, logger, nil)
}

// openSealedStore is OpenSealedStore for a server, which publishes the
// keys it holds as holder (nil: none), before it checks that they open
// every value: a rotation either sees the record, or has finished by the
// time the check runs (see store.ResealSecrets). A start that fails
// removes the record.
func openSealedStore(ctx context.Context, b config.Builtin, now func() time.Time, logger *slog.Logger, holder *keyHolder) (*store.Store, error) {
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
		opts := store.Options{Now: now, Keyring: keys.ring, AuditRetention: b.AuditRetention, DiskFull: logDiskFull(logger, loc)}
		if keys.source != nil {
			opts.LoadKeys = keys.source.load
		}
		st, err := openStore(ctx, loc, opts)
		if err != nil {
			return nil, err
		}
		abandon := func() {
			if holder != nil {
				_ = holder.remove()
			}
			_ = st.Close()
		}
		if holder != nil {
			if err := holder.publish(ctx, st, keys); err != nil {
				abandon()
				return nil, err
			}
		}
		if keys.generated != "" {
			if err := st.CheckSecrets(ctx); err != nil {
				abandon()
				if _, statErr := os.Stat(keys.file); statErr == nil {
					continue // another process made the file and sealed with it meanwhile
				}
				return nil, fmt.Errorf("the database in %s holds secrets sealed with another key, and its secret key file %s is missing: "+
					"restore that file from a backup, or set %s to the key: %w", b.DataDir, keys.file, config.SecretKeySettings(), keyIDError(err))
			}
			created, err := createKeyFile(keys.file, keys.generated)
			if err != nil {
				abandon()
				return nil, err
			}
			if !created {
				abandon()
				continue
			}
			logger.Warn("made the secret key that seals the provider's private keys and secrets in its database: "+
				"back this file up, apart from the database (without it the database cannot be used; with it, a copy of the database can mint tokens); "+
				"to keep it elsewhere, set "+config.SecretKeySettings(),
				"file", keys.file)
		}
		n, err := st.SealSecrets(ctx, issuer.SecretValue)
		if err == nil {
			_, err = st.EnsureSealingKey(ctx)
		}
		if err != nil {
			abandon()
			return nil, secretKeyError(err, keys)
		}
		if n.Total() > 0 {
			logger.Info("sealed the secrets an earlier nsauth stored in clear", "signing_keys", n.SigningKeys, "values", n.Values)
		}
		return st, nil
	}
	return nil, fmt.Errorf("the secret key file %s changed while nsauth started: start it again", filepath.Join(b.DataDir, config.DefaultSecretKeyFile))
}

// keyring is the secret keys a process runs with, and where they came
// from.
type keyring struct {
	ring *seal.Keyring
	// setting names where the keys were given, for messages.
	setting string
	// file is the data directory's key file, when the keys are (or are to
	// be) that file.
	file string
	// generated is a new key's text, not yet written to file.
	generated string
	// source is the key file read again when it changes; nil when the
	// keys cannot change while the process runs (NSAUTH_SECRET_KEY).
	source *keyFile
}

// secretKeyring returns the configured keys, or the data directory's key
// file, or a new key to be written there.
func secretKeyring(b config.Builtin) (*keyring, error) {
	if keys := b.SecretKeys; keys.Current() != nil {
		kr := &keyring{ring: seal.NewKeyring(keys.Current(), slices.Concat(keys.Listed[1:], keys.Old)...), setting: config.SecretKeySettings()}
		if keys.File != "" {
			kr.source = &keyFile{path: keys.File, old: keys.Old}
		}
		return kr, nil
	}
	// config guarantees a key with PostgreSQL; this is SQLite.
	if err := os.MkdirAll(b.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	file := filepath.Join(b.DataDir, config.DefaultSecretKeyFile)
	setting := "the secret key file " + file + " (or " + config.SecretKeySettings() + ")"
	keys, err := config.ReadSecretKeyFile(file)
	if err == nil {
		return &keyring{ring: seal.NewKeyring(keys[0], keys[1:]...), setting: setting, file: file, source: &keyFile{path: file}}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%v: restore the file from a backup, or set %s", err, config.SecretKeySettings())
	}
	text := seal.GenerateKey()
	k, err := seal.ParseKey(text)
	if err != nil {
		return nil, err
	}
	return &keyring{ring: seal.NewKeyring(k), setting: setting, file: file, generated: text, source: &keyFile{path: file}}, nil
}

// secretKeyError explains why the store's secrets did not open, naming the
// setting to fix; key ids are hashes and safe to show, keys never appear.
func secretKeyError(err error, keys *keyring) error {
	switch {
	case errors.Is(err, seal.ErrUnknownKey):
		ids := "key id " + keys.ring.CurrentID()
		if all := keys.ring.IDs(); len(all) > 1 {
			ids = "key ids " + strings.Join(all, ", ")
		}
		return fmt.Errorf("the database's secrets do not open with the secret key given in %s (%s): "+
			"give the key they were sealed with; while rotating, list the previous key after the new one, newest first "+
			"(NSAUTH_SECRET_KEY=\"<new key>,<previous key>\"): %w",
			keys.setting, ids, keyIDError(err))
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
