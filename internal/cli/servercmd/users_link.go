package servercmd

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/visible"
)

// maxSubjectLen bounds an upstream subject as the store does (OIDC's sub
// is at most 255 ASCII characters, but not every upstream keeps to it).
const maxSubjectLen = 1024

// connectorNameRule is a connector's name (package connectorscmd's rule).
var connectorNameRule = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// identityFlags are --connector and --subject, as link and add take them.
type identityFlags struct {
	connector, subject string
}

func (f *identityFlags) register(fs *pflag.FlagSet, withSubject bool) {
	fs.StringVar(&f.connector, "connector", "", "the connector's `name` (nsauth connectors list)")
	if withSubject {
		fs.StringVar(&f.subject, "subject", "", "the person's stable id at the upstream: OIDC sub, GitHub numeric user id, LDAP entry id (refused sign-ins show it)")
	}
}

// check refuses a connector name or subject that cannot be one.
func (f *identityFlags) check(withSubject bool) error {
	if f.connector == "" {
		return cli.UsageErrorf("--connector is required: the connector's name (nsauth connectors list)")
	}
	if !connectorNameRule.MatchString(f.connector) {
		return cli.UsageErrorf("--connector %q: a connector's name is 1 to 32 characters from a-z, 0-9 and -, starting with a letter", visible.Escape(f.connector))
	}
	if !withSubject {
		return nil
	}
	if f.subject == "" {
		return cli.UsageErrorf("--subject is required: the person's stable id at the upstream (a refused sign-in shows it)")
	}
	if len(f.subject) > maxSubjectLen {
		return cli.UsageErrorf("--subject: at most %d bytes", maxSubjectLen)
	}
	if err := visible.Check("--subject", f.subject); err != nil {
		return cli.UsageErrorf("%v", err)
	}
	return nil
}

func newUsersLinkCommands(o *usersOptions) []*cobra.Command {
	var lf identityFlags
	link := &cobra.Command{
		Use:   "link <username> --connector NAME --subject SUBJECT",
		Short: "Bind a user to an upstream identity, so that signing in through the connector signs in as that user",
		Long: `Bind a user to the identity a connector knows them by: the subject (an OIDC
provider's sub, GitHub's numeric user id, the LDAP entry's id). Signing in
through the connector as that identity then signs in as this user. A sign-in
through a connector that is not linked, and that the connector may not create
a user for, is refused with a page that shows the subject and this command.

A user has at most one identity per connector, and an identity belongs to one
user; nsauth never binds an identity to an account by its name or email.`,
		Example: `  nsauth users link alice --connector google --subject 110248495921238986420
  nsauth users link bob --connector github --subject 583231`,
		Args: exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			if err := lf.check(true); err != nil {
				return err
			}
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return o.link(ctx, st, args[0], lf)
			})
		},
	}
	lf.register(link.Flags(), true)

	var uf identityFlags
	unlink := &cobra.Command{
		Use:   "unlink <username> --connector NAME",
		Short: "Remove a user's binding to a connector's identity",
		Long: `Remove the binding of a user to their identity at a connector: signing in through
the connector no longer signs in as this user. Sessions and tokens the user
already holds stay; nsauth users disable stops them.`,
		Example: `  nsauth users unlink alice --connector google`,
		Args:    exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			if err := uf.check(false); err != nil {
				return err
			}
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return o.unlink(ctx, st, args[0], uf.connector)
			})
		},
	}
	uf.register(unlink.Flags(), false)
	return []*cobra.Command{link, unlink}
}

func (o *usersOptions) link(ctx context.Context, st *store.Store, username string, f identityFlags) error {
	u, err := st.UserByUsername(ctx, username)
	if err != nil {
		return userError(username, err)
	}
	if err := checkConnectorExists(ctx, st, f.connector); err != nil {
		return err
	}
	if id, err := st.IdentityBySubject(ctx, f.connector, f.subject); err == nil {
		if id.UserID == u.ID {
			return fmt.Errorf("%q is linked to that identity of %s already", u.Username, f.connector)
		}
		return fmt.Errorf("that identity of %s is linked to another user: unlink it from them first (nsauth users unlink USERNAME --connector %s)", f.connector, f.connector)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	err = st.LinkIdentity(ctx, &store.Identity{Connector: f.connector, Subject: f.subject, UserID: u.ID})
	switch {
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%q has an identity of %s already, or that identity is linked to another user: nsauth users unlink %s --connector %s first", u.Username, f.connector, u.Username, f.connector)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no connector %q (nsauth connectors list shows them), or no user %q", f.connector, u.Username)
	case err != nil:
		return err
	}
	if err := o.Changed(ctx, audit.Event{Type: audit.UserLinked, Subject: u.ID, Username: u.Username, Target: f.connector}); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Linked %q to the identity %q of connector %s: signing in through it signs in as %s.\n", u.Username, visible.Escape(f.subject), f.connector, u.Username)
	return nil
}

func (o *usersOptions) unlink(ctx context.Context, st *store.Store, username, connectorName string) error {
	u, err := st.UserByUsername(ctx, username)
	if err != nil {
		return userError(username, err)
	}
	ids, err := st.IdentitiesOfUser(ctx, u.ID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id.Connector != connectorName {
			continue
		}
		if err := st.UnlinkIdentity(ctx, id.Connector, id.Subject); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%q has no identity of connector %s", u.Username, connectorName)
			}
			return err
		}
		if err := o.Changed(ctx, audit.Event{Type: audit.UserUnlinked, Subject: u.ID, Username: u.Username, Target: connectorName}); err != nil {
			return err
		}
		fmt.Fprintf(o.App.ErrOut, "Unlinked %q from connector %s: signing in through it no longer signs in as %s (its sessions and tokens stay).\n", u.Username, connectorName, u.Username)
		return nil
	}
	return fmt.Errorf("%q has no identity of connector %s", u.Username, connectorName)
}

// checkConnectorExists refuses a connector name the store does not hold.
func checkConnectorExists(ctx context.Context, st *store.Store, name string) error {
	all, err := st.Connectors(ctx)
	if err != nil {
		return err
	}
	for _, k := range all {
		if k.Name == name {
			return nil
		}
	}
	return fmt.Errorf("no connector %q (nsauth connectors list shows them)", name)
}

// addWithIdentity creates a user without a password, bound to an identity:
// they sign in only through the connector.
func (o *usersOptions) addWithIdentity(ctx context.Context, st *store.Store, u *store.User, f identityFlags) error {
	if err := checkConnectorExists(ctx, st, f.connector); err != nil {
		return err
	}
	if _, err := st.IdentityBySubject(ctx, f.connector, f.subject); err == nil {
		return fmt.Errorf("that identity of %s is linked to another user already", f.connector)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	id := &store.Identity{Connector: f.connector, Subject: f.subject}
	if err := st.CreateUserWithIdentity(ctx, u, id); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("user %q already exists, or that identity of %s is linked already", u.Username, f.connector)
		}
		return err
	}
	if err := o.userChanged(ctx, u, u.Username, "added"); err != nil {
		return err
	}
	if err := o.Changed(ctx, audit.Event{Type: audit.UserLinked, Subject: u.ID, Username: u.Username, Target: f.connector}); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Created user %q without a password, linked to the identity %q of connector %s: they sign in through it.\n",
		u.Username, visible.Escape(f.subject), f.connector)
	return nil
}
