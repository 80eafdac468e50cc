//go:build interop

package interop_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables the harness reads.
const (
	// hydraBinEnv names a prebuilt Hydra binary; otherwise
	// interop/build-hydra.sh builds (or finds in its cache) one.
	hydraBinEnv = "NSAUTH_HYDRA_BIN"
	// databaseURLEnv is the PostgreSQL server to create Hydra's databases
	// on, as for internal/store's tests.
	databaseURLEnv     = "NSAUTH_TEST_DATABASE_URL"
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	// dbPrefix starts the name of every database the harness creates.
	dbPrefix = "hydra_interop_"
)

// Access-token strategies of Hydra (its strategies.access_token setting).
const (
	strategyJWT    = "jwt"
	strategyOpaque = "opaque" // Hydra's default
)

// What the harness registers in every Hydra.
const (
	cliClientID = "nsauth-cli"
	apiAudience = "https://api.nsauth.test"
	// clientScope is every scope the CLI client may request.
	clientScope = "openid offline_access offline profile email"
	// accessTokenTTL is Hydra's access-token lifetime (TTL_ACCESS_TOKEN).
	accessTokenTTL = 15 * time.Minute
)

// hydra is one running Hydra with the CLI client registered.
type hydra struct {
	// Strategy is strategyJWT or strategyOpaque.
	Strategy string
	// Issuer is the public URL, which is also the issuer.
	Issuer string
	// AdminURL is the admin API's base URL.
	AdminURL string
	// ClientSecret is the CLI client's secret (client_secret_basic).
	ClientSecret string
	// App is the login-and-consent app Hydra sends browsers to.
	App *loginApp

	cmd     *exec.Cmd
	exited  chan error
	logPath string
	dbName  string
}

// IntrospectionURL is Hydra's RFC 7662 endpoint. It lives on the admin
// port and is not in Hydra's discovery document.
func (h *hydra) IntrospectionURL() string { return h.AdminURL + "/admin/oauth2/introspect" }

// hydras starts at most one Hydra per strategy per test binary; TestMain
// stops them.
var hydras = struct {
	mu      sync.Mutex
	running map[string]*hydra
	failed  map[string]error
}{running: map[string]*hydra{}, failed: map[string]error{}}

func TestMain(m *testing.M) {
	code := m.Run()
	hydras.mu.Lock()
	for _, h := range hydras.running {
		if err := h.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping Hydra (%s): %v\n", h.Strategy, err)
			code = 1
		}
	}
	hydras.mu.Unlock()
	os.Exit(code)
}

