package fulldisk_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", to look at the file afterwards

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
)

const (
	adminPassword = "fulldisk-admin-password"
	userPassword  = "fulldisk-user-password"
	redirectURI   = "http://127.0.0.1:4242/api/auth/callback"
	// issuerURL is never connected to: the server reaches its provider in
	// process, and the test's browser is pointed at the server.
	issuerURL = "http://127.0.0.1:1"
	// diskSize is the tmpfs's size: room for the database and its
	// write-ahead log, small enough to fill in a moment.
	diskSize = "8m"
	// What the server says and logs: the admin API's message and the
	// store's log lines (internal/adminservice, internal/app).
	diskFullMessage = "the disk holding its data is full"
	diskFullLog     = "the disk of the data directory is full"
	diskSpaceLog    = "the disk of the data directory has space again"
)

// TestFullDisk is issue 26's full disk: a server whose SQLite data
// directory is on a small tmpfs keeps serving reads when a filler file
// takes the last byte of it, refuses writes with Unavailable and a message
// that says why, logs one line naming the data directory, and writes again
// as soon as the filler is deleted, without a restart. The database is
// then intact (PRAGMA integrity_check) and holds nothing half-written: no
// user, group or membership from a refused call, no authorization code
// without its request, no refresh-token family without exactly one live
// token.
//
// Mounting needs root: outside CI the test skips without it; with CI=true
// it fails.
func TestFullDisk(t *testing.T) {
	t.Parallel()
	disk := mountTmpfs(t)
	dataDir := filepath.Join(disk, "data")
	filler := filepath.Join(disk, "filler")
	clock := &clock{}
	s := servetest.Start(t, servetest.Options{
		Env:  map[string]string{"NSAUTH_DATA_DIR": dataDir, "NSAUTH_ADMIN_PASSWORD": adminPassword},
		Args: []string{"--issuer", issuerURL, "--rate-limit", "0"},
		Now:  clock.now,
	})
	ctx := context.Background()
	api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, s.URL)
	admin := adminv1connect.NewAdminServiceClient(http.DefaultClient, s.URL)
	tok := login(t, s.URL)
	call := newCaller(ctx, api, admin, tok.GetAccessToken())
	if err := call.createGroup("ops"); err != nil {
		t.Fatalf("CreateGroup ops: %v", err)
	}
	if err := call.createUser("alice", "ops"); err != nil {
		t.Fatalf("CreateUser alice: %v", err)
	}

	// Writers are in flight while the filler takes the disk: two create
	// groups, two refresh sessions of their own, one checks a token. They
	// stop once each writer has been refused after the disk filled up.
	sessions := []*mgmtv1alpha1.AccessToken{login(t, s.URL), login(t, s.URL)}
	start := time.Now()
	inFlight := startWriters(call, sessions)
	inFlight.waitUntilEachOK(t, 30*time.Second)
	filled := fill(t, filler)
	inFlight.stopOnceRefused(t, 30*time.Second)
	t.Logf("filler %d bytes; with writes in flight: %s (%v)", filled, inFlight.summary(), time.Since(start).Round(time.Millisecond))
	for _, err := range inFlight.unexpected {
		t.Errorf("in flight while the disk filled: %v", err)
	}
	refused := inFlight.firstRefusal
	if connect.CodeOf(refused) != connect.CodeUnavailable || !strings.Contains(refused.Error(), diskFullMessage) {
		t.Fatalf("the first refused CreateGroup: %v; want Unavailable saying %q", refused, diskFullMessage)
	}

	// Writes are refused, each with a code a client retries and a message
	// that says why; reads go on.
	full := []struct {
		name     string
		call     func() error
		want     connect.Code
		wantText string
	}{
		{"CreateUser refused", func() error { return call.createUser("carol", "ops") }, connect.CodeUnavailable, diskFullMessage},
		{"CreateGroup refused", func() error { return call.createGroup("refused") }, connect.CodeUnavailable, diskFullMessage},
		{"RefreshCli refused", func() error { _, err := call.refresh(tok.GetRefreshToken()); return err }, connect.CodeUnavailable, "try again later"},
		{"CheckToken answers", func() error { return call.checkToken(tok.GetAccessToken()) }, 0, ""},
		{"GetAuthStatus answers", call.authStatus, 0, ""},
		{"ListUsers answers", func() error { return call.listUsers("admin", "alice") }, 0, ""},
	}
	for _, tc := range full {
		t.Run("full/"+tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.want == 0 {
				if err != nil {
					t.Fatalf("with the disk full: %v; want an answer", err)
				}
				return
			}
			if connect.CodeOf(err) != tc.want || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("with the disk full: %v; want %v saying %q", err, tc.want, tc.wantText)
			}
		})
	}
	if lines := logLines(s.Logs.String(), diskFullLog, dataDir); len(lines) != 1 {
		t.Errorf("%d lines %q naming data_dir %s after 4 refused writes; want exactly one\n%s", len(lines), diskFullLog, dataDir, s.Logs.String())
	} else {
		t.Logf("the server logged: %s", lines[0])
	}

	// Deleting the filler is all it takes: no restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	var refreshed *mgmtv1alpha1.AccessToken
	freed := []struct {
		name string
		call func() error
	}{
		{"CreateUser", func() error { return call.createUser("dave", "ops") }},
		{"CreateGroup", func() error { return call.createGroup("after") }},
		// The refresh token refused while the disk was full is still the
		// session's: nothing of the refused rotation stayed.
		{"RefreshCli with the token refused before", func() error {
			var err error
			refreshed, err = call.refresh(tok.GetRefreshToken())
			return err
		}},
		{"CheckToken of the refreshed token", func() error { return call.checkToken(refreshed.GetAccessToken()) }},
		{"login", func() error { login(t, s.URL); return nil }},
		// Each session in flight refreshes with the last token it was
		// given: a refused refresh took nothing from it.
		{"RefreshCli of the sessions in flight", func() error {
			for i, rt := range inFlight.refreshTokens {
				if _, err := call.refresh(rt); err != nil {
					return fmt.Errorf("session %d: %w", i, err)
				}
			}
			return nil
		}},
	}
	for _, tc := range freed {
		t.Run("freed/"+tc.name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatalf("once the filler is deleted: %v", err)
			}
		})
	}
	// Writes succeed, but the all-clear waits until they have gone
	// store.DiskFullSettle without a refusal: while the disk was full,
	// some succeeded too.
	if lines := logLines(s.Logs.String(), diskSpaceLog, dataDir); len(lines) != 0 {
		t.Errorf("%q logged right after the disk had been full: %s", diskSpaceLog, lines[0])
	}
	clock.advance(store.DiskFullSettle)
	if err := call.createGroup("settled"); err != nil {
		t.Fatalf("CreateGroup %v after the filler was deleted: %v", store.DiskFullSettle, err)
	}
	if lines := logLines(s.Logs.String(), diskSpaceLog, dataDir); len(lines) != 1 {
		t.Errorf("%d lines %q naming data_dir %s once writes succeeded %v after the last refusal; want one", len(lines), diskSpaceLog, dataDir, store.DiskFullSettle)
	} else {
		t.Logf("then: %s", lines[0])
	}
	if lines := logLines(s.Logs.String(), diskFullLog, dataDir); len(lines) != 1 {
		t.Errorf("%d lines %q in all; want one", len(lines), diskFullLog)
	}

	if code := s.Stop(t); code != 0 {
		t.Fatalf("nsauth serve exited with %d", code)
	}
	checkDatabase(t, filepath.Join(dataDir, store.SQLiteFileName), append(inFlight.created, "after", "ops", "settled"))
}

