package cli_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/servetest"
)

// TestServeCommand runs `nsauth serve` as main does: the command reads
// its flags and environment, the server answers, and a canceled context
// (SIGTERM) ends it with exit code 0.
func TestServeCommand(t *testing.T) {
	t.Parallel()
	var errOut servetest.Buffer
	a := &cli.App{In: strings.NewReader(""), Out: &servetest.Buffer{}, ErrOut: &errOut, Getenv: mapEnv(map[string]string{"AUTH_ENABLED": "false"}), Now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, a, []string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json"}, servercmd.Commands...)
	}()
	var url string
	deadline := time.Now().Add(30 * time.Second)
	for url == "" {
		if url = servetest.ServingURL(errOut.String()); url == "" {
			if time.Now().After(deadline) {
				t.Fatalf("serve did not start:\n%s", errOut.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, url)
	status, err := api.GetAuthStatus(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{}))
	if err != nil || status.Msg.GetIsEnabled() {
		t.Fatalf("GetAuthStatus = %v, %v; want disabled", status, err)
	}
	cancel()
	select {
	case code := <-done:
		if code != cli.ExitOK {
			t.Fatalf("serve exited with %d:\n%s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeCommandRefusesBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"argument", []string{"serve", "extra"}, nil, cli.ExitUsage, "takes no arguments"},
		{"unknown flag", []string{"serve", "--no-such-flag"}, nil, cli.ExitUsage, "unknown flag"},
		{"bad setting", []string{"serve"}, map[string]string{"PORT": "eighty"}, cli.ExitFailure, "PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var errOut servetest.Buffer
			a := &cli.App{In: strings.NewReader(""), Out: &servetest.Buffer{}, ErrOut: &errOut, Getenv: mapEnv(tt.env), Now: time.Now}
			if code := cli.Run(context.Background(), a, tt.args, servercmd.Commands...); code != tt.code || !strings.Contains(errOut.String(), tt.want) {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, errOut.String())
			}
		})
	}
}
