//go:build linux

package upgrade_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

const (
	adminPassword = "upgrade-admin-password"
	redirectURI   = "http://127.0.0.1:4242/api/auth/callback"
	// issuerURL is the replicas' shared issuer (a load balancer's
	// address); nothing connects to it: the test's browser is sent to one
	// replica or the other.
	issuerURL = "http://127.0.0.1:1"
	// newestMigration is the migration the older build lacks.
	newestMigration = "internal/store/migrations/postgres/0018_audit_refs.sql"
)

// TestRollingUpgrade: the nsauth-server of the commit before
// newestMigration landed (built from git history) serves on a PostgreSQL
// schema, and a user logs in through it. Today's nsauth-server then starts
// on the same schema and migrates it to the newest version, while the
// older one runs on: it keeps answering CheckToken, RefreshCli and logins,
// and the tokens of either replica work on the other. Restarted, the older
// one refuses to start, saying that the database is newer than it supports
// and to upgrade nsauth, and touches nothing.
func TestRollingUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two nsauth-servers, one from git history")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	top, older := olderCommit(t)

	var oldBin, newBin string
	var oldErr, newErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); oldBin, oldErr = buildFromHistory(ctx, top, t.TempDir(), older) }()
	go func() { defer wg.Done(); newBin, newErr = buildToday(ctx, t.TempDir()) }()
	wg.Wait()
	if err := errors.Join(oldErr, newErr); err != nil {
		t.Fatal(err)
	}

	pgURL := storetest.PostgresURL(t)
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	env := []string{
		"HOME=" + t.TempDir(),
		"NSAUTH_DATABASE_URL=" + pgURL,
		"NSAUTH_SECRET_KEY=" + seal.GenerateKey(),
		"NSAUTH_ADMIN_PASSWORD=" + adminPassword,
	}
	logDir := t.TempDir()
	oldR := &replica{name: "old-" + older[:12], bin: oldBin, addr: servetest.FreeAddr(t, "127.0.0.2"), env: env, logDir: logDir}
	newR := &replica{name: "new", bin: newBin, addr: servetest.FreeAddr(t, "127.0.0.3"), env: env, logDir: logDir}
	t.Cleanup(oldR.stop)
	t.Cleanup(newR.stop)

	if err := oldR.start(ctx); err != nil {
		t.Fatal(err)
	}
	if v := schemaVersion(t, db); v != store.SchemaVersion()-1 {
		t.Fatalf("the older nsauth made schema %d, want %d: newestMigration is not the newest migration any more?", v, store.SchemaVersion()-1)
	}
	before := login(t, oldR)
	checkToken(t, oldR, before.access, "the older replica, its own token")

	if err := newR.start(ctx); err != nil {
		t.Fatal(err)
	}
	if v := schemaVersion(t, db); v != store.SchemaVersion() {
		t.Fatalf("after today's nsauth started the schema is %d, want %d", v, store.SchemaVersion())
	}

	// The older replica goes on serving on the newer schema.
	checkToken(t, oldR, before.access, "the older replica after the upgrade, a token it issued before")
	checkToken(t, newR, before.access, "today's replica, a token the older one issued")
	afterOld := refresh(t, oldR, before.refresh, "the older replica after the upgrade")
	checkToken(t, newR, afterOld.access, "today's replica, a token the older one refreshed")
	afterNew := refresh(t, newR, afterOld.refresh, "today's replica, a refresh token from the older one")
	checkToken(t, oldR, afterNew.access, "the older replica, a token today's one refreshed")
	refresh(t, oldR, afterNew.refresh, "the older replica, a refresh token from today's one")
	again := login(t, oldR)
	checkToken(t, newR, again.access, "today's replica, a login through the older one")
	checkToken(t, oldR, login(t, newR).access, "the older replica, a login through today's one")

	// Restarted, the older one refuses the newer schema.
	oldR.stop()
	out, err := oldR.runToExit(ctx)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the older nsauth restarted on the newer schema: %v, want it to exit with an error\n%s", err, out)
	}
	want := fmt.Sprintf("the database schema is version %d, newer than this nsauth supports (%d): upgrade nsauth", store.SchemaVersion(), store.SchemaVersion()-1)
	if !strings.Contains(out, want) {
		t.Errorf("the older nsauth's refusal does not say %q:\n%s", want, out)
	}
	if v := schemaVersion(t, db); v != store.SchemaVersion() {
		t.Errorf("after the refusal the schema is %d", v)
	}
	checkToken(t, newR, afterNew.access, "today's replica after the older one refused")
	t.Logf("older nsauth %s served through the upgrade to schema %d; restarted, it said: %s", older[:12], store.SchemaVersion(), want)
}

