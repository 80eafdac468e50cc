package app

import (
	"context"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/store"
)

// OpenStore opens the built-in provider's store where loc points:
// PostgreSQL when it names a database URL, else SQLite in its data
// directory. now is the store's clock (time.Now when nil).
//
// The store holds no secret key: it manages users and tokens, but reads
// and writes no secret (see store.Options.Keyring).
func OpenStore(ctx context.Context, loc config.Store, now func() time.Time) (*store.Store, error) {
	return openStore(ctx, loc, store.Options{Now: now})
}

func openStore(ctx context.Context, loc config.Store, opts store.Options) (*store.Store, error) {
	if loc.DatabaseURL != "" {
		st, err := store.OpenPostgres(ctx, loc.DatabaseURL, opts)
		if err != nil {
			return nil, fmt.Errorf("opening the database: %w", err)
		}
		return st, nil
	}
	st, err := store.OpenSQLite(ctx, loc.DataDir, opts)
	if err != nil {
		return nil, fmt.Errorf("opening the database in %s: %w", loc.DataDir, err)
	}
	return st, nil
}
