package e2e_test

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

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/oidctest"
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

// served is a running `nsauth serve`.
type served struct {
	URL    string
	Logs   *lockedBuffer
	Stdout *lockedBuffer
	cancel context.CancelFunc
	done   chan int
}

// Stop cancels the server as SIGTERM would and returns its exit code.
func (s *served) Stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(40 * time.Second):
		t.Fatal("server did not stop")
		return -1
	}
}

// runServe runs `nsauth serve args...` with exactly env as its environment
// and returns its exit code and stderr once it exits; for configurations
// that must fail at start.
func runServe(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var stderr lockedBuffer
	app := &cli.App{In: strings.NewReader(""), Out: &lockedBuffer{}, ErrOut: &stderr, Getenv: mapEnv(env), Now: time.Now}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := cli.Run(ctx, app, append([]string{"serve"}, args...))
	return code, stderr.String()
}

// startServe starts `nsauth serve` on a free loopback port and waits until
// it listens. The environment is exactly env: the test process's own
// variables never leak in.
func startServe(t *testing.T, env map[string]string, args ...string) *served {
	t.Helper()
	s := &served{Logs: &lockedBuffer{}, Stdout: &lockedBuffer{}, done: make(chan int, 1)}
	app := &cli.App{In: strings.NewReader(""), Out: s.Stdout, ErrOut: s.Logs, Getenv: mapEnv(env), Now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	args = append([]string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug"}, args...)
	go func() { s.done <- cli.Run(ctx, app, args) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
		s.done <- 0
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if u := servingURL(s.Logs.String()); u != "" {
			s.URL = u
			return s
		}
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("serve exited with %d before listening:\n%s", code, s.Logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not start listening:\n%s", s.Logs.String())
	return nil
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

func mapEnv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// providerEnv configures serve to broker p, Neosync style.
func providerEnv(p *oidctest.Provider) map[string]string {
	return map[string]string{
		"AUTH_ENABLED":             "true",
		"AUTH_BASEURL":             p.Issuer,
		"AUTH_AUDIENCE":            p.Audience,
		"AUTH_CLI_CLIENT_ID":       p.ClientID,
		"AUTH_CLIENTID_SECRET":     `{"` + p.ClientID + `":"` + p.ClientSecret + `"}`,
		"AUTH_SIGNATURE_ALGORITHM": "RS256,ES256",
	}
}

// protocol is one way to talk to the server.
type protocol struct {
	name string
	opts []connect.ClientOption
}

var protocols = []protocol{
	{"connect-json", []connect.ClientOption{connect.WithProtoJSON()}},
	{"connect-proto", nil},
	{"grpc", []connect.ClientOption{connect.WithGRPC()}},
	{"grpc-web", []connect.ClientOption{connect.WithGRPCWeb()}},
}

// h2cClient speaks HTTP/2 without TLS, as gRPC needs; it also does
// HTTP/1.1-only protocols fine.
func h2cClient() *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func newClient(baseURL string, p protocol) mgmtv1alpha1connect.AuthServiceClient {
	return mgmtv1alpha1connect.NewAuthServiceClient(h2cClient(), baseURL, p.opts...)
}

// withBearer returns a request carrying an Authorization header.
func withBearer[T any](msg *T, token string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+token)
	return req
}

// assertClean fails when text contains any of the secrets.
func assertClean(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret (%.12s…)", where, s)
		}
	}
}