// hydraFor returns the shared Hydra issuing access tokens by strategy,
// starting it on first use. It fails the test, never skips it, when Hydra
// cannot be built or started.
func hydraFor(t *testing.T, strategy string) *hydra {
	t.Helper()
	hydras.mu.Lock()
	defer hydras.mu.Unlock()
	if h := hydras.running[strategy]; h != nil {
		return h
	}
	if err := hydras.failed[strategy]; err != nil {
		t.Fatalf("Hydra (%s) could not be started earlier: %v", strategy, err)
	}
	start := time.Now()
	h, err := startHydra(strategy)
	if err != nil {
		hydras.failed[strategy] = err
		t.Fatalf("starting Hydra (%s): %v", strategy, err)
	}
	t.Logf("Hydra (%s access tokens) ready in %s at %s", strategy, time.Since(start).Round(time.Millisecond), h.Issuer)
	hydras.running[strategy] = h
	return h
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// hydraBinary returns $NSAUTH_HYDRA_BIN or what interop/build-hydra.sh
// prints: a cached build, or a fresh one (minutes, the first time).
func hydraBinary() (string, error) {
	binOnce.Do(func() {
		if p := os.Getenv(hydraBinEnv); p != "" {
			binPath = p
			return
		}
		script, err := filepath.Abs(filepath.Join("..", "..", "interop", "build-hydra.sh"))
		if err != nil {
			binErr = err
			return
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("bash", script)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			binErr = fmt.Errorf("%s: %v\n%s", script, err, tail(stderr.String(), 40))
			return
		}
		binPath = strings.TrimSpace(stdout.String())
	})
	return binPath, binErr
}

// startHydra creates a database, migrates it, starts `hydra serve all` on
// two free loopback ports, waits until it is ready and registers the CLI
// client.
func startHydra(strategy string) (_ *hydra, err error) {
	bin, err := hydraBinary()
	if err != nil {
		return nil, fmt.Errorf("building Hydra: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	h := &hydra{Strategy: strategy, exited: make(chan error, 1)}
	h.dbName = fmt.Sprintf("%s%d_%s_%s", dbPrefix, os.Getpid(), strategy, randomHex(4))
	dsn, err := createDatabase(ctx, h.dbName)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = h.stop()
		}
	}()

	h.App = newLoginApp()
	h.ClientSecret = randomHex(24)
	logFile, err := os.CreateTemp("", "nsauth-interop-hydra-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	h.logPath = logFile.Name()

	env := map[string]string{
		"PATH":                      os.Getenv("PATH"),
		"DSN":                       dsn,
		"SECRETS_SYSTEM":            randomHex(32),
		"URLS_LOGIN":                h.App.Server.URL + "/login",
		"URLS_CONSENT":              h.App.Server.URL + "/consent",
		"STRATEGIES_ACCESS_TOKEN":   strategy,
		"TTL_ACCESS_TOKEN":          accessTokenTTL.String(),
		"OAUTH2_PKCE_ENFORCED":      "true", // proves PKCE travels through nsauth
		"LOG_LEVEL":                 "info",
		"LOG_LEAK_SENSITIVE_VALUES": "false",
		"SQA_OPT_OUT":               "true", // no telemetry: the tests stay on loopback
	}
	migrate := exec.CommandContext(ctx, bin, "migrate", "sql", "up", "--read-from-env", "--yes")
	migrate.Env = environ(env)
	migrate.Stdout, migrate.Stderr = logFile, logFile
	if err := migrate.Run(); err != nil {
		return nil, fmt.Errorf("hydra migrate sql up: %v\n%s", err, tailFile(h.logPath, 40))
	}

	// Free ports can be taken between choosing and binding: try again.
	for attempt := 1; ; attempt++ {
		publicPort, adminPort, perr := twoFreePorts()
		if perr != nil {
			return nil, perr
		}
		h.Issuer = "http://127.0.0.1:" + strconv.Itoa(publicPort)
		h.AdminURL = "http://127.0.0.1:" + strconv.Itoa(adminPort)
		env["URLS_SELF_ISSUER"] = h.Issuer
		env["SERVE_PUBLIC_HOST"], env["SERVE_PUBLIC_PORT"] = "127.0.0.1", strconv.Itoa(publicPort)
		env["SERVE_ADMIN_HOST"], env["SERVE_ADMIN_PORT"] = "127.0.0.1", strconv.Itoa(adminPort)
		h.cmd = exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
		h.cmd.Env = environ(env)
		h.cmd.Stdout, h.cmd.Stderr = logFile, logFile
		// Never outlive a test binary that crashed or timed out. (The signal
		// follows the starting OS thread, which Go ends only for goroutines
		// locked to it; this one is not.)
		h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := h.cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting hydra serve: %w", err)
		}
		h.exited = make(chan error, 1)
		go func(cmd *exec.Cmd, exited chan error) { exited <- cmd.Wait() }(h.cmd, h.exited)
		err = h.waitReady(ctx)
		if err == nil {
			break
		}
		_ = h.stopProcess()
		if attempt == 3 || ctx.Err() != nil {
			return nil, fmt.Errorf("%w\n%s", err, tailFile(h.logPath, 40))
		}
	}
	h.App.setAdminURL(h.AdminURL)
	if err := h.warmUpKeys(ctx); err != nil {
		return nil, err
	}
	if err := h.registerClient(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// waitReady polls the admin API's readiness check and the public
// discovery document.
func (h *hydra) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	ready := func(u string) bool {
		resp, err := client.Get(u)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK
	}
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for {
		if ready(h.AdminURL+"/health/ready") && ready(h.Issuer+"/.well-known/openid-configuration") {
			return nil
		}
		select {
		case err := <-h.exited:
			h.exited <- err
			return fmt.Errorf("hydra serve exited: %v", err)
		case <-deadline.C:
			return errors.New("hydra serve did not become ready within 60s")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// warmUpKeys makes Hydra generate its signing keys now. It creates them on
// first use, RSA 4096 bits each, which on a busy two-core machine can take
// longer than the 10 s Hydra gives a request: the first login's response
// would then be cut off after Hydra had already used up its one-time
// verifier. Fetching the JWKS generates every published key set; a
// cut-off response is simply fetched again.
func (h *hydra) warmUpKeys(ctx context.Context) error {
	want := 1 // hydra.openid.id-token
	if h.Strategy == strategyJWT {
		want = 2 // and hydra.jwt.access-token
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.Issuer+"/.well-known/jwks.json", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			var set struct {
				Keys []json.RawMessage `json:"keys"`
			}
			decodeErr := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && decodeErr == nil && len(set.Keys) >= want {
				return nil
			}
			last = fmt.Sprintf("HTTP %d with %d keys", resp.StatusCode, len(set.Keys))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for hydra's signing keys (%s): %w", last, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// registerClient creates the CLI's confidential client through the admin
// API. The redirect URI has no port: Hydra (like RFC 8252 §7.3 asks)
// accepts any port on a loopback IP address.
func (h *hydra) registerClient(ctx context.Context) error {
	body, _ := json.Marshal(map[string]any{
		"client_id":                  cliClientID,
		"client_secret":              h.ClientSecret,
		"client_name":                "nsauth interop",
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"scope":                      clientScope,
		"redirect_uris":              []string{"http://127.0.0.1/api/auth/callback"},
		"audience":                   []string{apiAudience},
		"token_endpoint_auth_method": "client_secret_basic",
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.AdminURL+"/admin/clients", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("registering the client: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		// The body echoes the secret on success only; an error body is safe.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("registering the client: HTTP %d: %s", resp.StatusCode, b)
	}
	return nil
}

// stop ends Hydra, closes the login app and drops the database.
func (h *hydra) stop() error {
	errs := []error{h.stopProcess()}
	if h.App != nil {
		h.App.Server.Close()
	}
	if h.dbName != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errs = append(errs, dropDatabase(ctx, h.dbName))
	}
	if h.logPath != "" {
		_ = os.Remove(h.logPath)
	}
	return errors.Join(errs...)
}

func (h *hydra) stopProcess() error {
	if h.cmd == nil || h.cmd.Process == nil {
		return nil
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
		return nil
	case <-time.After(15 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.exited
		return errors.New("hydra did not stop on SIGTERM; killed it")
	}
}

// createDatabase creates an empty database and returns its URL. It first
// drops databases that earlier runs left behind when they crashed (their
// process is gone).
func createDatabase(ctx context.Context, name string) (string, error) {
	admin := os.Getenv(databaseURLEnv)
	if admin == "" {
		admin = defaultDatabaseURL
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", fmt.Errorf("connecting to PostgreSQL for Hydra's database (set $%s): %w", databaseURLEnv, err)
	}
	defer conn.Close(ctx)
	dropStaleDatabases(ctx, conn)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	// Throwaway data: do not wait for fsync on every commit, which on a
	// busy disk slows every Hydra request.
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" SET synchronous_commit = off"); err != nil {
		return "", fmt.Errorf("configuring database %s: %w", name, err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

func dropStaleDatabases(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE $1", dbPrefix+"%")
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, n := range names {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(n, dbPrefix), "_")
		pid, err := strconv.Atoi(pidText)
		if err != nil || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // not ours, or its process still runs
		}
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
	}
}

func dropDatabase(ctx context.Context, name string) error {
	admin := os.Getenv(databaseURLEnv)
	if admin == "" {
		admin = defaultDatabaseURL
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

func twoFreePorts() (int, int, error) {
	var ports []int
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports[0], ports[1], nil
}

func environ(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tailFile is tail of a log file. Only start-up logs are ever shown, from
// before any token exists.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return tail(string(b), n)
}