// mountTmpfs mounts a tmpfs of diskSize on a new directory and unmounts it
// when the test ends (after the server has stopped: cleanups run last
// registered first).
func mountTmpfs(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		need(t, "mounts a tmpfs: Linux only")
	}
	if os.Geteuid() != 0 {
		need(t, "mounts a tmpfs, which needs root")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+diskSize+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		need(t, fmt.Sprintf("mount -t tmpfs failed: %v: %s", err, strings.TrimSpace(string(out))))
	}
	t.Cleanup(func() {
		var out []byte
		var err error
		for range 50 {
			if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("umount %s: %v: %s (unmounting lazily)", dir, err, out)
		_ = exec.Command("umount", "-l", dir).Run()
	})
	return dir
}

// need skips the test for want of why outside CI, and fails it in CI,
// where the machine must provide it.
func need(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("this test %s; CI runs it as root (CI=true)", why)
	}
	t.Skipf("this test %s; run it as root (CI does)", why)
}

// fill writes a file at path until the disk has no byte left, and returns
// its size.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var size int64
	// Large writes first, then a byte at a time for the last block's rest.
	for _, chunk := range []int{1 << 20, 4096, 1} {
		buf := make([]byte, chunk)
		for {
			n, err := f.Write(buf)
			size += int64(n)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatalf("filling the disk: %v", err)
			}
		}
	}
	return size
}

// caller makes the test's calls, as the administrator where the admin API
// needs it.
type caller struct {
	ctx   context.Context
	api   mgmtv1alpha1connect.AuthServiceClient
	admin adminv1connect.AdminServiceClient
	token string
}

func newCaller(ctx context.Context, api mgmtv1alpha1connect.AuthServiceClient, admin adminv1connect.AdminServiceClient, token string) *caller {
	return &caller{ctx: ctx, api: api, admin: admin, token: token}
}

