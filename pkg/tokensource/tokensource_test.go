package tokensource_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/pkg/tokensource"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// setup stores a login for apiURL in a new config dir and returns it.
func setup(t *testing.T, apiURL, access, refresh string, expiry time.Time) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cfg")
	store, err := tokenstore.New(tokenstore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	norm, err := tokenstore.NormalizeAPIURL(apiURL)
	if err != nil {
		t.Fatal(err)
	}
	e := &tokenstore.Entry{APIURL: norm, AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", Expiry: expiry}
	if err := store.Save(e); err != nil {
		t.Fatal(err)
	}
	return dir
}

func stored(t *testing.T, dir, apiURL string) *tokenstore.Entry {
	t.Helper()
	store, err := tokenstore.New(tokenstore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	e, err := store.Load(apiURL)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newSource(t *testing.T, cfg tokensource.Config) *tokensource.TokenSource {
	t.Helper()
	ts, err := tokensource.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func TestFreshTokenNeedsNoNetwork(t *testing.T) {
	t.Parallel()
	api := deadURL(t)
	dir := setup(t, api, "at-cached", "rt-cached", time.Now().Add(10*time.Minute))
	ts := newSource(t, tokensource.Config{APIURL: api, ConfigDir: dir})
	tok, err := ts.Token()
	if err != nil {
		t.Fatalf("Token with a fresh cached token and no server: %v", err)
	}
	if tok.AccessToken != "at-cached" || tok.TokenType != "Bearer" {
		t.Errorf("Token = %q %q, want the cached bearer token", tok.TokenType, tok.AccessToken)
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name         string
		expiry       time.Time
		margin       time.Duration
		noRotate     bool
		wantCalls    int32
		wantAccess   string
		wantRefresh  string
		wantErrLogin bool
	}{
		{name: "expired", expiry: now.Add(-time.Minute), wantCalls: 1, wantAccess: "at-2", wantRefresh: "rt-2"},
		{name: "inside default margin", expiry: now.Add(30 * time.Second), wantCalls: 1, wantAccess: "at-2", wantRefresh: "rt-2"},
		{name: "outside custom margin", expiry: now.Add(30 * time.Second), margin: 10 * time.Second, wantCalls: 0, wantAccess: "at-1", wantRefresh: "rt-1"},
		{name: "no rotation keeps the refresh token", expiry: now.Add(-time.Minute), noRotate: true, wantCalls: 1, wantAccess: "at-2", wantRefresh: "rt-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, api := newFakeAuth(t)
			f.noRotate = tc.noRotate
			at, rt := f.issue()
			dir := setup(t, api, at, rt, tc.expiry)
			ts := newSource(t, tokensource.Config{APIURL: api, ConfigDir: dir, Margin: tc.margin})
			tok, err := ts.TokenContext(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := f.refreshCalls.Load(); got != tc.wantCalls {
				t.Errorf("RefreshCli calls = %d, want %d", got, tc.wantCalls)
			}
			if tok.AccessToken != tc.wantAccess {
				t.Errorf("access token = %q, want %q", tok.AccessToken, tc.wantAccess)
			}
			e := stored(t, dir, ts.APIURL())
			if e.AccessToken != tc.wantAccess || e.RefreshToken != tc.wantRefresh {
				t.Errorf("stored = %s/%s, want %s/%s", e.AccessToken, e.RefreshToken, tc.wantAccess, tc.wantRefresh)
			}
			if tc.wantCalls > 0 && (e.Expiry.Before(now.Add(14*time.Minute)) || e.Expiry.After(time.Now().Add(15*time.Minute))) {
				t.Errorf("stored expiry %v is not about 15 minutes from now", e.Expiry)
			}
			// Cached now: no further call.
			if _, err := ts.Token(); err != nil || f.refreshCalls.Load() != tc.wantCalls {
				t.Errorf("second Token: err %v, calls %d", err, f.refreshCalls.Load())
			}
		})
	}
}

// TestConcurrentSourcesRefreshOnce stands for several processes: separate
// TokenSources share only the files, and the file lock.
func TestConcurrentSourcesRefreshOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ttl  time.Duration
	}{
		{"long-lived tokens", 15 * time.Minute},
		// Tokens that live less than the margin: a waiter must take the
		// token another refreshed rather than refresh again.
		{"tokens shorter than the margin", 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, api := newFakeAuth(t)
			f.ttl, f.delay = tc.ttl, 50*time.Millisecond
			at, rt := f.issue()
			dir := setup(t, api, at, rt, time.Now().Add(-time.Minute))
			const n = 12
			tokens := make([]string, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					ts, err := tokensource.New(tokensource.Config{APIURL: api, ConfigDir: dir})
					if err != nil {
						t.Error(err)
						return
					}
					tok, err := ts.Token()
					if err != nil {
						t.Error(err)
						return
					}
					tokens[i] = tok.AccessToken
				})
			}
			wg.Wait()
			if got := f.refreshCalls.Load(); got != 1 {
				t.Errorf("RefreshCli calls = %d, want 1", got)
			}
			for i, tok := range tokens {
				if tok != "at-2" {
					t.Errorf("source %d got %q, want at-2", i, tok)
				}
			}
			if e := stored(t, dir, strings.TrimRight(api, "/")); e.RefreshToken != "rt-2" {
				t.Errorf("stored refresh token = %q, want the rotated rt-2", e.RefreshToken)
			}
		})
	}
}

