//go:build interop

package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/cli"
)

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func mapEnv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// served is a running `nsauth serve`.
type served struct {
	URL  string
	Logs *lockedBuffer
}

// startServe runs `nsauth serve` in process (cli.Run, as main does) on a
// free loopback port with exactly env as its environment, and stops it when
// the test ends.
func startServe(t *testing.T, env map[string]string) *served {
	t.Helper()
	s := &served{Logs: &lockedBuffer{}}
	app := &cli.App{In: strings.NewReader(""), Out: io.Discard, ErrOut: s.Logs, Getenv: mapEnv(env), Now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	// The drain bound exceeds the 5 s that net/http's Shutdown waits for
	// connections a client opened but never used.
	go func() {
		done <- cli.Run(ctx, app, []string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "10s"})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("nsauth serve exited with %d", code)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("nsauth serve did not stop")
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		if u := servingURL(s.Logs.String()); u != "" {
			s.URL = u
			return s
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("nsauth serve exited with %d before listening:\n%s", code, s.Logs.String())
		case <-deadline:
			t.Fatalf("nsauth serve did not start listening:\n%s", s.Logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func servingURL(logs string) string {
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

// h2cClient speaks only unencrypted HTTP/2, which every protocol works
// over and gRPC needs.
func h2cClient() *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func newClient(baseURL string, opts ...connect.ClientOption) mgmtv1alpha1connect.AuthServiceClient {
	return mgmtv1alpha1connect.NewAuthServiceClient(h2cClient(), baseURL, opts...)
}

func bearer[T any](msg *T, token string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+token)
	return req
}

// countingProxy forwards to target and counts requests, noting whether
// each carried HTTP Basic credentials for clientID.
type countingProxy struct {
	URL string

	mu           sync.Mutex
	requests     int
	withClientID int
}

func newCountingProxy(t *testing.T, target, clientID string) *countingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _, ok := r.BasicAuth()
		if id, err := url.QueryUnescape(id); err == nil && ok {
			p.mu.Lock()
			if id == clientID {
				p.withClientID++
			}
			p.mu.Unlock()
		}
		p.mu.Lock()
		p.requests++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL + u.Path
	return p
}

// Counts returns how many requests arrived, and how many of them
// authenticated as the client.
func (p *countingProxy) Counts() (requests, withClientID int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests, p.withClientID
}

// assertClean fails when text contains any of the secrets. It names a
// secret by its position in the list, never by any part of its value.
func assertClean(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for i, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains secret #%d", where, i)
		}
	}
}
