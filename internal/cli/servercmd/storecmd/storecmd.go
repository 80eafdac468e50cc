// Package storecmd is what the nsauth-server commands that administer the
// built-in provider's store share: finding and opening the store their
// flags and environment point at, and recording the audit event of each
// change they make ([Command]).
package storecmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/visible"
)

// Command opens the built-in provider's store for a command that
// administers it (`nsauth users`, `nsauth clients`): the command carries
// the store flags (config.RegisterStoreFlags) for its subcommands.
type Command struct {
	App *cli.App
	// Parent is the parent command, whose flags locate the store.
	Parent *cobra.Command
	// OSUser names who ran the command; nil means audit.OSUser.
	OSUser func() string

	// audit records the changes the command makes, set by WithStore.
	audit audit.Recorder
	// remote is set by RegisterRemoteFlags.
	remote *remoteFlags
	// linkTTL is NSAUTH_LINK_TTL, set by WithStore (one-time links).
	linkTTL time.Duration
}

// WithStore opens the store the flags and environment point at, runs fn
// and closes it.
func (o *Command) WithStore(ctx context.Context, fn func(context.Context, *store.Store) error) error {
	return o.WithStoreOpenedBy(ctx, func(ctx context.Context, loc config.Store) (*store.Store, error) {
		return app.OpenStore(ctx, loc, o.App.Now)
	}, fn)
}

// WithStoreOpenedBy is WithStore with the store opened by open.
func (o *Command) WithStoreOpenedBy(ctx context.Context, open func(context.Context, config.Store) (*store.Store, error), fn func(context.Context, *store.Store) error) error {
	if err := o.OfflineOnly("this command"); err != nil {
		// A command that opens the store must not do so when asked to
		// administer a server through its admin API.
		return err
	}
	loc, err := LoadExistingStore(o.Parent.PersistentFlags(), o.App.Getenv)
	if err != nil {
		return err
	}
	st, err := open(ctx, *loc)
	if err != nil {
		return err
	}
	defer st.Close()
	o.linkTTL = loc.LinkTTL
	if o.audit, err = app.StoreAuditor(st, loc.AuditRequired, o.App.Now); err != nil {
		return err
	}
	return fn(ctx, st)
}

// Changed records the audit event of a change the command made, with the
// operating-system user who ran it as its actor. Under
// NSAUTH_AUDIT_REQUIRED an event that cannot be recorded fails the
// command; the change itself is made by then, and the error says so.
func (o *Command) Changed(ctx context.Context, e audit.Event) error {
	who := o.OSUser
	if who == nil {
		who = audit.OSUser
	}
	e.Actor = who()
	if err := o.audit.Record(ctx, e); err != nil {
		return fmt.Errorf("the change was made, but its audit event was not recorded: %w", err)
	}
	return nil
}

// LoadExistingStore reads where the store is from the flags and the
// environment, and refuses a data directory that does not exist: a command
// that manages data must not make an empty database somewhere unintended.
func LoadExistingStore(fs *pflag.FlagSet, getenv func(string) (string, bool)) (*config.Store, error) {
	loc, err := config.LoadStore(fs, getenv)
	if err != nil {
		return nil, err
	}
	if loc.DatabaseURL == "" {
		if _, err := os.Stat(loc.DataDir); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no nsauth data in %s: start `nsauth serve` once, or give --data-dir (or --database-url)", loc.DataDir)
		}
	}
	return loc, nil
}

// PrintJSON writes v to w as indented JSON, with no hidden character left
// raw (visible.EscapeJSON): the --json of the administration commands.
func PrintJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(visible.EscapeJSON(b), '\n'))
	return err
}

// OrDash is s, or "-" for an empty table cell.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// OnOne is a command `use <name>` that finds the record its one argument
// names (find, which says when there is none) and runs run on it, with
// the store open: the shape of `nsauth apps disable`, `nsauth connectors
// enable` and their kin.
func OnOne[T any](o *Command, use, short string, args cobra.PositionalArgs,
	find func(context.Context, *store.Store, string) (T, error),
	run func(context.Context, *store.Store, T) error) *cobra.Command {
	return &cobra.Command{
		Use:   use + " <name>",
		Short: short,
		Args:  args,
		RunE: func(c *cobra.Command, a []string) error {
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				r, err := find(ctx, st, a[0])
				if err != nil {
					return err
				}
				return run(ctx, st, r)
			})
		},
	}
}
