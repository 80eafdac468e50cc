package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// auditLine is what the session test compares of each audit event.
type auditLine struct {
	Type     audit.Type
	Outcome  audit.Outcome
	Username string
	ClientID string
	Reason   string
	Count    int64 // of an aggregated row of refusals
}

func (l auditLine) String() string {
	return fmt.Sprintf("%s %s user=%q client=%q reason=%q count=%d", l.Type, l.Outcome, l.Username, l.ClientID, l.Reason, l.Count)
}

// auditSession is one backend's servers for the session test: the
// browser and most calls go to on; other (another replica on PostgreSQL,
// the same server on SQLite) serves the rest, so that the events of both
// replicas make one sequence.
type auditSession struct {
	on, other *biServer
	env       map[string]string
	logPaths  []string // the JSON-lines streams of the servers
}

// runAuditSession runs a whole session and returns the secrets that
// crossed the wire: a user added with `nsauth users add`, a browser login,
// LoginCli, CheckToken, RefreshCli, a failed login (wrong password), a
// refresh-token reuse (its successor used first, so the reuse is past the
// retry grace), a second login, its logout (RevokeCli), and `nsauth users
// disable`.
func runAuditSession(t *testing.T, s *auditSession) []string {
	t.Helper()
	const user, pw, wrong = "alice", "alice-correct-horse", "alice-wrong-guess"
	users := func(stdin string, args ...string) {
		t.Helper()
		if r := runUsers(s.env, strings.NewReader(stdin), args...); r.code != 0 {
			t.Fatalf("nsauth users %s: exit %d\n%s", strings.Join(args, " "), r.code, r.errOut)
		}
	}
	users(pw+"\n", "add", user)

	browser := issuertest.NewBrowser(t)
	v1 := oauth2.GenerateVerifier()
	loc := browser.Login(t, s.on.authorize(t, v1), user, pw)
	code1 := loc.Query().Get("code")
	tok, err := s.other.loginCli(t, code1, v1)
	if err != nil {
		t.Fatalf("LoginCli: %v", err)
	}
	if _, err := s.other.checkToken(tok.GetAccessToken()); err != nil {
		t.Fatalf("CheckToken: %v", err)
	}
	next, err := s.on.refreshCli(tok.GetRefreshToken())
	if err != nil {
		t.Fatalf("RefreshCli: %v", err)
	}

	v2 := oauth2.GenerateVerifier()
	page := browser.Open(t, s.on.authorize(t, v2))
	if p := browser.Submit(t, page, user, wrong); p.Response.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong password answered HTTP %d", p.Response.StatusCode)
	}

	last, err := s.other.refreshCli(next.GetRefreshToken())
	if err != nil {
		t.Fatalf("RefreshCli of the successor: %v", err)
	}
	_, err = s.on.refreshCli(tok.GetRefreshToken())
	wantCode(t, err, connect.CodeUnauthenticated)

	loc, err = issuertest.RedirectOf(browser.Submit(t, page, user, pw))
	if err != nil {
		t.Fatal(err)
	}
	code2 := loc.Query().Get("code")
	second, err := s.on.loginCli(t, code2, v2)
	if err != nil {
		t.Fatalf("second LoginCli: %v", err)
	}
	if _, err := s.other.api.RevokeCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.RevokeCliRequest{RefreshToken: second.GetRefreshToken()})); err != nil {
		t.Fatalf("RevokeCli: %v", err)
	}
	users("", "disable", user)

	return []string{pw, wrong, code1, code2, v1, v2, page.Form.Get("csrf"), page.Form.Get("authRequestID"),
		tok.GetAccessToken(), tok.GetRefreshToken(), tok.GetIdToken(), next.GetAccessToken(), next.GetRefreshToken(), next.GetIdToken(),
		last.GetAccessToken(), last.GetRefreshToken(), last.GetIdToken(), second.GetAccessToken(), second.GetRefreshToken(), second.GetIdToken()}
}

// wantAuditSession is the event sequence of runAuditSession, after the
// first start's signing key.
func wantAuditSession() []auditLine {
	const user, client = "alice", issuer.DefaultClientID
	return []auditLine{
		{audit.SigningKeyRotated, audit.Success, "", "", "first_key", 0},
		{audit.UserChanged, audit.Success, user, "", "added", 0},
		{audit.LoginSucceeded, audit.Success, user, client, "", 0},
		{audit.SessionStarted, audit.Success, user, client, "", 0},
		{audit.CodeIssued, audit.Success, user, client, "", 0},
		{audit.CodeExchanged, audit.Success, user, client, "", 0},
		{audit.RefreshRotated, audit.Success, user, client, "", 0},
		{audit.LoginFailed, audit.Failure, user, client, "bad_password", 1},
		{audit.RefreshRotated, audit.Success, user, client, "", 0},
		{audit.RefreshReuseDetected, audit.Failure, "", client, "family_revoked", 0},
		{audit.LoginSucceeded, audit.Success, user, client, "", 0},
		// The second password login, in the same browser, replaces the
		// first login's browser session, which ends.
		{audit.SessionEnded, audit.Success, user, "", "replaced", 0},
		{audit.SessionStarted, audit.Success, user, client, "", 0},
		{audit.CodeIssued, audit.Success, user, client, "", 0},
		{audit.CodeExchanged, audit.Success, user, client, "", 0},
		{audit.TokenRevoked, audit.Success, "", client, "", 0},
		{audit.UserChanged, audit.Success, user, "", "disabled", 0},
	}
}

