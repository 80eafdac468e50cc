package cli_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// revocationDeadline is how soon a revocation must reach CheckToken, in
// this process and in another replica (issue 11).
const revocationDeadline = time.Second

// revocationLogin is one user's CLI login, kept whole so that an event can
// replay its code.
type revocationLogin struct {
	user, password string
	code, verifier string
	tok            *mgmtv1alpha1.AccessToken
}

// revocationSetup is the servers of one backend: on revokes, check must
// refuse (the same server on SQLite; another replica on PostgreSQL), and
// env points `nsauth users` at their store.
type revocationSetup struct {
	on, check *biServer
	env       map[string]string
}

// revocationEvents are the six ways of revoking a token that issue 11
// lists; each revokes l's grant through s (or the CLI, in a process of its
// own in production and a store handle of its own here) and must make
// CheckToken refuse l's access token, or the one refreshed from it, within
// revocationDeadline. revoke returns the access token that must be
// refused.
var revocationEvents = []struct {
	name   string
	revoke func(t *testing.T, s *revocationSetup, l *revocationLogin) string
}{
	{"code replayed", func(t *testing.T, s *revocationSetup, l *revocationLogin) string {
		_, err := s.on.loginCli(t, l.code, l.verifier)
		wantCode(t, err, connect.CodeUnauthenticated)
		return l.tok.GetAccessToken()
	}},
	{"refresh token reused", func(t *testing.T, s *revocationSetup, l *revocationLogin) string {
		next, err := s.on.refreshCli(l.tok.GetRefreshToken())
		if err != nil {
			t.Fatalf("RefreshCli: %v", err)
		}
		// Its successor used, the first token is past the retry grace: a
		// replay is reuse.
		last, err := s.on.refreshCli(next.GetRefreshToken())
		if err != nil {
			t.Fatalf("RefreshCli of the successor: %v", err)
		}
		if _, err := s.check.checkToken(last.GetAccessToken()); err != nil {
			t.Fatalf("CheckToken of the refreshed token before the reuse: %v", err)
		}
		_, err = s.on.refreshCli(l.tok.GetRefreshToken())
		wantCode(t, err, connect.CodeUnauthenticated)
		return last.GetAccessToken()
	}},
	{"RevokeCli", func(t *testing.T, s *revocationSetup, l *revocationLogin) string {
		if _, err := s.on.api.RevokeCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.RevokeCliRequest{RefreshToken: l.tok.GetRefreshToken()})); err != nil {
			t.Fatalf("RevokeCli: %v", err)
		}
		return l.tok.GetAccessToken()
	}},
	{"users disable", func(t *testing.T, s *revocationSetup, l *revocationLogin) string {
		s.users(t, nil, "disable", l.user)
		return l.tok.GetAccessToken()
	}},
	{"users passwd", func(t *testing.T, s *revocationSetup, l *revocationLogin) string {
		s.users(t, strings.NewReader("another-password\n"), "passwd", l.user)
		return l.tok.GetAccessToken()
	}},
	{"users delete", func(t *testing.T, s *revocationSetup, l *revocationLogin) string {
		s.users(t, nil, "delete", l.user)
		return l.tok.GetAccessToken()
	}},
	// Issue 25: the account page, from another browser of the same user.
	{"account page: sign out of the other sessions", func(t *testing.T, s *revocationSetup, l *revocationLogin) string {
		b, page := s.on.openAccount(t, l.user, l.password)
		res := b.Post(t, page, "/account/sessions/end", url.Values{"session": {"others"}})
		wantAccountDone(t, "signing out of the other sessions", res)
		return l.tok.GetAccessToken()
	}},
	{"account page: password changed", func(t *testing.T, s *revocationSetup, l *revocationLogin) string {
		b, page := s.on.openAccount(t, l.user, l.password)
		res := b.Post(t, page, "/account/password", url.Values{"current": {l.password}, "new": {"changed-" + l.password}, "again": {"changed-" + l.password}})
		wantAccountDone(t, "changing the password", res)
		// The other session's refresh token is refused too.
		_, err := s.on.refreshCli(l.tok.GetRefreshToken())
		wantCode(t, err, connect.CodeUnauthenticated)
		return l.tok.GetAccessToken()
	}},
}

