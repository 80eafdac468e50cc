// Package cliapp is what every nsauth command takes from the outside world
// (an [App]: I/O streams, environment, clock) and how a command reports a
// usage mistake. It is a leaf: package cli and the packages of its commands
// import it, and it imports none of them.
package cliapp

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// App holds what commands need from the outside world.
type App struct {
	// In, Out and ErrOut are the standard streams. Data goes to Out,
	// messages to ErrOut.
	In          io.Reader
	Out, ErrOut io.Writer
	// Getenv looks up environment variables.
	Getenv func(string) (string, bool)
	// Now is the clock.
	Now func() time.Time
	// After waits, as time.After does: between a device login's polls.
	// Nil means time.After.
	After func(time.Duration) <-chan time.Time
}

// DefaultApp returns an App bound to the process's streams and environment.
func DefaultApp() *App {
	return &App{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, Getenv: os.LookupEnv, Now: time.Now, After: time.After}
}

// UsageError marks an error as a usage mistake (exit code 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// UsageErrorf reports a usage mistake.
func UsageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// NoArgs is cobra.NoArgs with a usage error.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return UsageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}
