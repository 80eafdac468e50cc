//go:build interop

package interop_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// zitadelBinEnv names a prebuilt interop/zitadelop binary; otherwise
// interop/build-zitadelop.sh builds (or finds in its cache) one.
const zitadelBinEnv = "NSAUTH_ZITADELOP_BIN"

// Access-token types of the zitadel provider's client (its -access-token).
const (
	zitadelOpaque = "opaque" // the example's device client's
	zitadelJWT    = "jwt"
)

// The example's user (example/server/storage's NewUserStore: its username
// ends with the issuer's host) and its password. zitadelop makes usernames
// the subjects.
const (
	zitadelUsername = "test-user@127.0.0.1"
	zitadelPassword = "verysecure"
)

// zitadelOP is one running zitadel/oidc example provider (interop/zitadelop)
// with nsauth's client registered for the device grant.
type zitadelOP struct {
	// Issuer is its URL and issuer.
	Issuer string
	// ClientID and ClientSecret are the client's credentials
	// (client_secret_basic).
	ClientID, ClientSecret string

	cmd    *exec.Cmd
	exited chan error
	logs   *lockedBuffer
}

var (
	zitadelBinOnce sync.Once
	zitadelBinPath string
	zitadelBinErr  error
)

// zitadelBinary returns $NSAUTH_ZITADELOP_BIN or what
// interop/build-zitadelop.sh prints.
func zitadelBinary() (string, error) {
	zitadelBinOnce.Do(func() {
		if p := os.Getenv(zitadelBinEnv); p != "" {
			zitadelBinPath = p
			return
		}
		script, err := filepath.Abs(filepath.Join("..", "..", "interop", "build-zitadelop.sh"))
		if err != nil {
			zitadelBinErr = err
			return
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("bash", script)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			zitadelBinErr = fmt.Errorf("%s: %v\n%s", script, err, tail(stderr.String(), 40))
			return
		}
		zitadelBinPath = strings.TrimSpace(stdout.String())
	})
	return zitadelBinPath, zitadelBinErr
}

// startZitadelOP starts a provider of its own for the test, issuing
// access tokens of accessToken's type, with more zitadelop flags, and
// stops it when the test ends. It fails the test, never skips it, when the
// provider cannot be built or started.
func startZitadelOP(t *testing.T, accessToken string, flags ...string) *zitadelOP {
	t.Helper()
	bin, err := zitadelBinary()
	if err != nil {
		t.Fatalf("building the zitadel provider: %v", err)
	}
	p := &zitadelOP{ClientID: cliClientID, ClientSecret: randomHex(24), exited: make(chan error, 1), logs: &lockedBuffer{}}
	// Port 0: the provider binds first and then prints its issuer, so no
	// other process can take the port in between.
	p.cmd = exec.Command(bin, append([]string{"-listen", "127.0.0.1:0", "-client-id", p.ClientID, "-access-token", accessToken}, flags...)...)
	p.cmd.Env = []string{"ZITADELOP_CLIENT_SECRET=" + p.ClientSecret}
	p.cmd.Stderr = p.logs
	// Never outlive a test binary that crashed or timed out.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting the zitadel provider: %v", err)
	}
	issuer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		issuer <- strings.TrimSpace(strings.TrimPrefix(line, "issuer "))
		// zitadelop writes nothing after that line; Wait may close the pipe.
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("stopping the zitadel provider: %v", err)
		}
		if t.Failed() && p.logs.String() != "" {
			t.Logf("zitadel provider log (last 40 lines):\n%s", tail(p.logs.String(), 40))
		}
	})
	select {
	case p.Issuer = <-issuer:
	case <-time.After(30 * time.Second):
		t.Fatalf("the zitadel provider printed no issuer within 30s:\n%s", tail(p.logs.String(), 40))
	}
	if !strings.HasPrefix(p.Issuer, "http://127.0.0.1:") {
		t.Fatalf("the zitadel provider did not start (issuer %q):\n%s", p.Issuer, tail(p.logs.String(), 40))
	}
	return p
}

// stop ends the provider with SIGTERM, then SIGKILL.
func (p *zitadelOP) stop() error {
	if p.cmd.Process == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("did not stop on SIGTERM; killed it")
	}
}