func TestOneSourceManyGoroutines(t *testing.T) {
	t.Parallel()
	f, api := newFakeAuth(t)
	f.delay = 50 * time.Millisecond
	at, rt := f.issue()
	dir := setup(t, api, at, rt, time.Now().Add(-time.Minute))
	ts := newSource(t, tokensource.Config{APIURL: api, ConfigDir: dir})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if tok, err := ts.Token(); err != nil || tok.AccessToken != "at-2" {
				t.Errorf("Token = %v, %v", tok, err)
			}
		})
	}
	wg.Wait()
	if got := f.refreshCalls.Load(); got != 1 {
		t.Errorf("RefreshCli calls = %d, want 1", got)
	}
}

func TestLoginRequired(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		prepare   func(t *testing.T, f *fakeAuth, api string) string
		wantCalls int32
	}{
		{"nothing stored", func(t *testing.T, _ *fakeAuth, _ string) string {
			return filepath.Join(t.TempDir(), "empty")
		}, 0},
		{"expired without refresh token", func(t *testing.T, f *fakeAuth, api string) string {
			at, _ := f.issue()
			return setup(t, api, at, "", time.Now().Add(-time.Minute))
		}, 0},
		{"refresh token rejected", func(t *testing.T, f *fakeAuth, api string) string {
			at, _ := f.issue()
			return setup(t, api, at, "rt-unknown", time.Now().Add(-time.Minute))
		}, 1},
		{"refresh token used by someone else (crash after refresh, before write)", func(t *testing.T, f *fakeAuth, api string) string {
			at, rt := f.issue()
			dir := setup(t, api, at, rt, time.Now().Add(-time.Minute))
			// Spend the stored refresh token behind the store's back, as a
			// process that crashed after RefreshCli and before Save did.
			if _, err := f.RefreshCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: rt})); err != nil {
				t.Fatal(err)
			}
			f.refreshCalls.Store(0)
			return dir
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, api := newFakeAuth(t)
			dir := tc.prepare(t, f, api)
			ts := newSource(t, tokensource.Config{APIURL: api, ConfigDir: dir})
			_, err := ts.Token()
			if !errors.Is(err, tokensource.ErrLoginRequired) {
				t.Fatalf("Token: err = %v, want ErrLoginRequired", err)
			}
			if got := f.refreshCalls.Load(); got != tc.wantCalls {
				t.Errorf("RefreshCli calls = %d, want %d", got, tc.wantCalls)
			}
			// Asking again (a new process) makes no further call: a rejected
			// refresh token has been forgotten.
			ts2 := newSource(t, tokensource.Config{APIURL: api, ConfigDir: dir})
			if _, err := ts2.Token(); !errors.Is(err, tokensource.ErrLoginRequired) {
				t.Fatalf("second Token: err = %v, want ErrLoginRequired", err)
			}
			if got := f.refreshCalls.Load(); got != tc.wantCalls {
				t.Errorf("RefreshCli calls after the second try = %d, want still %d", got, tc.wantCalls)
			}
		})
	}
}

func TestTransientFailureKeepsTheRefreshToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		failWith error
		want     string
	}{
		{"unavailable", connect.NewError(connect.CodeUnavailable, errors.New("provider down LEAKBAIT rt-1")), "unavailable (unavailable)"},
		{"internal", connect.NewError(connect.CodeInternal, errors.New("stack trace LEAKBAIT")), "the server failed (internal)"},
		{"rate limited", connect.NewError(connect.CodeResourceExhausted, errors.New("LEAKBAIT")), "rate limiting; try again later (resource_exhausted)"},
		{"not an nsauth server", connect.NewError(connect.CodeUnimplemented, errors.New("LEAKBAIT")), "does not offer RefreshCli"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, api := newFakeAuth(t)
			f.failWith = tc.failWith
			at, rt := f.issue()
			dir := setup(t, api, at, rt, time.Now().Add(-time.Minute))
			ts := newSource(t, tokensource.Config{APIURL: api, ConfigDir: dir})
			_, err := ts.Token()
			if err == nil || errors.Is(err, tokensource.ErrLoginRequired) {
				t.Fatalf("Token: err = %v, want a transient error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "LEAKBAIT") || strings.Contains(err.Error(), "rt-1") {
				t.Errorf("error echoes the server's message: %q", err)
			}
			if e := stored(t, dir, ts.APIURL()); e.RefreshToken != rt {
				t.Errorf("refresh token lost after a transient failure")
			}
			f.failWith = nil
			if tok, err := ts.Token(); err != nil || tok.AccessToken != "at-2" {
				t.Errorf("Token after recovery = %v, %v", tok, err)
			}
		})
	}
}

func TestUnreachableServer(t *testing.T) {
	t.Parallel()
	api := deadURL(t)
	dir := setup(t, api, "at", "rt", time.Now().Add(-time.Minute))
	ts := newSource(t, tokensource.Config{APIURL: api, ConfigDir: dir})
	_, err := ts.Token()
	if err == nil || !strings.Contains(err.Error(), "cannot reach the server") {
		t.Fatalf("Token = %v, want 'cannot reach the server'", err)
	}
	if e := stored(t, dir, ts.APIURL()); e.RefreshToken != "rt" {
		t.Error("refresh token lost when the server was unreachable")
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  tokensource.Config
		want string
	}{
		{"no URL", tokensource.Config{ConfigDir: "x"}, "not an absolute http(s) URL"},
		{"plain HTTP to a remote host", tokensource.Config{APIURL: "http://api.example.com", ConfigDir: "x"}, "plain HTTP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tokensource.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := tokensource.New(tokensource.Config{APIURL: "http://api.example.com", ConfigDir: "x", InsecureAllowHTTP: true}); err != nil {
		t.Errorf("New with InsecureAllowHTTP: %v", err)
	}
}
