//go:build interop

package interop_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/servetest"
)

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer = servetest.Buffer

func mapEnv(env map[string]string) func(string) (string, bool) { return servetest.Env(env) }

// startServe runs `nsauth serve` in process with exactly env as its
// environment, and stops it when the test ends.
func startServe(t *testing.T, env map[string]string) *servetest.Server {
	t.Helper()
	return servetest.Start(t, servetest.Options{Env: env})
}

// h2cClient speaks only unencrypted HTTP/2, which every protocol works
// over and gRPC needs.
func h2cClient() *http.Client { return servetest.H2CClient() }

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