func bearer[T any](msg *T, token string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+token)
	return req
}

func (c *caller) createUser(name string, groups ...string) error {
	_, err := c.admin.CreateUser(c.ctx, bearer(&adminv1.CreateUserRequest{Username: name, Password: userPassword, Groups: groups}, c.token))
	return err
}

func (c *caller) createGroup(name string) error {
	_, err := c.admin.CreateGroup(c.ctx, bearer(&adminv1.CreateGroupRequest{Name: name}, c.token))
	return err
}

func (c *caller) listUsers(want ...string) error {
	resp, err := c.admin.ListUsers(c.ctx, bearer(&adminv1.ListUsersRequest{}, c.token))
	if err != nil {
		return err
	}
	var got []string
	for _, u := range resp.Msg.GetUsers() {
		got = append(got, u.GetUsername())
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("users %v; want %v", got, want)
	}
	return nil
}

func (c *caller) refresh(refreshToken string) (*mgmtv1alpha1.AccessToken, error) {
	resp, err := c.api.RefreshCli(c.ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: refreshToken}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetAccessToken(), nil
}

func (c *caller) checkToken(accessToken string) error {
	_, err := c.api.CheckToken(c.ctx, bearer(&mgmtv1alpha1.CheckTokenRequest{}, accessToken))
	return err
}

func (c *caller) authStatus() error {
	resp, err := c.api.GetAuthStatus(c.ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{}))
	if err == nil && !resp.Msg.GetIsEnabled() {
		err = errors.New("GetAuthStatus says authentication is not enabled")
	}
	return err
}

// login runs a whole CLI login as admin: an authorize URL from the
// AuthService, the login form posted by a browser sent to the server
// instead of the issuer's address, LoginCli.
func login(t *testing.T, base string) *mgmtv1alpha1.AccessToken {
	t.Helper()
	ctx := context.Background()
	api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, base)
	verifier := oauth2.GenerateVerifier()
	challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
	authz, err := api.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: "fulldisk", RedirectUri: redirectURI, Scope: "openid offline_access",
		CodeChallenge: &challenge, CodeChallengeMethod: &method,
	}))
	if err != nil {
		t.Fatalf("GetAuthorizeUrl: %v", err)
	}
	server, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	browser := issuertest.NewBrowser(t)
	browser.Rewrite = func(u *url.URL) { u.Host = server.Host }
	loc := browser.Login(t, authz.Msg.GetUrl(), "admin", adminPassword)
	resp, err := api.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{
		Code: loc.Query().Get("code"), RedirectUri: redirectURI, CodeVerifier: &verifier,
	}))
	if err != nil {
		t.Fatalf("LoginCli: %v", err)
	}
	return resp.Msg.GetAccessToken()
}

