//go:build interop

package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// The built-in provider's administrator in every deployment below.
const (
	deployAdmin         = "admin"
	deployAdminPassword = "interop-admin-password"
)

// buildNsauthServer builds cmd/nsauth-server, without the race detector:
// the servers are the system under test, run as an operator runs them.
func buildNsauthServer(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build nsauth-server: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "nsauth-server")
	out, err := exec.Command(goTool, "build", "-o", bin, "github.com/nsauth/nsauth/cmd/nsauth-server").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/nsauth-server: %v\n%s", err, out)
	}
	return bin
}

// deployment is nsauth-server as an operator runs it: one replica on
// SQLite, or two on one PostgreSQL database behind a load balancer whose
// target the test switches (sign in on one, go on with the other).
type deployment struct {
	// Issuer is the URL browsers and apps use: the only replica, or the
	// load balancer.
	Issuer string
	// Replicas are the servers' own URLs.
	Replicas []string
	// proxies are the load balancer's ways to the replicas, replaced when
	// a replica is started again on another port (setReplica).
	proxies []*atomic.Pointer[httputil.ReverseProxy]

	bin     string
	env     []string // the store's settings, for serve and the admin commands
	logs    []string
	target  atomic.Int32
	split   atomic.Bool
	backend string

	// served counts the load balancer's requests by replica and by client:
	// [replica][0] the browser's, [replica][1] any other client's.
	served [][2]atomic.Int64
}

// startDeployment starts nsauth-server on backend ("sqlite" or
// "postgres") and stops it when the test ends.
func startDeployment(t *testing.T, bin, backend string) *deployment {
	t.Helper()
	d, replicas := newDeployment(t, bin, backend)
	addrs := make([]string, replicas)
	for i := range addrs {
		addrs[i] = freeLoopbackAddr(t)
		d.setReplica(t, i, "http://"+addrs[i])
	}
	d.Issuer = d.Replicas[0]
	if replicas > 1 {
		d.Issuer = d.startBalancer(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, addr := range addrs {
		d.startReplica(t, ctx, i, addr)
	}
	return d
}

// newDeployment is a deployment's settings on backend, with how many
// replicas it runs, before any starts.
func newDeployment(t *testing.T, bin, backend string) (*deployment, int) {
	t.Helper()
	d := &deployment{bin: bin, backend: backend}
	home := t.TempDir()
	d.env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "NSAUTH_ADMIN_PASSWORD=" + deployAdminPassword}
	replicas := 1
	switch backend {
	case "sqlite":
		d.env = append(d.env, "NSAUTH_DATA_DIR="+filepath.Join(home, "data"))
	case "postgres":
		d.env = append(d.env, "NSAUTH_DATABASE_URL="+storetest.PostgresURL(t), "NSAUTH_SECRET_KEY="+seal.GenerateKey())
		replicas = 2
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	return d, replicas
}

// startBalancer serves the replica d.target names, as a load balancer in
// front of replicas does (keeping the Host the browser asked for).
func (d *deployment) startBalancer(t *testing.T) string {
	t.Helper()
	d.served = make([][2]atomic.Int64, len(d.Replicas))
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		browser := isBrowser(r)
		i := int(d.target.Load())
		if d.split.Load() {
			i = len(d.Replicas) - 1
			if browser {
				i = 0
			}
		}
		client := 1
		if browser {
			client = 0
		}
		d.served[i][client].Add(1)
		d.proxy(i).ServeHTTP(w, r)
	}))
	t.Cleanup(lb.Close)
	return lb.URL
}

// Use sends the load balancer's traffic to replica i from now on.
func (d *deployment) Use(i int) { d.target.Store(int32(i)) }

// SplitBrowser makes the load balancer send, from now on, the browser's
// requests (the authorization, login, consent, device and end-session
// pages) to replica 0 and every other client's (the apps' back channel:
// discovery, keys, token, userinfo, introspection, revocation) to the last
// replica, so that every code, session and token the pages create is
// redeemed, refreshed, introspected and revoked on another replica than
// the one that made it. It overrides Use.
func (d *deployment) SplitBrowser() { d.split.Store(true) }

// Served returns how many requests the load balancer sent to replica i
// from the browser and from any other client.
func (d *deployment) Served(i int) (browser, other int64) {
	return d.served[i][0].Load(), d.served[i][1].Load()
}

// isBrowser reports whether r comes from Chromium, by its User-Agent;
// node's, Go's and the libraries' clients never say "Chrome/".
func isBrowser(r *http.Request) bool { return strings.Contains(r.UserAgent(), "Chrome/") }