// checkAuditSession runs the session on s and compares the stored events,
// in order, with the expected sequence; then it looks for every secret of
// the session in the stored events and in the JSON-lines streams.
func checkAuditSession(t *testing.T, s *auditSession, loc config.Store) {
	secrets := runAuditSession(t, s)
	// Stopped, the servers have streamed the rows of refusals they held
	// until their minute ended.
	for _, srv := range []*biServer{s.on, s.other} {
		if code := srv.srv.Stop(t); code != 0 {
			t.Fatalf("nsauth serve exited with %d", code)
		}
	}
	st, err := app.OpenStore(context.Background(), loc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	events, err := st.AuditEvents(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []auditLine
	replicas := map[string]bool{}
	for _, e := range events {
		got = append(got, auditLine{e.Type, e.Outcome, e.Username, e.ClientID, e.Reason, e.Count})
		if e.Type == audit.UserChanged && e.Actor != audit.OSUser() {
			t.Errorf("%s: actor %q, want the OS user %q", e.Type, e.Actor, audit.OSUser())
		}
		// Every request's event names its client, the RPCs' too: the
		// broker's in-process requests carry the RPC caller's address. An
		// aggregated row of refusals keeps no user agent: its refusals'
		// may differ.
		if e.Type != audit.SigningKeyRotated && e.Type != audit.UserChanged && (e.ClientAddr == "" || e.UserAgent == "" && e.Count == 0) {
			t.Errorf("%s: no client address or user agent: %+v", e.Type, e)
		}
		if e.Replica != "" {
			replicas[e.Replica] = true
		}
	}
	want := wantAuditSession()
	if len(got) != len(want) {
		t.Errorf("got %d events, want %d", len(got), len(want))
	}
	for i := range max(len(got), len(want)) {
		var g, w auditLine
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("event %d: got  %v\n          want %v", i, g, w)
		}
	}
	if len(replicas) == 0 {
		t.Error("no event names its replica")
	}
	// The revocation names the refresh token the second exchange issued,
	// and the grant, by the same refs.
	var exchanged, revoked audit.Event
	for _, e := range events {
		switch e.Type {
		case audit.CodeExchanged:
			exchanged = e
		case audit.TokenRevoked:
			revoked = e
		}
	}
	for _, name := range []string{audit.RefRefresh, audit.RefGrant} {
		if r := revoked.Refs[name]; r == "" || r != exchanged.Refs[name] {
			t.Errorf("the revocation's %s is %q, the exchange's %q", name, r, exchanged.Refs[name])
		}
	}

	// Secret hygiene: the audit records, stored and streamed.
	var seen []string
	for _, e := range events {
		b, _ := json.Marshal(e)
		seen = append(seen, string(b))
	}
	streamed := 0
	for _, p := range s.logPaths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("reading the audit stream: %v", err)
		}
		streamed += strings.Count(string(b), "\n")
		seen = append(seen, string(b))
	}
	if streamed < len(events)-2 { // the CLI's two events are not streamed
		t.Errorf("the JSON-lines streams hold %d events, the store %d", streamed, len(events))
	}
	n := 0
	for _, secret := range secrets {
		if len(secret) < 8 {
			continue
		}
		n++
		for i, text := range seen {
			if strings.Contains(text, secret) {
				t.Errorf("audit record %d contains a secret (%.6s…)", i, secret)
			}
		}
	}
	if n < 15 {
		t.Fatalf("only %d secrets collected", n)
	}
}

// TestAuditSessionSQLite: a whole session on one SQLite server yields
// exactly the expected audit events, none holding a secret.
func TestAuditSessionSQLite(t *testing.T) {
	t.Parallel()
	var sqlite storetest.Backend
	for _, b := range storetest.Backends() {
		if b.Name == "sqlite" {
			sqlite = b
		}
	}
	env := storeEnv(t, sqlite)
	logPath := filepath.Join(t.TempDir(), "audit.jsonl")
	env["NSAUTH_AUDIT_LOG"] = logPath
	s := startBuiltinServe(t, env, nil)
	s.waitReady(t)
	checkAuditSession(t, &auditSession{on: s, other: s, env: env, logPaths: []string{logPath}}, config.Store{DataDir: env["NSAUTH_DATA_DIR"]})
}

// TestAuditSessionReplicas: the same session on two replicas sharing a
// PostgreSQL database, its requests alternating between them, yields the
// same single sequence.
func TestAuditSessionReplicas(t *testing.T) {
	t.Parallel()
	pgURL := storetest.PostgresURL(t)
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
	dir := t.TempDir()
	logA, logB := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	env := map[string]string{"NSAUTH_DATABASE_URL": pgURL, "NSAUTH_SECRET_KEY": seal.GenerateKey(), "NSAUTH_ADMIN_PASSWORD": biAdminPassword}
	envWith := func(log string) map[string]string {
		e := map[string]string{"NSAUTH_AUDIT_LOG": log}
		for k, v := range env {
			e[k] = v
		}
		return e
	}
	a := startBuiltinServe(t, envWith(logA), nil, "--issuer", proxy.URL)
	b := startBuiltinServe(t, envWith(logB), nil, "--issuer", proxy.URL)
	ua, _ := url.Parse(a.url)
	target.Store(ua)
	a.waitReady(t)
	b.waitReady(t)
	checkAuditSession(t, &auditSession{on: a, other: b, env: env, logPaths: []string{logA, logB}}, config.Store{DatabaseURL: pgURL})
}
