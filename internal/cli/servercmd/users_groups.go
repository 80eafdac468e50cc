package servercmd

import (
	"context"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
)

// newUsersGroupsCommand is `nsauth users groups NAME [--add G] [--remove
// G]`: a user's memberships of the groups nsauth keeps.
func newUsersGroupsCommand(o *usersOptions) *cobra.Command {
	var add, remove []string
	cmd := &cobra.Command{
		Use:   "groups <username>",
		Short: "Show a user's groups, or add it to groups and remove it from others",
		Long: `Without flags, print the user's groups, one a line: the groups nsauth keeps
(nsauth groups) and those a connector saw upstream (CONNECTOR:name). With
--add and --remove (each repeatable, or comma-separated), add the user to
groups nsauth keeps and remove it from others, all at once: when a group
named does not exist, nothing changes. Tokens issued from then on carry the
new groups; tokens already issued keep theirs until they expire.`,
		Example: `  nsauth users groups alice
  nsauth users groups alice --add admin --add ops
  nsauth users groups alice --remove ops`,
		Args: exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			return o.Admin(c.Context(), func(ctx context.Context, admin adminv1connect.AdminServiceClient) error {
				if len(add) == 0 && len(remove) == 0 {
					return o.printGroups(ctx, admin, args[0])
				}
				return o.setGroups(ctx, admin, args[0], add, remove)
			})
		},
	}
	cmd.Flags().StringSliceVar(&add, "add", nil, "add the user to this group (repeatable)")
	cmd.Flags().StringSliceVar(&remove, "remove", nil, "remove the user from this group (repeatable)")
	return cmd
}

func (o *usersOptions) printGroups(ctx context.Context, admin adminv1connect.AdminServiceClient, username string) error {
	resp, err := admin.GetUser(ctx, connect.NewRequest(&adminv1.GetUserRequest{Username: username}))
	if err != nil {
		return err
	}
	for _, g := range resp.Msg.GetUser().GetGroups() {
		fmt.Fprintln(o.App.Out, g)
	}
	return nil
}

func (o *usersOptions) setGroups(ctx context.Context, admin adminv1connect.AdminServiceClient, username string, add, remove []string) error {
	resp, err := admin.SetUserGroups(ctx, connect.NewRequest(&adminv1.SetUserGroupsRequest{Username: username, Add: add, Remove: remove}))
	if err != nil {
		return err
	}
	name := strings.ToLower(username)
	if groups := resp.Msg.GetGroups(); len(groups) > 0 {
		fmt.Fprintf(o.App.ErrOut, "%q is now in the groups %s.\n", name, strings.Join(groups, ", "))
	} else {
		fmt.Fprintf(o.App.ErrOut, "%q is now in no group nsauth keeps.\n", name)
	}
	return nil
}
