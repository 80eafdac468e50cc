// Package cli holds nsauth's commands, one file each, and builds the root
// command from them and from its sub-packages: logincmd (nsauth login) and,
// in nsauth-server, servercmd. Commands take their dependencies (I/O
// streams, environment, clock) from an [App] so they can be tested without
// touching the process's real ones; what the client commands share about
// the API server and the stored login is package session.
package cli

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/cli/cliapp"
	"github.com/nsauth/nsauth/internal/cli/logincmd"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// App holds what commands need from the outside world (package cliapp,
// which the packages of the commands share without importing this one).
type App = cliapp.App

// DefaultApp returns an App bound to the process's streams and environment.
func DefaultApp() *App { return cliapp.DefaultApp() }

// usageError marks an error as a usage mistake (exit code 2).
type usageError = cliapp.UsageError

// UsageErrorf reports a usage mistake.
func UsageErrorf(format string, args ...any) error {
	return cliapp.UsageErrorf(format, args...)
}

// NewCommand builds one subcommand for app.
type NewCommand func(app *App) *cobra.Command

// NewRootCommand returns the `nsauth` command with the terminal client's
// subcommands (login, token, whoami, status, logout, accounts, switch,
// completion, version)
// and more: the server's commands (package servercmd) in nsauth-server, or
// in nsauth the stand-ins that run nsauth-server ([ServerStandIns]). The
// client's commands are in this package and its sub-packages logincmd
// and session, and the server's are not, so that
// a binary of the client links none of the server's packages and starts in
// a few milliseconds: `$(nsauth token)` runs before every call of a script.
func NewRootCommand(app *App, more ...NewCommand) *cobra.Command {
	root := &cobra.Command{
		Use:   "nsauth",
		Short: "Neosync-compatible authentication service and terminal client",
		Long: `nsauth serves Neosync's mgmt.v1alpha1.AuthService, brokering an OpenID Connect
provider for command-line clients, and logs people in from a terminal.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version: the same line as `nsauth version`.
		Version: versionLine(debug.ReadBuildInfo()),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetIn(app.In)
	root.SetOut(app.Out)
	root.SetErr(app.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{Err: err} })
	root.AddCommand(
		logincmd.NewCommand(app),
		newTokenCommand(app, nil),
		newWhoamiCommand(app, nil),
		newStatusCommand(app, nil),
		newLogoutCommand(app, nil),
		newAccountsCommand(app, nil),
		newSwitchCommand(app, nil),
		newCompletionCommand(app),
		newVersionCommand(app),
	)
	for _, newCmd := range more {
		root.AddCommand(newCmd(app))
	}
	return root
}

// Run executes the command line args with the root command of
// [NewRootCommand](app, more...) and returns the process exit code.
func Run(ctx context.Context, app *App, args []string, more ...NewCommand) int {
	root := NewRootCommand(app, more...)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var exit *exitCodeError
	if errors.As(err, &exit) {
		return exit.code // the program that failed has said why
	}
	fmt.Fprintf(app.ErrOut, "nsauth: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		return ExitUsage
	}
	return ExitFailure
}

// isCobraUsageError recognises the usage errors cobra builds itself, which
// carry no type of their own.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires ", "invalid argument"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// NoArgs is cobra.NoArgs with a usage error.
func NoArgs(cmd *cobra.Command, args []string) error { return cliapp.NoArgs(cmd, args) }

// ExactlyOne accepts exactly one argument, which the usage error names as
// what ("the username", "the group name").
func ExactlyOne(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return UsageErrorf("%s takes exactly one argument, %s", cmd.CommandPath(), what)
		}
		return nil
	}
}
