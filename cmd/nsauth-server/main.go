// Command nsauth-server is nsauth complete: the Neosync-compatible
// authentication service (serve), its administration (users) and its load
// test (bench), with the terminal client's commands too. nsauth, the
// terminal client, runs it for those commands. See `nsauth-server --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
)

// adjustApp is nil in every shipped build. The soak test's build (tag
// nsauthsoak, soakclock.go) sets it to give the server a clock the test
// moves forward.
var adjustApp func(*cli.App)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	a := cli.DefaultApp()
	if adjustApp != nil {
		adjustApp(a)
	}
	code := cli.Run(ctx, a, os.Args[1:], servercmd.Commands...)
	stop()
	os.Exit(code)
}
