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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.DefaultApp(), os.Args[1:], servercmd.Commands...)
	stop()
	os.Exit(code)
}
