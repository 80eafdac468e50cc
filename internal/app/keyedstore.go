package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
)

// OpenKeyedStore opens the store loc points at, as OpenStore does, but with
// the keys that seal its secrets, for a command that writes one (`nsauth
// users totp enroll` stores a TOTP secret): the configured keys, or with
// SQLite the data directory's key file. It never makes a key: the server
// makes it at its first start, and a second key would leave the database
// with secrets no single key opens.
func OpenKeyedStore(ctx context.Context, loc config.Store, keys config.SecretKeys, now func() time.Time) (*store.Store, error) {
	var ring *seal.Keyring
	switch {
	case keys.Current != nil:
		ring = seal.NewKeyring(keys.Current, keys.Old)
	case loc.DatabaseURL != "":
		return nil, fmt.Errorf("this command stores a secret and needs the key that seals them: set %s as for nsauth serve", config.SecretKeySettings())
	default:
		file := filepath.Join(loc.DataDir, config.DefaultSecretKeyFile)
		k, err := config.ReadSecretKeyFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no secret key file %s: start nsauth serve once to make it, or set %s", file, config.SecretKeySettings())
		}
		if err != nil {
			return nil, err
		}
		ring = seal.NewKeyring(k)
	}
	st, err := openStore(ctx, loc, store.Options{Now: now, Keyring: ring})
	if err != nil {
		return nil, err
	}
	if err := st.CheckSecrets(ctx); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("the secret key does not open the secrets in the database (is it the server's?): %w", keyIDError(err))
	}
	return st, nil
}
