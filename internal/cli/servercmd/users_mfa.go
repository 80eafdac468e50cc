package servercmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// maxCodeTries is how many codes `users totp enroll` reads before giving
// up: a mistyped code need not restart the enrolment, endless guessing
// gets nowhere.
const maxCodeTries = 3

// addSecondFactorCommands adds `users totp …` and `users mfa-reset` to the
// users command.
func (o *usersOptions) addSecondFactorCommands(cmd *cobra.Command) {
	totp := &cobra.Command{
		Use:   "totp",
		Short: "Manage a user's one-time codes (TOTP authenticator app)",
		Args:  cli.NoArgs,
	}
	var issuer string
	enroll := &cobra.Command{
		Use:   "enroll <username>",
		Short: "Set up an authenticator app for a user: prints its QR code, asks for a first code, prints recovery codes",
		Long: `Set up one-time codes (TOTP, RFC 6238) for a user. The command prints a QR
code and the otpauth:// link for an authenticator app, then asks for the code
the app shows, to check the app has the secret. Once the code is right it
stores the secret (sealed with the server's secret key: give the same
NSAUTH_SECRET_KEY or key file as to nsauth serve) and prints ten recovery
codes, once: each lets the user in once when the app is lost.

From then on the user is asked for a code after their password. Run this where
only the user sees the screen: the QR code and the link carry the secret.`,
		Example: `  nsauth users totp enroll alice`,
		Args:    exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			keys, err := config.LoadSecretKeys(c.Flags(), o.App.Getenv)
			if err != nil {
				return err
			}
			label := issuer
			if label == "" {
				label, _ = o.App.Getenv("NSAUTH_ISSUER")
			}
			return o.withKeyedStore(c.Context(), *keys, func(ctx context.Context, st *store.Store) error {
				return o.enrollTOTP(ctx, st, args[0], label)
			})
		},
	}
	enroll.Flags().StringVar(&issuer, "issuer", "", "the provider's issuer URL, named in the authenticator app (default: $NSAUTH_ISSUER)")
	config.RegisterSecretKeyFlags(enroll.Flags())
	remove := &cobra.Command{
		Use:   "remove <username>",
		Short: "Remove a user's authenticator app (recovery codes stay)",
		Args:  exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return o.removeTOTP(ctx, api, args[0])
			})
		},
	}
	totp.AddCommand(enroll, remove)
	reset := &cobra.Command{
		Use:   "mfa-reset <username>",
		Short: "Remove every second factor of a user who lost their device (authenticator app, recovery codes, passkeys)",
		Long: `Remove every second factor of a user: the authenticator app's secret, the
recovery codes and the passkeys, and the logins waiting for one. The user then
logs in with their password alone; with NSAUTH_MFA=required they cannot sign
in until they set up a new factor through nsauth users enrol-link.`,
		Args: exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return o.resetSecondFactors(ctx, api, args[0])
			})
		},
	}
	cmd.AddCommand(totp, reset)
}

// withKeyedStore is WithStore for a command that writes a secret.
func (o *usersOptions) withKeyedStore(ctx context.Context, keys config.SecretKeys, fn func(context.Context, *store.Store) error) error {
	return o.WithStoreOpenedBy(ctx, func(ctx context.Context, loc config.Store) (*store.Store, error) {
		return app.OpenKeyedStore(ctx, loc, keys, o.App.Now)
	}, fn)
}

func (o *usersOptions) enrollTOTP(ctx context.Context, st *store.Store, username, issuer string) error {
	u, err := st.UserByUsername(ctx, username)
	if err != nil {
		return userError(username, err)
	}
	f, err := st.SecondFactors(ctx, u.ID)
	if err != nil {
		return err
	}
	if f.TOTP {
		return fmt.Errorf("%q already has an authenticator app: remove it first with `nsauth users totp remove %s`", u.Username, u.Username)
	}
	secret, uri, err := secondfactor.NewTOTP(secondfactor.IssuerName(issuer), u.Username)
	if err != nil {
		return err
	}
	qr, err := secondfactor.QRTerminal(uri)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.App.Out, "Scan this QR code with the authenticator app of %s:\n\n%s\n", u.Username, qr)
	fmt.Fprintf(o.App.Out, "Or open this link on the device:\n  %s\nor type this key into the app:\n  %s\n\n", uri, secret)

	in := bufio.NewReader(io.LimitReader(o.App.In, 1<<10))
	var step int64
	for try := 1; ; try++ {
		fmt.Fprint(o.App.ErrOut, "Code shown by the app: ")
		line, err := in.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading the code: %w", err)
		}
		line = strings.TrimSpace(line)
		if line == "" && err != nil {
			fmt.Fprintln(o.App.ErrOut)
			return errors.New("no code on standard input: nothing was stored; run the command again and type the code the app shows")
		}
		step, err = secondfactor.CheckTOTP(secret, line, o.App.Now())
		if err == nil {
			break
		}
		if !errors.Is(err, secondfactor.ErrWrongCode) {
			return err
		}
		if try == maxCodeTries {
			return errors.New("the codes were not right: nothing was stored; check the clock of the device and run the command again")
		}
		fmt.Fprintln(o.App.ErrOut, "That code is not right; check the clock of the device and try again.")
	}
	codes := secondfactor.NewRecoveryCodes()
	if err := st.EnrollTOTP(ctx, u.ID, secret, step, codes); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%q got an authenticator app meanwhile: nothing was changed", u.Username)
		}
		return err
	}
	if err := o.Changed(ctx, audit.Event{Type: audit.SecondFactorEnrolled, Subject: u.ID, Username: u.Username, Reason: "totp"}); err != nil {
		return err
	}
	fmt.Fprintf(o.App.Out, "\nThe authenticator app is set up for %s. Recovery codes (each works once; keep them safe, they are not shown again):\n\n", u.Username)
	for _, c := range codes {
		fmt.Fprintf(o.App.Out, "  %s\n", c)
	}
	return nil
}

// removeTOTP removes username's authenticator app (adminservice's
// RemoveUserTOTP).
func (o *usersOptions) removeTOTP(ctx context.Context, api adminv1connect.AdminServiceClient, username string) error {
	if _, err := api.RemoveUserTOTP(ctx, connect.NewRequest(&adminv1.RemoveUserTOTPRequest{Username: username})); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Removed the authenticator app of %q.\n", linkUsername(username))
	return nil
}

// resetSecondFactors removes every second factor of username
// (adminservice's ResetUserFactors).
func (o *usersOptions) resetSecondFactors(ctx context.Context, api adminv1connect.AdminServiceClient, username string) error {
	if _, err := api.ResetUserFactors(ctx, connect.NewRequest(&adminv1.ResetUserFactorsRequest{Username: username})); err != nil {
		return err
	}
	name := linkUsername(username)
	fmt.Fprintf(o.App.ErrOut, "Removed every second factor of %q: it logs in with its password alone; if NSAUTH_MFA=required, "+
		"it cannot sign in until it sets up a new one through a link (nsauth users enrol-link %s).\n", name, name)
	return nil
}

// secondFactorStatus is the MFA column of `users list`.
func secondFactorStatus(f store.SecondFactors) string {
	var parts []string
	if f.TOTP {
		parts = append(parts, "totp")
	}
	if f.RecoveryCodes > 0 {
		parts = append(parts, fmt.Sprintf("recovery:%d", f.RecoveryCodes))
	}
	if f.Passkeys > 0 {
		parts = append(parts, fmt.Sprintf("passkeys:%d", f.Passkeys))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}
