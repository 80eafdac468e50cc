package servercmd

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/visible"
)

// newUsersPasskeysCommand is `nsauth users passkeys <username> [--remove
// NAME_OR_ID]`: list a user's passkeys, or remove one.
func newUsersPasskeysCommand(o *usersOptions) *cobra.Command {
	var remove string
	cmd := &cobra.Command{
		Use:   "passkeys <username>",
		Short: "List a user's passkeys, or remove one with --remove",
		Long: `List the passkeys a user registered at the login page (name, id, kind, when
added and last used), or remove one by its name or id with --remove. A removed
passkey no longer logs anyone in; the user can register a new one after their
next password login. nsauth users mfa-reset removes every passkey of a user
along with their other second factors.`,
		Example: `  nsauth users passkeys alice
  nsauth users passkeys alice --remove "Passkey 2026-11-30"`,
		Args: exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				if c.Flags().Changed("remove") {
					return o.removePasskey(ctx, st, args[0], remove)
				}
				return o.listPasskeys(ctx, st, args[0])
			})
		},
	}
	cmd.Flags().StringVar(&remove, "remove", "", "remove the passkey with this name or id")
	return cmd
}

func (o *usersOptions) listPasskeys(ctx context.Context, st *store.Store, username string) error {
	u, err := st.UserByUsername(ctx, username)
	if err != nil {
		return userError(username, err)
	}
	pks, err := st.PasskeysByUser(ctx, u.ID)
	if err != nil {
		return err
	}
	if len(pks) == 0 {
		fmt.Fprintf(o.App.ErrOut, "%q has no passkeys.\n", u.Username)
		return nil
	}
	tw := tabwriter.NewWriter(o.App.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tKIND\tADDED\tLAST USED\tAAGUID")
	for _, p := range pks {
		used := "never"
		if !p.LastUsedAt.IsZero() {
			used = p.LastUsedAt.UTC().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", visible.Escape(p.Name), p.ID, passkeyKind(&p), p.CreatedAt.UTC().Format(time.DateTime), used, aaguid(p.AAGUID))
	}
	return tw.Flush()
}

// passkeyKind says whether a passkey may be synced between devices, and
// flags a clone warning.
func passkeyKind(p *store.Passkey) string {
	kind := "device-bound"
	if p.BackupEligible {
		kind = "synced"
	}
	if p.CloneWarning {
		kind += ",clone-warning"
	}
	return kind
}

// aaguid formats an authenticator model id as a UUID, or "-" when there
// is none (all zeros: the authenticator did not say).
func aaguid(b []byte) string {
	if len(b) != 16 || strings.Trim(hex.EncodeToString(b), "0") == "" {
		return "-"
	}
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (o *usersOptions) removePasskey(ctx context.Context, st *store.Store, username, nameOrID string) error {
	if nameOrID == "" {
		return cli.UsageErrorf("--remove needs the name or id of a passkey (nsauth users passkeys %s lists them)", username)
	}
	u, err := st.UserByUsername(ctx, username)
	if err != nil {
		return userError(username, err)
	}
	p, err := st.DeletePasskey(ctx, u.ID, nameOrID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%q has no passkey named or with the id %q (nsauth users passkeys %s lists them)", u.Username, nameOrID, u.Username)
		}
		return err
	}
	if err := o.Changed(ctx, audit.Event{Type: audit.PasskeyRemoved, Subject: u.ID, Username: u.Username, Target: p.Name}); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Removed the passkey %q of %q.\n", p.Name, u.Username)
	return nil
}