// logLines returns the JSON log lines whose message starts with msg and
// whose data_dir is dir.
func logLines(logs, msg, dir string) []string {
	var found []string
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Msg     string `json:"msg"`
			DataDir string `json:"data_dir"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line.Msg, msg) && line.DataDir == dir {
			found = append(found, sc.Text())
		}
	}
	return found
}

// checkDatabase opens the stopped server's database file and checks it
// is intact and holds exactly what the calls that succeeded wrote.
func checkDatabase(t *testing.T, path string, groups []string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var integrity string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("PRAGMA integrity_check: %q, %v; want ok", integrity, err)
	}
	checks := []struct {
		name  string
		query string
		want  string
	}{
		{"no row breaks a foreign key", `SELECT count(*) FROM pragma_foreign_key_check`, "0"},
		{"the users the calls that succeeded created, each with a password hash",
			`SELECT group_concat(username || ':' || (length(password_hash) > 0), ' ') FROM (SELECT * FROM nsauth_users ORDER BY username)`,
			"admin:1 alice:1 dave:1"},
		{"the members of ops: the users created in it",
			`SELECT group_concat(u.username, ' ') FROM (SELECT u.username FROM nsauth_group_members m JOIN nsauth_users u ON u.id = m.user_id WHERE m.group_name = 'ops' ORDER BY u.username) u`,
			"alice dave"},
		{"the groups the calls that succeeded created, and no other",
			`SELECT group_concat(name, ' ') FROM (SELECT name FROM nsauth_groups WHERE name <> 'admin' ORDER BY name)`,
			strings.Join(slices.Sorted(slices.Values(groups)), " ")},
		{"no unused authorization code without its request",
			`SELECT count(*) FROM nsauth_auth_codes c WHERE c.used_at IS NULL AND NOT EXISTS (SELECT 1 FROM nsauth_auth_requests r WHERE r.id = c.auth_request_id)`, "0"},
		{"every refresh-token family that is not revoked has one live token",
			`SELECT count(*) FROM (SELECT family_id FROM nsauth_refresh_tokens GROUP BY family_id HAVING max(revoked_at) IS NULL AND sum(used_at IS NULL) <> 1)`, "0"},
	}
	for _, tc := range checks {
		t.Run("database/"+tc.name, func(t *testing.T) {
			var got sql.NullString
			if err := db.QueryRow(tc.query).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got.String != tc.want {
				t.Errorf("%s: %q; want %q", tc.query, got.String, tc.want)
			}
		})
	}
}

// writers are the calls in flight while the disk fills: two loops of
// CreateGroup, a RefreshCli loop per session, and a CheckToken loop.
type writers struct {
	wg   sync.WaitGroup
	stop chan struct{}

	mu sync.Mutex
	// filled is set once the filler has taken the disk: refusals counted
	// from then on.
	filled bool
	// refusedSince counts each writer's refusals since filled, okBefore its
	// successes before.
	refusedSince, okBefore []int
	firstRefusal           error
	// created are the groups whose CreateGroup answered OK.
	created []string
	// refreshTokens are each session's latest refresh token.
	refreshTokens []string
	oks, refusals int
	checks        int
	unexpected    []error
}

const groupWriters = 2

func startWriters(c *caller, sessions []*mgmtv1alpha1.AccessToken) *writers {
	n := groupWriters + len(sessions)
	w := &writers{stop: make(chan struct{}), refusedSince: make([]int, n), okBefore: make([]int, n)}
	for g := range groupWriters {
		w.loop(func(i int) {
			name := fmt.Sprintf("w%d-%d", g, i)
			err := c.createGroup(name)
			w.record(g, err, func() { w.created = append(w.created, name) })
		})
	}
	// Every session's token is in place before any writer starts: a
	// writer reads the slice under the lock, and growing it here, after
	// one had started, raced with that read.
	for _, tok := range sessions {
		w.refreshTokens = append(w.refreshTokens, tok.GetRefreshToken())
	}
	for i := range sessions {
		slot := groupWriters + i
		w.loop(func(int) {
			w.mu.Lock()
			rt := w.refreshTokens[i]
			w.mu.Unlock()
			next, err := c.refresh(rt)
			w.record(slot, err, func() { w.refreshTokens[i] = next.GetRefreshToken() })
		})
	}
	w.loop(func(int) {
		err := c.checkToken(sessions[0].GetAccessToken())
		w.mu.Lock()
		defer w.mu.Unlock()
		w.checks++
		if err != nil {
			w.unexpected = append(w.unexpected, fmt.Errorf("CheckToken: %w", err))
		}
	})
	return w
}

// loop calls f with 0, 1, … until stopped.
func (w *writers) loop(f func(i int)) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			f(i)
		}
	}()
}

// record counts the answer of writer slot: ok runs (under the lock) on
// success; Unavailable is a refusal; anything else is unexpected.
func (w *writers) record(slot int, err error, ok func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.oks++
		if !w.filled {
			w.okBefore[slot]++
		}
		ok()
	case connect.CodeOf(err) == connect.CodeUnavailable:
		w.refusals++
		if w.filled {
			w.refusedSince[slot]++
		}
		if w.firstRefusal == nil && slot < groupWriters {
			w.firstRefusal = err
		}
	default:
		w.unexpected = append(w.unexpected, err)
	}
}

// waitUntilEachOK returns once every writer has had a write succeed, so
// that all are in flight when the disk fills.
func (w *writers) waitUntilEachOK(t *testing.T, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(5 * time.Millisecond) {
		w.mu.Lock()
		done := !slices.Contains(w.okBefore, 0)
		w.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, some writer had not succeeded once (successes per writer: %v)", limit, w.okBefore)
		}
	}
}

// stopOnceRefused stops the writers once each has been refused since the
// disk filled up, or after limit (then failing the test).
func (w *writers) stopOnceRefused(t *testing.T, limit time.Duration) {
	t.Helper()
	w.mu.Lock()
	w.filled = true
	w.mu.Unlock()
	deadline := time.Now().Add(limit)
	for {
		w.mu.Lock()
		done := !slices.Contains(w.refusedSince, 0)
		w.mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(w.stop)
	w.wg.Wait()
	if slices.Contains(w.refusedSince, 0) {
		t.Fatalf("%v after the disk filled, some writer was never refused (refusals per writer since: %v)", limit, w.refusedSince)
	}
}

func (w *writers) summary() string {
	return fmt.Sprintf("%d writes OK, %d refused (per writer since the disk filled: %v), %d CheckToken, %d groups created",
		w.oks, w.refusals, w.refusedSince, w.checks, len(w.created))
}

// clock is the server's clock: the real time, moved forward by the test.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }
