// Command nsauth is the Neosync-compatible authentication service and its
// terminal client. See `nsauth --help`.
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
	code := cli.Run(ctx, cli.DefaultApp(), os.Args[1:])
	stop()
	os.Exit(code)
}