// openAccount signs user in to the account page in a browser of its own,
// through the login /account sends it to, and returns the browser and the
// page.
func (s *biServer) openAccount(t *testing.T, user, password string) (*issuertest.Browser, *issuertest.Page) {
	t.Helper()
	b := issuertest.NewBrowser(t)
	get := func(u string) *issuertest.Page {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b.Do(t, req)
	}
	next := func(p *issuertest.Page) *issuertest.Page {
		t.Helper()
		loc, err := issuertest.RedirectOf(p)
		if err != nil {
			t.Fatalf("%s: HTTP %d, want a redirect: %v", p.URL.Redacted(), p.Response.StatusCode, err)
		}
		return get(p.URL.ResolveReference(loc).String())
	}
	login := next(get(s.issuer + "/account"))
	if login.Form.Get("authRequestID") == "" {
		t.Fatalf("/account did not lead to the login form: HTTP %d", login.Response.StatusCode)
	}
	page := next(next(b.Submit(t, login, user, password))) // the callback, then /account
	if page.Response.StatusCode != http.StatusOK || !strings.Contains(page.Body, `id="sessions"`) {
		t.Fatalf("the account page after signing in: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	return b, page
}

// wantAccountDone fails unless the account page accepted a post (it
// answers with a redirect back to itself, or the page).
func wantAccountDone(t *testing.T, what string, p *issuertest.Page) {
	t.Helper()
	if c := p.Response.StatusCode; c != http.StatusOK && c != http.StatusSeeOther && c != http.StatusFound {
		t.Fatalf("%s on the account page: HTTP %d\n%s", what, c, p.Body)
	}
}

func (s *revocationSetup) users(t *testing.T, stdin io.Reader, args ...string) {
	t.Helper()
	if r := runUsers(s.env, stdin, args...); r.code != 0 {
		t.Fatalf("nsauth users %s: exit %d\n%s", strings.Join(args, " "), r.code, r.errOut)
	}
}

// newUser adds a user with `nsauth users add` and logs it in on s.on.
func (s *revocationSetup) newUser(t *testing.T, name string) *revocationLogin {
	t.Helper()
	l := &revocationLogin{user: name, password: name + "-password", verifier: oauth2.GenerateVerifier()}
	s.users(t, strings.NewReader(l.password+"\n"), "add", name)
	loc := issuertest.NewBrowser(t).Login(t, s.on.authorize(t, l.verifier), name, l.password)
	l.code = loc.Query().Get("code")
	tok, err := s.on.loginCli(t, l.code, l.verifier)
	if err != nil {
		t.Fatalf("LoginCli as %s: %v", name, err)
	}
	l.tok = tok
	return l
}

// refusedWithin polls CheckToken on s until it refuses token, failing the
// test if that takes longer than d.
func refusedWithin(t *testing.T, s *biServer, token string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		_, err := s.checkToken(token)
		if connect.CodeOf(err) == connect.CodeUnauthenticated {
			return time.Since(start)
		}
		if err != nil {
			t.Fatalf("CheckToken: %v, want Unauthenticated or success", err)
		}
		if time.Since(start) > d {
			t.Fatalf("CheckToken still accepts the revoked token after %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runRevocationEvents runs every event, each for a user of its own, and
// checks at the end that a bystander's token was not refused.
func runRevocationEvents(t *testing.T, s *revocationSetup) {
	bystander := s.newUser(t, "bystander")
	t.Run("events", func(t *testing.T) {
		for i, ev := range revocationEvents {
			t.Run(ev.name, func(t *testing.T) {
				t.Parallel()
				l := s.newUser(t, fmt.Sprintf("user%d", i))
				if _, err := s.check.checkToken(l.tok.GetAccessToken()); err != nil {
					t.Fatalf("CheckToken before the event: %v", err)
				}
				token := ev.revoke(t, s, l)
				took := refusedWithin(t, s.check, token, revocationDeadline)
				t.Logf("refused %v after the event", took)
			})
		}
	})
	if _, err := s.check.checkToken(bystander.tok.GetAccessToken()); err != nil {
		t.Fatalf("a bystander's token was refused: %v", err)
	}
}

// TestRevocationReachesCheckToken: in the default jwt token mode, each
// event of issue 11 makes CheckToken refuse the revoked access token
// within a second, on one SQLite server.
func TestRevocationReachesCheckToken(t *testing.T) {
	t.Parallel()
	var sqlite storetest.Backend
	for _, b := range storetest.Backends() {
		if b.Name == "sqlite" {
			sqlite = b
		}
	}
	env := storeEnv(t, sqlite)
	s := startBuiltinServe(t, env, nil)
	s.waitReady(t)
	runRevocationEvents(t, &revocationSetup{on: s, check: s, env: env})
}

// TestRevocationReachesReplicas: two replicas on one PostgreSQL database,
// under one issuer; each event happens on A (or through the CLI), and B's
// CheckToken refuses the token within a second.
func TestRevocationReachesReplicas(t *testing.T) {
	t.Parallel()
	pgURL := storetest.PostgresURL(t)
	// The shared issuer URL; the browser's requests go to A.
	var target atomic.Pointer[url.URL]
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := target.Load()
		if u == nil {
			http.Error(w, "no replica yet", http.StatusBadGateway)
			return
		}
		httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	env := map[string]string{"NSAUTH_DATABASE_URL": pgURL, "NSAUTH_SECRET_KEY": seal.GenerateKey(), "NSAUTH_ADMIN_PASSWORD": biAdminPassword}
	a := startBuiltinServe(t, env, nil, "--issuer", proxy.URL)
	b := startBuiltinServe(t, env, nil, "--issuer", proxy.URL)
	ua, _ := url.Parse(a.url)
	target.Store(ua)
	a.waitReady(t)
	b.waitReady(t)
	runRevocationEvents(t, &revocationSetup{on: a, check: b, env: env})
}
