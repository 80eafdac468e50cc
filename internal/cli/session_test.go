package cli_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/oidctest"
)

// newResettableEnv is newEnv whose server can be replaced, behind the same
// API URL, by a fresh one (another provider: other keys, no sessions), as
// when the server's database is reset. The proxy in front counts requests
// as newEnv's does.
func newResettableEnv(t *testing.T) (e *env, reset func()) {
	t.Helper()
	var target atomic.Pointer[url.URL]
	start := func() *oidctest.Provider {
		fake := oidctest.New(t)
		secrets, _ := json.Marshal(map[string]string{fake.ClientID: fake.ClientSecret})
		u, err := url.Parse(startServe(t, map[string]string{
			"AUTH_BASEURL":         fake.Issuer,
			"AUTH_AUDIENCE":        fake.Audience,
			"AUTH_CLI_CLIENT_ID":   fake.ClientID,
			"AUTH_CLIENTID_SECRET": string(secrets),
		}))
		if err != nil {
			t.Fatal(err)
		}
		target.Store(u)
		return fake
	}
	e = &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
	e.fake = start()
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target.Load()) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.counts[r.URL.Path]++
		e.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.apiURL = srv.URL
	return e, func() { e.fake = start() }
}

// TestRefusedSession: once the server has refused a session, no command
// hands out its tokens or calls it a login, and each says so; a new login
// ends that.
func TestRefusedSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		// refuse makes the server refuse the stored session, and runs the
		// command that finds out; it returns that command's result.
		refuse      func(t *testing.T, e *env, reset func()) result
		wantRefused bool // false: the session recovers by a refresh
	}{
		{"database reset, found by whoami", func(t *testing.T, e *env, reset func()) result {
			reset()
			return e.run(ctx, nil, "whoami")
		}, true},
		{"database reset, found by a forced refresh", func(t *testing.T, e *env, reset func()) result {
			reset()
			// Fifteen-minute tokens: a one-hour margin forces a refresh.
			return e.run(ctx, nil, "token", "--margin", "1h")
		}, true},
		{"access token refused, no refresh token", func(t *testing.T, e *env, _ func()) result {
			if err := e.store().Save(storeEntry(e, "not-a-token-the-server-issued", time.Now().Add(time.Hour))); err != nil {
				t.Fatal(err)
			}
			return e.run(ctx, nil, "whoami")
		}, true},
		{"access token refused, refresh accepted", func(t *testing.T, e *env, _ func()) result {
			ent := e.entry()
			ent.AccessToken = "not-a-token-the-server-issued"
			if err := e.store().Save(ent); err != nil {
				t.Fatal(err)
			}
			return e.run(ctx, nil, "whoami")
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, reset := newResettableEnv(t)
			e.login()
			old := e.entry()
			refused := "the server refused your session; run nsauth login --api-url " + e.apiURL

			r := tc.refuse(t, e, reset)
			mustNotContain(t, "output", r.out+r.errOut, old.AccessToken, old.RefreshToken, "not-a-token-the-server-issued")
			if !tc.wantRefused {
				if r.code != 0 || !strings.Contains(r.out, "Test User") {
					t.Fatalf("whoami after a refused access token with a good refresh token: exit %d\n%s%s", r.code, r.out, r.errOut)
				}
				if now := e.entry(); now.AccessToken == "not-a-token-the-server-issued" || now.AccessToken == "" || now.Refused() {
					t.Errorf("the stored session was not renewed: %v", now)
				}
				r = e.run(ctx, nil, "status")
				mustContain(t, "status", columns(r.out), "Logged in: yes")
				return
			}
			if r.code != 1 || r.out != "" || !strings.Contains(r.errOut, refused) {
				t.Fatalf("the command that met the refusal: exit %d, stdout %q, stderr %q; want 1 and %q", r.code, r.out, r.errOut, refused)
			}
			ent := e.entry()
			if !ent.Refused() || ent.AccessToken != "" || ent.RefreshToken != "" || ent.IDToken != "" {
				t.Errorf("stored entry after the refusal: %v; want refused, without tokens", ent)
			}

			// Every later command says so; token asks the server nothing.
			calls := e.totalCalls()
			for _, args := range [][]string{{"token"}, {"token", "--margin", "0s"}, {"whoami"}} {
				r := e.run(ctx, nil, args...)
				if r.code != 1 || r.out != "" || !strings.Contains(r.errOut, refused) {
					t.Errorf("%v after the refusal: exit %d, stdout %q, stderr %q; want 1 and %q", args, r.code, r.out, r.errOut, refused)
				}
			}
			if n := e.totalCalls() - calls; n != 0 {
				t.Errorf("token and whoami asked the server %d times about a session it refused", n)
			}
			r = e.run(ctx, nil, "status")
			if r.code != 0 {
				t.Errorf("status: exit %d\n%s", r.code, r.errOut)
			}
			mustContain(t, "status", columns(r.out), "Logged in: no (the server refused the session at ", "; run nsauth login --api-url "+e.apiURL+")", "Refresh token: no")
			mustNotContain(t, "status", columns(r.out), "Logged in: yes", "Access token:")
			r = e.run(ctx, nil, "status", "-o", "json")
			var st struct {
				LoggedIn  bool       `json:"logged_in"`
				RefusedAt *time.Time `json:"refused_at"`
			}
			if err := json.Unmarshal([]byte(r.out), &st); err != nil || st.LoggedIn || st.RefusedAt == nil || time.Since(*st.RefusedAt) > time.Minute {
				t.Errorf("status JSON (%v):\n%s", err, r.out)
			}

			// A new login ends it.
			e.login()
			if r := e.run(ctx, nil, "token"); r.code != 0 || e.entry().Refused() {
				t.Errorf("token after a new login: exit %d\n%s", r.code, r.errOut)
			}
		})
	}
}

// TestCommandsWhenAuthIsDisabled: with AUTH_ENABLED=false on the server,
// no command sends anyone to log in.
func TestCommandsWhenAuthIsDisabled(t *testing.T) {
	t.Parallel()
	serverURL := startServe(t, map[string]string{"AUTH_ENABLED": "false"})
	e := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
	e.apiURL = e.countingProxy(serverURL)
	disabled := "authentication is disabled on " + e.apiURL + ": requests need no token, and there is nothing to log in to"
	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"token"}, 1, "", disabled},
		{[]string{"whoami"}, 1, "", disabled},
		{[]string{"login", "--no-browser"}, 0, "", "Authentication is disabled on " + e.apiURL + ": there is nothing to log in to."},
		{[]string{"status"}, 0, "Server: reachable, authentication disabled", ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := e.run(context.Background(), nil, tc.args...)
			if r.code != tc.code || !strings.Contains(columns(r.out), tc.out) || !strings.Contains(r.errOut, tc.err) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q and %q", r.code, r.out, r.errOut, tc.code, tc.out, tc.err)
			}
			mustNotContain(t, "stderr", r.errOut, "run nsauth login")
		})
	}
}
