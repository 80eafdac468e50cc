package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// Procedure paths, as counted by the counting proxy.
const (
	procLogin     = mgmtv1alpha1connect.AuthServiceLoginCliProcedure
	procRefresh   = mgmtv1alpha1connect.AuthServiceRefreshCliProcedure
	procCheck     = mgmtv1alpha1connect.AuthServiceCheckTokenProcedure
	procAuthorize = mgmtv1alpha1connect.AuthServiceGetAuthorizeUrlProcedure
	procStatus    = mgmtv1alpha1connect.AuthServiceGetAuthStatusProcedure
	procRevoke    = mgmtv1alpha1connect.AuthServiceRevokeCliProcedure
)

// syncBuffer is a goroutine-safe buffer that tests can wait on.
type syncBuffer struct{ servetest.Buffer }

// waitFor polls until re matches, and returns the first submatch (or the
// whole match).
func (b *syncBuffer) waitFor(t *testing.T, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m[len(m)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s in:\n%s", re, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// env is a test's environment: a server (through a counting proxy) and a
// configuration directory.
type env struct {
	t         *testing.T
	fake      *oidctest.Provider
	apiURL    string // the counting proxy in front of `nsauth serve`
	configDir string

	mu     sync.Mutex
	counts map[string]int
	delays map[string]time.Duration
}

// setDelay makes the proxy hold requests to path for d before forwarding.
func (e *env) setDelay(path string, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.delays == nil {
		e.delays = map[string]time.Duration{}
	}
	e.delays[path] = d
}

// newEnv starts the fake provider, `nsauth serve` brokering it (in
// process, through cli.Run), and a proxy in front that counts what reaches
// the server.
func newEnv(t *testing.T, opts ...oidctest.Option) *env {
	t.Helper()
	fake := oidctest.New(t, opts...)
	secrets, _ := json.Marshal(map[string]string{fake.ClientID: fake.ClientSecret})
	serverURL := startServe(t, map[string]string{
		"AUTH_BASEURL":         fake.Issuer,
		"AUTH_AUDIENCE":        fake.Audience,
		"AUTH_CLI_CLIENT_ID":   fake.ClientID,
		"AUTH_CLIENTID_SECRET": string(secrets),
	})
	e := &env{t: t, fake: fake, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
	e.apiURL = e.countingProxy(serverURL)
	return e
}

// startServe runs `nsauth serve` in process on a free loopback port, stopped
// when the test ends, and returns its URL.
func startServe(t *testing.T, environ map[string]string) string {
	t.Helper()
	u, _ := startServeLogs(t, environ)
	return u
}

// startServeLogs is startServe with extra serve arguments, also returning
// the server's log output (JSON lines).
func startServeLogs(t *testing.T, environ map[string]string, args ...string) (string, *servetest.Buffer) {
	t.Helper()
	s := servetest.Start(t, servetest.Options{Env: environ, Args: args})
	return s.URL, s.Logs
}

func (e *env) countingProxy(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		e.t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.counts[r.URL.Path]++
		delay := e.delays[r.URL.Path]
		e.mu.Unlock()
		time.Sleep(delay)
		proxy.ServeHTTP(w, r)
	}))
	e.t.Cleanup(srv.Close)
	return srv.URL
}

// calls returns how many requests reached the server on path.
func (e *env) calls(path string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[path]
}

// totalCalls returns how many requests reached the server at all.
func (e *env) totalCalls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.counts {
		n += c
	}
	return n
}

// result is one command's outcome.
type result struct {
	code        int
	out, errOut string
}

// run runs an nsauth command in process against the environment.
func (e *env) run(ctx context.Context, stdin io.Reader, args ...string) result {
	e.t.Helper()
	errOut := &syncBuffer{}
	return e.runWith(ctx, stdin, errOut, args...)
}

func (e *env) runWith(ctx context.Context, stdin io.Reader, errOut *syncBuffer, args ...string) result {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out syncBuffer
	app := &cli.App{In: stdin, Out: &out, ErrOut: errOut, Getenv: mapEnv(e.environ()), Now: time.Now}
	code := cli.Run(ctx, app, args, servercmd.Commands...)
	return result{code: code, out: out.String(), errOut: errOut.String()}
}

func (e *env) environ() map[string]string {
	return map[string]string{"NSAUTH_API_URL": e.apiURL, "NSAUTH_CONFIG_DIR": e.configDir}
}

// authorizeURLPattern finds the login URL login prints.
var authorizeURLPattern = regexp.MustCompile(`(?m)^    (https?://\S+)$`)

// startLogin runs `nsauth login` with extra args in the background, and
// returns the authorize URL it printed and a channel with its result.
func (e *env) startLogin(ctx context.Context, stdin io.Reader, args ...string) (string, <-chan result) {
	e.t.Helper()
	errOut := &syncBuffer{}
	done := make(chan result, 1)
	go func() {
		done <- e.runWith(ctx, stdin, errOut, append([]string{"login", "--no-browser"}, args...)...)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := authorizeURLPattern.FindStringSubmatch(errOut.String()); m != nil {
			return m[1], done
		}
		select {
		case r := <-done:
			e.t.Fatalf("login ended before printing a URL: exit %d, stderr:\n%s", r.code, r.errOut)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("login printed no URL:\n%s", errOut.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// browserResult is what the "browser" saw at the end of the redirects.
type browserResult struct {
	status int
	body   string
}

// browse follows authorizeURL as a browser does: the provider approves at
// once and redirects to the callback listener.
func browse(t *testing.T, authorizeURL string) browserResult {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(authorizeURL)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return browserResult{resp.StatusCode, string(body)}
}

// wait returns the command's result, failing the test if it takes long.
func wait(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("command did not finish")
		return result{}
	}
}

// login performs a complete login and fails the test if it does not work.
func (e *env) login(args ...string) result {
	e.t.Helper()
	u, done := e.startLogin(context.Background(), nil, args...)
	if b := browse(e.t, u); b.status != http.StatusOK {
		e.t.Fatalf("browser ended on status %d:\n%s", b.status, b.body)
	}
	r := wait(e.t, done)
	if r.code != 0 {
		e.t.Fatalf("login: exit %d\n%s", r.code, r.errOut)
	}
	return r
}

func (e *env) store() *tokenstore.Store {
	e.t.Helper()
	s, err := tokenstore.New(tokenstore.Config{Dir: e.configDir})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) normalizedURL() string {
	u, err := tokenstore.NormalizeAPIURL(e.apiURL)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) entry() *tokenstore.Entry {
	e.t.Helper()
	ent, err := e.store().Load(e.normalizedURL())
	if err != nil {
		e.t.Fatalf("reading the stored entry: %v", err)
	}
	return ent
}

// checkToken asks the server whether it accepts an access token.
func (e *env) checkToken(token string) (*mgmtv1alpha1.CheckTokenResponse, error) {
	c := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, e.apiURL)
	req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
	req.Header().Set("Authorization", "Bearer "+token)
	resp, err := c.CheckToken(context.Background(), req)
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// storeEntry returns an entry for e's API URL holding access, valid until
// expiry.
func storeEntry(e *env, access string, expiry time.Time) *tokenstore.Entry {
	return &tokenstore.Entry{APIURL: e.normalizedURL(), AccessToken: access, TokenType: "Bearer", Expiry: expiry}
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

func mustNotContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			t.Errorf("%s contains %q:\n%s", what, sub, s)
		}
	}
}
