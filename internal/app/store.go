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
func OpenStore(ctx context.Context, loc config.Store, now func() time.Time) (*store.Store, error) {
	opts := store.Options{Now: now}
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
