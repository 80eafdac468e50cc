package servercmd

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/cli"
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
			removing := c.Flags().Changed("remove")
			if removing && remove == "" {
				return cli.UsageErrorf("--remove needs the name or id of a passkey (nsauth users passkeys %s lists them)", args[0])
			}
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				if removing {
					return o.removePasskey(ctx, api, args[0], remove)
				}
				return o.listPasskeys(ctx, api, args[0])
			})
		},
	}
	cmd.Flags().StringVar(&remove, "remove", "", "remove the passkey with this name or id")
	return cmd
}

// listPasskeys prints username's passkeys (adminservice's
// ListUserPasskeys).
func (o *usersOptions) listPasskeys(ctx context.Context, api adminv1connect.AdminServiceClient, username string) error {
	resp, err := api.ListUserPasskeys(ctx, connect.NewRequest(&adminv1.ListUserPasskeysRequest{Username: username}))
	if err != nil {
		return err
	}
	pks := resp.Msg.GetPasskeys()
	if len(pks) == 0 {
		fmt.Fprintf(o.App.ErrOut, "%q has no passkeys.\n", linkUsername(username))
		return nil
	}
	tw := tabwriter.NewWriter(o.App.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tKIND\tADDED\tLAST USED\tAAGUID")
	for _, p := range pks {
		used := "never"
		if p.GetLastUsedAt() != 0 {
			used = time.Unix(p.GetLastUsedAt(), 0).UTC().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", visible.Escape(p.GetName()), p.GetId(), passkeyKind(p),
			time.Unix(p.GetCreatedAt(), 0).UTC().Format(time.DateTime), used, aaguid(p.GetAaguid()))
	}
	return tw.Flush()
}

// passkeyKind says whether a passkey may be synced between devices, and
// flags a clone warning.
func passkeyKind(p *adminv1.Passkey) string {
	kind := "device-bound"
	if p.GetBackupEligible() {
		kind = "synced"
	}
	if p.GetCloneWarning() {
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

// removePasskey removes username's passkey named, or with the id,
// nameOrID (adminservice's RemoveUserPasskey).
func (o *usersOptions) removePasskey(ctx context.Context, api adminv1connect.AdminServiceClient, username, nameOrID string) error {
	resp, err := api.RemoveUserPasskey(ctx, connect.NewRequest(&adminv1.RemoveUserPasskeyRequest{Username: username, Passkey: nameOrID}))
	if err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Removed the passkey %q of %q.\n", resp.Msg.GetPasskey().GetName(), linkUsername(username))
	return nil
}
