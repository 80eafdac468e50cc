package app

import (
	"context"
	"fmt"
	"log/slog"
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

// logDiskFull is store.Options.DiskFull for a server: one line when writes
// start failing because the disk holding the data is full, naming it (the
// data directory, or the database of a URL without its password), and one
// when a write succeeds again. Reads, and so CheckToken, go on meanwhile.
func logDiskFull(logger *slog.Logger, loc config.Store) func(full bool, cause error) {
	disk, where := "the disk of the data directory", []any{"data_dir", loc.DataDir}
	if loc.DatabaseURL != "" {
		disk, where = "the database server's disk", []any{"database", store.RedactURL(loc.DatabaseURL)}
	}
	return func(full bool, cause error) {
		if full {
			logger.Error(disk+" is full: logins, refreshes and changes fail with Unavailable until space is freed there (no restart needed)",
				append(where, "error", cause)...)
			return
		}
		logger.Info(disk+" has space again: writes succeed", where...)
	}
}
