package app

import (
	"context"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/store"
)

// OpenKeyedStore opens the store loc points at, as OpenStore does, but with
// the keys that seal its secrets, for a command that writes one (`nsauth
// users totp enroll` stores a TOTP secret): the configured keys, or with
// SQLite the data directory's key file. It never makes a key: the server
// makes it at its first start, and a second key would leave the database
// with secrets no single key opens.
func OpenKeyedStore(ctx context.Context, loc config.Store, keys config.SecretKeys, now func() time.Time) (*store.Store, error) {
	kr, err := givenKeyring(loc, keys, "this command stores a secret and needs the key that seals them")
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, loc, store.Options{Now: now, Keyring: kr.ring})
	if err != nil {
		return nil, err
	}
	if err := st.CheckSecrets(ctx); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("the secret key does not open the secrets in the database (is it the server's?): %w", keyIDError(err))
	}
	return st, nil
}

// givenKeyring is secretKeyring for a command, which never makes a key:
// why says why the command needs one.
func givenKeyring(loc config.Store, keys config.SecretKeys, why string) (*keyring, error) {
	if loc.DatabaseURL != "" && keys.Current() == nil {
		return nil, fmt.Errorf("%s: set %s as for nsauth serve", why, config.SecretKeySettings())
	}
	kr, err := secretKeyring(config.Builtin{DataDir: loc.DataDir, DatabaseURL: loc.DatabaseURL, SecretKeys: keys})
	if err != nil {
		return nil, err
	}
	if kr.generated != "" {
		return nil, fmt.Errorf("%s: there is no secret key file %s; start nsauth serve once to make it, or set %s", why, kr.file, config.SecretKeySettings())
	}
	return kr, nil
}
