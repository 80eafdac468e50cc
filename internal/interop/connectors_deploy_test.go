//go:build interop

package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// connectorDeployment is nsauth-server as deployment runs it, for the
// connector tests: its issuer is http://localhost:PORT, another site than
// the upstreams' http://127.0.0.1:PORT (as accounts.google.com is to a
// company's provider: the upstream's redirect back is a cross-site
// navigation, which SameSite=Strict cookies do not follow), and a host name
// (browsers make passkeys for no IP address). With two replicas the load
// balancer sends each upstream's redirect back (the connector callback) to
// the last replica and every other browser request to replica 0, so every
// sign-in is started on one replica and finished on another; the apps'
// back channel goes to the last replica. With one replica (SQLite) the load
// balancer sends everything to it.
type connectorDeployment struct {
	*deployment
	// starts and callbacks count POST /login/connector and
	// GET /login/connector/NAME/callback by replica.
	starts, callbacks []atomic.Int64
	// hold, when set, makes the load balancer keep the next upstream
	// redirect back to itself (sent on held) instead of serving it, as an
	// attacker who stole it would.
	hold atomic.Bool
	held chan string
}

// startConnectorDeployment starts nsauth-server on backend with extra
// environment (NSAUTH_MFA=required…) and stops it when the test ends.
func startConnectorDeployment(t *testing.T, bin, backend string, extra ...string) *connectorDeployment {
	t.Helper()
	d, replicas := newDeployment(t, bin, backend)
	d.env = append(d.env, extra...)
	addrs := make([]string, replicas)
	for i := range addrs {
		addrs[i] = freeLoopbackAddr(t)
		d.setReplica(t, i, "http://"+addrs[i])
	}
	cd := &connectorDeployment{deployment: d, held: make(chan string, 1),
		starts: make([]atomic.Int64, replicas), callbacks: make([]atomic.Int64, replicas)}
	d.Issuer = cd.startBalancer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, addr := range addrs {
		d.startReplica(t, ctx, i, addr)
	}
	return cd
}

// isConnectorCallback reports whether r is an upstream's redirect back.
func isConnectorCallback(r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, "/login/connector/")
	return ok && strings.HasSuffix(rest, "/callback")
}

func (cd *connectorDeployment) startBalancer(t *testing.T) string {
	t.Helper()
	d := cd.deployment
	last := len(d.Replicas) - 1
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := last
		switch {
		case isConnectorCallback(r) && cd.hold.CompareAndSwap(true, false):
			cd.held <- r.URL.RequestURI()
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(`<!doctype html><title>held</title><p id="held">held by the test</p>`))
			return
		case isConnectorCallback(r):
			cd.callbacks[last].Add(1)
		case isBrowser(r):
			i = 0
			if r.Method == http.MethodPost && r.URL.Path == "/login/connector" {
				cd.starts[0].Add(1)
			}
		}
		d.proxy(i).ServeHTTP(w, r)
	}))
	t.Cleanup(lb.Close)
	return strings.Replace(lb.URL, "127.0.0.1", "localhost", 1)
}

// Crossed reports how many sign-ins were started on replica 0 and how many
// callbacks the last replica served.
func (cd *connectorDeployment) Crossed() (starts, callbacks int64) {
	return cd.starts[0].Load(), cd.callbacks[len(cd.callbacks)-1].Load()
}

// Callback is the URL to register at an upstream for connector name.
func (cd *connectorDeployment) Callback(name string) string {
	return cd.Issuer + "/login/connector/" + name + "/callback"
}

// AdminIn runs an administration command with stdin and returns its
// exit code, standard output and standard error.
func (cd *connectorDeployment) AdminIn(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(cd.bin, args...)
	cmd.Env = cd.env
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if exit, ok := err.(*exec.ExitError); ok {
			code = exit.ExitCode()
		}
	}
	return code, stdout.String(), stderr.String()
}

// AddConnector runs `nsauth connectors add NAME --type oidc --issuer …
// --client-id … --client-secret-stdin FLAGS… --json` and fails the test
// when it does not succeed.
func (cd *connectorDeployment) AddConnector(t *testing.T, name, issuer, clientID, secret string, flags ...string) map[string]any {
	t.Helper()
	args := append([]string{"connectors", "add", name, "--type", "oidc", "--issuer", issuer,
		"--client-id", clientID, "--client-secret-stdin", "--json"}, flags...)
	code, out, errOut := cd.AdminIn(t, secret+"\n", args...)
	if code != 0 {
		t.Fatalf("nsauth connectors add %s: exit %d\n%s%s", name, code, out, errOut)
	}
	assertClean(t, "connectors add's output", out+errOut, secret)
	var shown map[string]any
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("nsauth connectors add %s --json printed no JSON: %v\n%s", name, err, out)
	}
	return shown
}