func (d *deployment) startReplica(t *testing.T, ctx context.Context, i int, addr string) {
	t.Helper()
	// The address was free when freeLoopbackAddr chose it; until the
	// replica binds it, any socket of the machine's may take it (a
	// client's connection gets its local port from the same range). A
	// replica that cannot bind it is started again on another.
	for attempt := 1; ; attempt++ {
		err := d.tryReplica(t, ctx, i, addr)
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrTaken) || attempt == 5 {
			t.Fatal(err)
		}
		t.Logf("replica %d: %s was taken before it could listen; starting it on another port", i, addr)
		old := d.Replicas[i]
		addr = freeLoopbackAddr(t)
		d.setReplica(t, i, "http://"+addr)
		if d.Issuer == old {
			d.Issuer = d.Replicas[i]
		}
	}
}

// errAddrTaken: a replica exited because its address was in use.
var errAddrTaken = errors.New("address already in use")

// setReplica sets replica i's URL, and the balancer's way to it.
func (d *deployment) setReplica(t *testing.T, i int, replica string) {
	t.Helper()
	u, err := url.Parse(replica)
	if err != nil {
		t.Fatal(err)
	}
	for len(d.proxies) <= i {
		d.proxies = append(d.proxies, new(atomic.Pointer[httputil.ReverseProxy]))
	}
	for len(d.Replicas) <= i {
		d.Replicas = append(d.Replicas, "")
	}
	d.Replicas[i] = replica
	d.proxies[i].Store(httputil.NewSingleHostReverseProxy(u))
}

// proxy is the balancer's way to replica i.
func (d *deployment) proxy(i int) *httputil.ReverseProxy { return d.proxies[i].Load() }

// tryReplica starts replica i on addr and waits for it to be ready; it
// returns an error wrapping errAddrTaken when the replica exits because it
// cannot listen on addr, and any other failure as an error to fail with.
func (d *deployment) tryReplica(t *testing.T, ctx context.Context, i int, addr string) error {
	t.Helper()
	logFile, err := os.CreateTemp(t.TempDir(), fmt.Sprintf("nsauth-%d-*.log", i))
	if err != nil {
		return err
	}
	d.logs = append(d.logs, logFile.Name())
	cmd := exec.Command(d.bin, "serve", "--listen", addr, "--issuer", d.Issuer, "--log-format", "json",
		"--rate-limit", "0", "--authorize-rate-limit", "0")
	cmd.Env = d.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting nsauth-server serve: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(exited)
	}()
	probe := &http.Client{Timeout: time.Second}
	for {
		resp, err := probe.Get("http://" + addr + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			log := tailFile(logFile.Name(), 40)
			if strings.Contains(log, "address already in use") {
				return fmt.Errorf("replica %d on %s: %w", i, addr, errAddrTaken)
			}
			return fmt.Errorf("nsauth-server serve exited before it was ready:\n%s", log)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("nsauth-server serve not ready: %v\n%s", ctx.Err(), tailFile(logFile.Name(), 40))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("replica %d's log (%s):\n%s", i, d.backend, tailFile(logFile.Name(), 40))
		}
	})
	return nil
}

// Admin runs an administration command (`nsauth-server apps …`) on the
// deployment's store and returns its standard output.
func (d *deployment) Admin(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(d.bin, args...)
	cmd.Env = d.env
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nsauth %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// appCredentials is what `nsauth apps add --json` prints.
type appCredentials struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// AddApp registers an app with `nsauth apps add NAME --json FLAGS…`.
func (d *deployment) AddApp(t *testing.T, name string, flags ...string) appCredentials {
	t.Helper()
	out := d.Admin(t, append([]string{"apps", "add", name, "--json"}, flags...)...)
	var c appCredentials
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("nsauth apps add %s --json printed no JSON: %v", name, err)
	}
	if c.ClientID != name {
		t.Fatalf("nsauth apps add %s: client_id %q", name, c.ClientID)
	}
	return c
}

// AssertLogsClean fails the test when a replica's log so far holds any of
// the secrets (named by position, never by value).
func (d *deployment) AssertLogsClean(t *testing.T, secrets ...string) {
	t.Helper()
	for i, path := range d.logs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("reading replica %d's log: %v", i, err)
			continue
		}
		assertClean(t, fmt.Sprintf("replica %d's log", i), string(b), secrets...)
	}
}

// freeLoopbackAddr returns a free port on 127.0.0.1.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
