package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// ServerProgram is the binary that holds the server's commands.
const ServerProgram = "nsauth-server"

// serverCommands are the subcommands of nsauth-server that nsauth runs for
// the user, with the one-line help nsauth shows for them. A test checks
// that they match package servercmd's commands.
var serverCommands = []struct{ name, short string }{
	{"serve", "Run the AuthService server"},
	{"backup", "Copy the built-in provider's SQLite database to a file, while the server runs"},
	{"restore", "Make a new data directory from a backup of the SQLite database"},
	{"users", "Manage the built-in provider's user accounts"},
	{"groups", "Manage the built-in provider's groups"},
	{"clients", "Manage the built-in provider's machine clients"},
	{"apps", "Manage the applications people log in to with the built-in provider"},
	{"sessions", "List and end the built-in provider's browser sessions"},
	{"connectors", "Manage the connectors that sign people in with an identity they already have (OpenID Connect, GitHub, LDAP)"},
	{"keys", "Manage the secret key that seals the built-in provider's secrets"},
	{"federation", "Manage the policies that let CI jobs exchange their ID tokens for nsauth tokens"},
	{"audit", "Read the built-in provider's audit trail"},
	{"bench", "Measure nsauth serve under load"},
}

// ServerStandIns are nsauth's commands for what nsauth-server does: each
// runs nsauth-server with the same arguments, streams and environment, and
// exits as it does. nsauth-server is looked for beside the running nsauth
// first (the two are installed together), then on PATH.
var ServerStandIns = func() []NewCommand {
	cmds := make([]NewCommand, 0, len(serverCommands))
	for _, c := range serverCommands {
		cmds = append(cmds, func(app *App) *cobra.Command { return newStandIn(app, c.name, c.short) })
	}
	return cmds
}()

func newStandIn(app *App, name, short string) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		Long: short + ".\n\nThis command is nsauth-server's: nsauth runs " + ServerProgram + " " + name + `
with the same arguments (` + ServerProgram + " " + name + ` --help tells them).`,
		DisableFlagParsing: true, // every argument, --help included, is nsauth-server's
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := findServer(os.Executable, exec.LookPath)
			if err != nil {
				return err
			}
			c := exec.Command(path, append([]string{name}, args...)...)
			c.Stdin, c.Stdout, c.Stderr = app.In, app.Out, app.ErrOut
			c.Env = os.Environ()
			if err := c.Start(); err != nil {
				return fmt.Errorf("running %s: %w", path, err)
			}
			// Stopping nsauth (Ctrl-C, SIGTERM) stops the server the way it
			// stops when signalled directly: gracefully, and nsauth then
			// exits as it does.
			exited := make(chan struct{})
			go func() {
				select {
				case <-cmd.Context().Done():
					_ = c.Process.Signal(stopSignal())
				case <-exited:
				}
			}()
			err = c.Wait()
			close(exited)
			var exit *exec.ExitError
			if errors.As(err, &exit) && exit.ExitCode() > 0 {
				return &exitCodeError{code: exit.ExitCode()}
			}
			if err != nil {
				return fmt.Errorf("running %s: %w", path, err)
			}
			return nil
		},
	}
}

func stopSignal() os.Signal {
	if runtime.GOOS == "windows" {
		return os.Kill
	}
	return syscall.SIGTERM
}

// findServer returns nsauth-server beside the running executable, or on
// PATH, or an error that says how to install it.
func findServer(executable func() (string, error), lookPath func(string) (string, error)) (string, error) {
	name := ServerProgram
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	var self string
	if exe, err := executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		self = filepath.Dir(exe)
		beside := filepath.Join(self, name)
		if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() {
			return beside, nil
		}
	}
	if p, err := lookPath(ServerProgram); err == nil {
		return p, nil
	} else if !errors.Is(err, exec.ErrNotFound) && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("looking for %s on PATH: %w", ServerProgram, err)
	}
	where := "on PATH"
	if self != "" {
		where = "beside this nsauth (in " + self + ") or on PATH"
	}
	return "", errors.New(strings.Join([]string{
		"this command is run by " + ServerProgram + ", which is not installed " + where + ".",
		"Install both commands with `go install github.com/nsauth/nsauth/cmd/...@latest`",
		"(from a checkout: `go install ./cmd/...`), or run it directly: `go run ./cmd/nsauth-server`.",
	}, "\n"))
}

// exitCodeError makes Run exit with code without printing anything: the
// program that failed has said why.
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
