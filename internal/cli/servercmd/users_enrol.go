package servercmd

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store"
)

// defaultEnrolLinkTTL is how long an enrolment link stays valid unless
// --ttl says otherwise: long enough to reach a person the same day, short
// enough that a forgotten link does not lie around.
const defaultEnrolLinkTTL = 12 * time.Hour

func newUsersEnrolLinkCommand(o *usersOptions) *cobra.Command {
	var (
		ttl    time.Duration
		revoke bool
	)
	cmd := &cobra.Command{
		Use:   "enrol-link <username>",
		Short: "Print a one-time link with which a user adds a second factor in the browser",
		Long: `Print a link that lets a user set up a second factor (an authenticator app
or a passkey) in the browser. A password alone never adds a factor: a factor
that can replace the password is added only after a login that proved a
second factor, or through this link. Its holder must also give the user's
password; the link then works once, and expires after --ttl (default 12h, at
most 7 days). A new link replaces the user's previous one; --revoke removes it.

Under NSAUTH_MFA=required a user without a second factor cannot sign in
until they use such a link (or you run nsauth users totp enroll for them).
Give the link to the user alone, through a channel you trust: the link is
printed on standard output, once, and stored only as a digest.`,
		Example: `  nsauth users enrol-link alice
  nsauth users enrol-link alice --ttl 1h
  nsauth users enrol-link alice --revoke`,
		Args: exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			if ttl <= 0 || ttl > store.MaxEnrolLinkTTL {
				return fmt.Errorf("--ttl must be above 0 and at most %s, not %s", store.MaxEnrolLinkTTL, ttl)
			}
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				if revoke {
					return o.revokeEnrolLink(ctx, st, args[0])
				}
				return o.enrolLink(ctx, st, args[0], ttl)
			})
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", defaultEnrolLinkTTL, "how long the link stays valid (at most 168h)")
	cmd.Flags().BoolVar(&revoke, "revoke", false, "remove the user's enrolment link instead of making one")
	return cmd
}

func (o *usersOptions) enrolLink(ctx context.Context, st *store.Store, username string, ttl time.Duration) error {
	u, err := st.UserByUsername(ctx, username)
	if err != nil {
		return userError(username, err)
	}
	if u.Disabled() {
		return fmt.Errorf("%q is disabled: enable it first with nsauth users enable %s", u.Username, u.Username)
	}
	issuerURL, err := st.ServedIssuer(ctx)
	if err != nil {
		return err
	}
	if issuerURL == "" {
		return errors.New("this data has never been served, so its issuer URL is unknown: start nsauth serve with it once (with the NSAUTH_ISSUER users reach), then make the link")
	}
	token := store.RandomToken(32)
	expires := o.App.Now().Add(ttl)
	if err := st.CreateEnrolLink(ctx, u.ID, token, expires); err != nil {
		return userError(username, err)
	}
	if err := o.userChanged(ctx, u, u.Username, "enrol_link_created"); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Enrolment link for %q, valid once until %s. Give it to %s alone: with the account's password it adds a second factor.\n",
		u.Username, expires.UTC().Format("2006-01-02 15:04 MST"), u.Username)
	fmt.Fprintln(o.App.Out, issuerURL+issuer.EnrolLinkPath+"?link="+url.QueryEscape(token))
	return nil
}

func (o *usersOptions) revokeEnrolLink(ctx context.Context, st *store.Store, username string) error {
	u, err := st.UserByUsername(ctx, username)
	if err != nil {
		return userError(username, err)
	}
	had, err := st.RevokeEnrolLink(ctx, u.ID)
	if err != nil {
		return err
	}
	if !had {
		return fmt.Errorf("%q has no enrolment link", u.Username)
	}
	if err := o.userChanged(ctx, u, u.Username, "enrol_link_revoked"); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Revoked the enrolment link of %q.\n", u.Username)
	return nil
}
