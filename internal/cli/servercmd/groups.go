package servercmd

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/visible"
)

func newGroupsCommand(app *cli.App) *cobra.Command {
	o := &storecmd.Command{App: app}
	cmd := &cobra.Command{
		Use:   "groups",
		Short: "Manage the built-in provider's groups",
		Long: `Manage the groups nsauth keeps. A user's groups (these, and the groups a
connector saw upstream, named CONNECTOR:name) reach the tokens of apps allowed
the scope groups (nsauth apps add NAME --scope openid,profile,groups): the
groups claim of ID tokens, of access tokens and of introspection, and
CheckToken's groups. The group admin is the one the admin API trusts: its
members administer nsauth through --api-url.

Group names are lower-case: letters, digits and . _ - (starting with a letter
or digit), at most 64 characters. "nsauth users groups NAME --add G --remove G"
changes who is in them. Deleting a group removes its members from it; tokens
already issued keep the groups they name until they expire.

The commands work on the provider's store (--data-dir or --database-url), or
with --api-url through the admin API of a running server.`,
		Example: `  nsauth groups add ops --description "On-call engineers"
  nsauth groups list
  nsauth users groups alice --add ops --add admin
  nsauth groups delete ops`,
		Args: cli.NoArgs,
	}
	o.Parent = cmd
	config.RegisterStoreFlags(cmd.PersistentFlags())
	o.RegisterRemoteFlags(cmd.PersistentFlags())

	var description string
	add := &cobra.Command{
		Use:   "add <name>",
		Short: "Create a group",
		Args:  exactlyOneGroup,
		RunE: func(c *cobra.Command, args []string) error {
			return o.Admin(c.Context(), func(ctx context.Context, admin adminv1connect.AdminServiceClient) error {
				resp, err := admin.CreateGroup(ctx, connect.NewRequest(&adminv1.CreateGroupRequest{Name: args[0], Description: description}))
				if err != nil {
					return err
				}
				fmt.Fprintf(app.ErrOut, "Created the group %q.\n", resp.Msg.GetGroup().GetName())
				return nil
			})
		},
	}
	add.Flags().StringVar(&description, "description", "", "what the group is for, for people")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List groups, with how many members each has",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return o.Admin(c.Context(), func(ctx context.Context, admin adminv1connect.AdminServiceClient) error {
				return listGroups(ctx, app, admin, asJSON)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")

	del := &cobra.Command{
		Use:   "delete <name>",
		Short: "Delete a group (its members leave it)",
		Args:  exactlyOneGroup,
		RunE: func(c *cobra.Command, args []string) error {
			return o.Admin(c.Context(), func(ctx context.Context, admin adminv1connect.AdminServiceClient) error {
				if _, err := admin.DeleteGroup(ctx, connect.NewRequest(&adminv1.DeleteGroupRequest{Name: args[0]})); err != nil {
					return err
				}
				fmt.Fprintf(app.ErrOut, "Deleted the group %q; tokens already issued keep naming it until they expire.\n", args[0])
				return nil
			})
		},
	}
	cmd.AddCommand(add, list, del)
	return cmd
}

var exactlyOneGroup = cli.ExactlyOne("the group name")

// groupJSON is a group as `nsauth groups list --json` prints it.
type groupJSON struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Members     int32     `json:"members"`
	CreatedAt   time.Time `json:"created_at"`
}

func listGroups(ctx context.Context, app *cli.App, admin adminv1connect.AdminServiceClient, asJSON bool) error {
	resp, err := admin.ListGroups(ctx, connect.NewRequest(&adminv1.ListGroupsRequest{}))
	if err != nil {
		return err
	}
	groups := resp.Msg.GetGroups()
	if asJSON {
		out := make([]groupJSON, 0, len(groups))
		for _, g := range groups {
			out = append(out, groupJSON{Name: g.GetName(), Description: g.GetDescription(), Members: g.GetMembers(), CreatedAt: time.Unix(g.GetCreatedAt(), 0).UTC()})
		}
		return storecmd.PrintJSON(app.Out, out)
	}
	tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMEMBERS\tDESCRIPTION\tCREATED")
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.GetName(), strconv.Itoa(int(g.GetMembers())), storecmd.OrDash(visible.Escape(g.GetDescription())),
			time.Unix(g.GetCreatedAt(), 0).UTC().Format(time.DateOnly))
	}
	return tw.Flush()
}
