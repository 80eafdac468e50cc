// Package servetest runs `nsauth serve` in-process for tests, the way main
// does (through cli.Run), on a free loopback port, with an environment the
// test chooses entirely: the test process's own variables never leak in.
package servetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/cli"
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
	// Args are extra `serve` arguments, after the harness's own
	// (--listen 127.0.0.1:0 --log-format json --shutdown-timeout 10s), so
	// they may override them.
	Args []string
	// Now is the server's clock. Defaults to time.Now.
	Now func() time.Time
}

// Server is a running `nsauth serve`.
type Server struct {
	// URL is where it listens, e.g. http://127.0.0.1:39201.
	URL string
	// Logs is its standard error: the JSON log and any banner.
	Logs *Buffer
	// Stdout is its standard output.
	Stdout *Buffer

	cancel context.CancelFunc
	done   chan int
}

// Start starts `nsauth serve` and waits until it listens; it is stopped
// (as by SIGTERM) when the test ends, and a non-zero exit then fails the
// test.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{Logs: &Buffer{}, Stdout: &Buffer{}, done: make(chan int, 1)}
	app := &cli.App{In: strings.NewReader(""), Out: s.Stdout, ErrOut: s.Logs, Getenv: Env(opts.Env), Now: opts.Now}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	// The drain bound exceeds the 5 s net/http's Shutdown waits for
	// connections a client opened but never used.
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "10s"}, opts.Args...)
	go func() { s.done <- cli.Run(ctx, app, args) }()
	t.Cleanup(func() {
		if code := s.Stop(t); code != 0 {
			t.Errorf("nsauth serve exited with %d:\n%s", code, s.Logs.String())
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		if u := ServingURL(s.Logs.String()); u != "" {
			s.URL = u
			return s
		}
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("nsauth serve exited with %d before listening:\n%s", code, s.Logs.String())
		case <-deadline:
			t.Fatalf("nsauth serve did not start listening:\n%s", s.Logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
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

// Run runs `nsauth serve args...` with exactly env as its environment and
// returns its exit code and standard error once it exits: for
// configurations that must fail at start.
func Run(t testing.TB, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var stderr Buffer
	app := &cli.App{In: strings.NewReader(""), Out: &Buffer{}, ErrOut: &stderr, Getenv: Env(env), Now: time.Now}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := cli.Run(ctx, app, append([]string{"serve"}, args...))
	return code, stderr.String()
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