// olderCommit returns the clone's top directory and the commit before newestMigration was added. Without
// the history it skips, or fails in CI.
func olderCommit(t *testing.T) (top, commit string) {
	t.Helper()
	noHistory := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...) + ": the rolling-upgrade test builds the older nsauth from git history (a full clone: git fetch --unshallow)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg + " (in CI this fails)")
	}
	if _, err := exec.LookPath("git"); err != nil {
		noHistory("no git command")
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		noHistory("not in a git clone (%v)", err)
	}
	// Along main's first parents, each merge compared with the main it
	// joined: a migration that came in with a merge (or was renamed in
	// one) is added by that merge, and its first parent lacks it.
	added, err := git("-C", top, "log", "--first-parent", "-m", "--diff-filter=A", "--format=%H", "-1", "--", newestMigration)
	if err != nil || added == "" {
		noHistory("no commit adds %s (%v)", newestMigration, err)
	}
	parent, err := git("-C", top, "rev-parse", "--verify", "--quiet", added+"^")
	if err != nil || parent == "" {
		noHistory("the commit before %s is not in this clone (%v)", added[:12], err)
	}
	return top, parent
}

func git(args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("git", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// buildFromHistory extracts commit of the clone at top with git archive into dir and builds its
// nsauth-server there, without the race detector (the replicas are the
// system under test).
func buildFromHistory(ctx context.Context, top, dir, commit string) (string, error) {
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		return "", err
	}
	archive := exec.CommandContext(ctx, "git", "-C", top, "archive", "--format=tar", commit)
	extract := exec.CommandContext(ctx, "tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	extract.Stdin = pipe
	var archiveErr, extractErr bytes.Buffer
	archive.Stderr, extract.Stderr = &archiveErr, &extractErr
	if err := extract.Start(); err != nil {
		return "", fmt.Errorf("tar: %w", err)
	}
	if err := archive.Run(); err != nil {
		_ = extract.Wait()
		return "", fmt.Errorf("git archive %s: %w: %s", commit, err, archiveErr.String())
	}
	if err := extract.Wait(); err != nil {
		return "", fmt.Errorf("extracting %s: %w: %s", commit, err, extractErr.String())
	}
	return goBuild(ctx, src, "./cmd/nsauth-server", filepath.Join(dir, "nsauth-server"))
}

// buildToday builds this tree's nsauth-server.
func buildToday(ctx context.Context, dir string) (string, error) {
	return goBuild(ctx, "", "github.com/nsauth/nsauth/cmd/nsauth-server", filepath.Join(dir, "nsauth-server"))
}

func goBuild(ctx context.Context, dir, pkg, bin string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build nsauth: %w", err)
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, pkg)
	cmd.Dir = dir
	// An extracted tree has no .git to stamp the version from.
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %q: %w\n%s", pkg, dir, err, out)
	}
	return bin, nil
}

func schemaVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow(`SELECT MAX(version) FROM nsauth_schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// replica is one `nsauth serve` process; each start logs to a file of
// its own.
type replica struct {
	name, bin, addr string
	env             []string
	logDir          string

	starts int
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

func (r *replica) url() string { return "http://" + r.addr }

func (r *replica) command() (*exec.Cmd, error) {
	r.starts++
	r.log = filepath.Join(r.logDir, fmt.Sprintf("%s-%d.log", r.name, r.starts))
	f, err := os.Create(r.log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(r.bin, "serve", "--listen", r.addr, "--issuer", issuerURL,
		"--rate-limit", "0", "--authorize-rate-limit", "0", "--login-attempts", "1000")
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

func (r *replica) logText() string {
	b, _ := os.ReadFile(r.log)
	return string(b)
}

// start runs the replica and waits until /readyz answers 200.
func (r *replica) start(ctx context.Context) error {
	cmd, err := r.command()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", r.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r.cmd, r.exited = cmd, exited
	probe := &http.Client{Timeout: time.Second}
	for {
		if resp, err := probe.Get(r.url() + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was ready:\n%s", r.name, r.logText())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w\n%s", r.name, ctx.Err(), r.logText())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runToExit starts the replica and waits for it to exit by itself, for a
// start that must fail, and returns its output.
func (r *replica) runToExit(ctx context.Context) (string, error) {
	cmd, err := r.command()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		err = errors.New("still running after a minute")
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		err = ctx.Err()
	}
	return r.logText(), err
}

// stop ends the running incarnation, if any, with SIGTERM.
func (r *replica) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(20 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

func (r *replica) api() mgmtv1alpha1connect.AuthServiceClient {
	return mgmtv1alpha1connect.NewAuthServiceClient(&http.Client{Timeout: 30 * time.Second}, r.url())
}

type tokens struct{ access, refresh string }

// login runs a whole CLI login on r as admin: an authorize URL from the
// AuthService, the login form posted to r, LoginCli.
func login(t *testing.T, r *replica) tokens {
	t.Helper()
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
	authz, err := r.api().GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: "upgrade", RedirectUri: redirectURI, Scope: "openid offline_access",
		CodeChallenge: &challenge, CodeChallengeMethod: &method,
	}))
	if err != nil {
		t.Fatalf("GetAuthorizeUrl on %s: %v", r.name, err)
	}
	browser := issuertest.NewBrowser(t)
	browser.Rewrite = func(u *url.URL) { u.Host = r.addr }
	loc := browser.Login(t, authz.Msg.GetUrl(), "admin", adminPassword)
	resp, err := r.api().LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{
		Code: loc.Query().Get("code"), RedirectUri: redirectURI, CodeVerifier: &verifier,
	}))
	if err != nil {
		t.Fatalf("LoginCli on %s: %v", r.name, err)
	}
	tok := resp.Msg.GetAccessToken()
	if tok.GetAccessToken() == "" || tok.GetRefreshToken() == "" {
		t.Fatalf("LoginCli on %s answered without an access or refresh token", r.name)
	}
	return tokens{access: tok.GetAccessToken(), refresh: tok.GetRefreshToken()}
}

func checkToken(t *testing.T, r *replica, access, what string) {
	t.Helper()
	req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
	req.Header().Set("Authorization", "Bearer "+access)
	if _, err := r.api().CheckToken(context.Background(), req); err != nil {
		t.Errorf("CheckToken on %s: %v (log: %s)", what, err, r.log)
	}
}

func refresh(t *testing.T, r *replica, refreshToken, what string) tokens {
	t.Helper()
	resp, err := r.api().RefreshCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: refreshToken}))
	if err != nil {
		t.Fatalf("RefreshCli on %s: %v (log: %s)", what, err, r.log)
	}
	tok := resp.Msg.GetAccessToken()
	if tok.GetAccessToken() == "" || tok.GetRefreshToken() == "" {
		t.Fatalf("RefreshCli on %s answered without an access or refresh token", what)
	}
	return tokens{access: tok.GetAccessToken(), refresh: tok.GetRefreshToken()}
}
