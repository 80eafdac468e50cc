// Command nsauth is the terminal client of the Neosync-compatible
// authentication service: login, token, whoami, status, logout, accounts,
// switch. It links none of the server, so that `$(nsauth token)` starts in
// a few milliseconds; its serve, users and bench commands run nsauth-server,
// installed beside it. See `nsauth --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/nsauth/nsauth/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.DefaultApp(), os.Args[1:], cli.ServerStandIns...)
	stop()
	os.Exit(code)
}
