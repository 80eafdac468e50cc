// Package servetest runs an nsauth server in-process for tests, as
// `nsauth serve` does: its arguments and environment are read by package
// config, and the server is assembled and served by package app, on a free
// loopback port, with an environment the test chooses entirely: the test
// process's own variables never leak in.
package servetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/config"
)

// Buffer is an io.Writer safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Env returns a getenv function that sees exactly env.
func Env(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// Options configure Start.
type Options struct {
	// Env is the server's whole environment.
	Env map[string]string
	// Args are `nsauth serve` arguments, after the harness's own
	// (--listen 127.0.0.1:0 --log-format json --shutdown-timeout 10s), so
	// they may override them.
	Args []string
	// Now is the server's clock. Defaults to time.Now.
	Now func() time.Time
}

// Server is a running server.
type Server struct {
	// URL is where it listens, e.g. http://127.0.0.1:39201.
	URL string
	// Logs is its standard error: the JSON log and any banner.
	Logs *Buffer
	// Stdout is its standard output: the server writes nothing there but
	// the audit stream, with NSAUTH_AUDIT_LOG=stdout.
	Stdout *Buffer
	// App is the server itself.
	App *app.Server

	cancel context.CancelFunc
	done   chan int
}

// harnessArgs come before a test's own arguments. The drain bound exceeds
// the 5 s net/http's Shutdown waits for connections a client opened but
// never used.
var harnessArgs = []string{"--listen", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "10s"}

// Start starts a server and returns once it listens and, as `nsauth serve`
// guarantees, can answer every RPC; it is stopped (as by SIGTERM) when the
// test ends, and a failed shutdown then fails the test. A configuration
// that does not start fails the test at once.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{Logs: &Buffer{}, Stdout: &Buffer{}, done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	srv, err := New(ctx, opts.Env, append(slices.Clone(harnessArgs), opts.Args...), app.Deps{Stderr: s.Logs, Stdout: s.Stdout, Now: opts.Now, Getenv: Env(opts.Env)})
	if err != nil {
		cancel()
		t.Fatalf("nsauth serve did not start: %v\n%s", err, s.Logs.String())
	}
	s.App, s.URL = srv, srv.URL()
	go func() {
		code := 0
		if err := srv.Serve(ctx); err != nil {
			fmt.Fprintf(s.Logs, "nsauth: %v\n", err)
			code = 1
		}
		s.done <- code
	}()
	t.Cleanup(func() {
		if code := s.Stop(t); code != 0 {
			t.Errorf("nsauth serve exited with %d:\n%s", code, s.Logs.String())
		}
	})
	return s
}

// New reads the `nsauth serve` arguments args and the environment env as
// the command does, and assembles the server without serving it.
func New(ctx context.Context, env map[string]string, args []string, deps app.Deps) (*app.Server, error) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("serve takes no arguments, got %q", fs.Arg(0))
	}
	cfg, err := config.Load(fs, Env(env))
	if err != nil {
		return nil, err
	}
	if deps.Getenv == nil {
		deps.Getenv = Env(env)
	}
	return app.New(ctx, cfg, deps)
}

// Stop cancels the server as SIGTERM would and returns its exit code. It
// may be called more than once.
func (s *Server) Stop(t testing.TB) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("nsauth serve did not stop")
		return -1
	}
}

// Run starts a server with args and exactly env as its environment, for
// configurations that must fail at start: it returns the exit code
// `nsauth serve` would have (0 when the server started, and was then
// stopped) and its standard error.
func Run(t testing.TB, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var stderr Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := New(ctx, env, args, app.Deps{Stderr: &stderr, Now: time.Now, Getenv: Env(env)})
	if err != nil {
		fmt.Fprintf(&stderr, "nsauth: %v\n", err)
		return 1, stderr.String()
	}
	if err := srv.Close(); err != nil {
		t.Errorf("closing the server: %v", err)
	}
	return 0, stderr.String()
}

// ServingURL finds the URL in the "nsauth serving" line of JSON logs, or
// returns "".
func ServingURL(logs string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
			URL string `json:"url"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "nsauth serving" {
			return line.URL
		}
	}
	return ""
}

// H2CClient speaks HTTP/2 without TLS, as gRPC needs; every other protocol
// works over it too.
func H2CClient() *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// FreeAddr returns host:port with a port free on host, for a server
// started later that must come back on the address its clients know.
// Every 127.0.0.0/8 address is loopback on Linux.
func FreeAddr(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("listening on %s (every 127.0.0.0/8 address is loopback on Linux): %v", host, err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
