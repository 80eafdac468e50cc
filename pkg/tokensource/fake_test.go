package tokensource_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
)

// fakeAuth is an AuthService whose RefreshCli rotates refresh tokens the
// way real providers do: each one works once.
type fakeAuth struct {
	mgmtv1alpha1connect.UnimplementedAuthServiceHandler

	refreshCalls atomic.Int32
	ttl          time.Duration
	delay        time.Duration
	noRotate     bool
	failWith     error // returned by RefreshCli when set

	mu     sync.Mutex
	n      int
	valid  map[string]bool // refresh tokens that still work
	access map[string]bool // access tokens issued
}

func newFakeAuth(tb testing.TB) (*fakeAuth, string) {
	tb.Helper()
	f, srv := startFakeAuth()
	tb.Cleanup(srv.Close)
	return f, srv.URL
}

// startFakeAuth starts a fakeAuth; the caller closes the server.
func startFakeAuth() (*fakeAuth, *httptest.Server) {
	f := &fakeAuth{ttl: 15 * time.Minute, valid: map[string]bool{}, access: map[string]bool{}}
	mux := http.NewServeMux()
	mux.Handle(mgmtv1alpha1connect.NewAuthServiceHandler(f))
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		if !f.accessValid(r.Header.Get("Authorization")) {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "hello, user-123")
	})
	return f, httptest.NewServer(mux)
}

// issue returns a new access and refresh token pair, as a login would.
func (f *fakeAuth) issue() (access, refresh string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	access, refresh = fmt.Sprintf("at-%d", f.n), fmt.Sprintf("rt-%d", f.n)
	f.valid[refresh] = true
	f.access[access] = true
	return access, refresh
}

func (f *fakeAuth) accessValid(header string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok, ok := cutPrefix(header, "Bearer ")
	return ok && f.access[tok]
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) < len(p) || s[:len(p)] != p {
		return "", false
	}
	return s[len(p):], true
}

func (f *fakeAuth) RefreshCli(_ context.Context, req *connect.Request[mgmtv1alpha1.RefreshCliRequest]) (*connect.Response[mgmtv1alpha1.RefreshCliResponse], error) {
	f.refreshCalls.Add(1)
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if f.failWith != nil {
		return nil, f.failWith
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rt := req.Msg.GetRefreshToken()
	if !f.valid[rt] {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("the refresh token was rejected; log in again"))
	}
	f.n++
	at := &mgmtv1alpha1.AccessToken{
		AccessToken: fmt.Sprintf("at-%d", f.n),
		ExpiresIn:   int64(f.ttl / time.Second),
		TokenType:   "Bearer",
		Scope:       "openid offline_access",
	}
	f.access[at.AccessToken] = true
	if !f.noRotate {
		delete(f.valid, rt)
		next := fmt.Sprintf("rt-%d", f.n)
		f.valid[next] = true
		at.RefreshToken = &next
	}
	return connect.NewResponse(&mgmtv1alpha1.RefreshCliResponse{AccessToken: at}), nil
}
