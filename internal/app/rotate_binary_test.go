package app_test

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/servetest"
)

// TestRotateSecretKeyBinary is the rotation as a person runs it: the
// built nsauth-server serving a SQLite data directory in one process, and
// `nsauth-server keys rotate-secret-key` run beside it in another, while
// users log in over HTTP. The server keeps logging users in throughout and
// after; the command prints no key; the data directory's secret.key ends
// with one new key. A second run, given a key of its own in
// NSAUTH_SECRET_KEY as the finding did, is refused while the server runs.
func TestRotateSecretKeyBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "nsauth-server")
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build nsauth-server: %v", err)
	}
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/nsauth/nsauth/cmd/nsauth-server").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	b := newSealedBackend(t, "sqlite")
	b.env["NSAUTH_LOGIN_ATTEMPTS_PER_MINUTE"] = "100" // concurrent logins from one address
	environ := func(env map[string]string) []string {
		out := []string{"HOME=" + t.TempDir()}
		for k, v := range env {
			out = append(out, k+"="+v)
		}
		return out
	}
	serve := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--log-format", "json")
	serve.Env = environ(b.env)
	logs := &servetest.Buffer{}
	serve.Stdout, serve.Stderr = logs, logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = serve.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(30 * time.Second):
			_ = serve.Process.Kill()
			return errors.New("nsauth-server serve did not stop on SIGTERM")
		}
	}
	t.Cleanup(func() { _ = stop() })
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if base = servetest.ServingURL(logs.String()); base == "" && time.Now().After(deadline) {
			t.Fatalf("nsauth-server serve did not start:\n%s", logs.String())
		}
	}
	users := addTOTPUsers(t, b, config.SecretKeys{}, "user", 9)
	oldIDs := keyFileIDs(t, b)

	run := func(env map[string]string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, "keys", "rotate-secret-key")
		cmd.Env = environ(env)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		noKeyIn(t, out.String(), env, env["NSAUTH_SECRET_KEY"])
		return cmd.ProcessState.ExitCode(), out.String()
	}

	// Three browsers log users in, one after the other, while the
	// command runs; each logs one more in after it ended.
	const browsers = 3
	rotated := make(chan struct{})
	var started, done sync.WaitGroup
	started.Add(browsers)
	for w := range browsers {
		done.Add(1)
		go func() {
			defer done.Done()
			var once sync.Once
			defer once.Do(started.Done)
			var prev *mgmtv1alpha1.AccessToken
			for i, u := range users[w*3 : w*3+3] {
				if i == 2 {
					<-rotated
				}
				tok := loginTOTPAt(t, base, issuertest.NewBrowser(t), u, time.Now())
				once.Do(started.Done)
				if prev != nil {
					refreshAt(t, base, prev)
				}
				prev = tok
			}
		}()
	}
	var code int
	var out string
	func() {
		defer close(rotated)
		started.Wait()
		code, out = run(b.env)
	}()
	done.Wait()
	if code != 0 {
		t.Fatalf("nsauth-server keys rotate-secret-key: exit %d\n%s", code, out)
	}
	newIDs := keyFileIDs(t, b)
	if len(newIDs) != 1 || newIDs[0] == oldIDs[0] {
		t.Fatalf("the key file holds key ids %v after the rotation, want one new key (it held %v)", newIDs, oldIDs)
	}
	if got := sealedKeyIDs(t, b); len(got) != 1 || got[newIDs[0]] == 0 {
		t.Fatalf("sealed values name keys %v, want all under %s", got, newIDs[0])
	}

	code, out = run(b.with("NSAUTH_SECRET_KEY", seal.GenerateKey()))
	if code != 1 || !strings.Contains(out, "refusing to rotate") || !strings.Contains(out, "run this command without NSAUTH_SECRET_KEY") {
		t.Fatalf("a key given while the server reads the key file: exit %d, want 1 and the refusal\n%s", code, out)
	}
	if err := stop(); err != nil {
		t.Fatalf("nsauth-server serve: %v\n%s", err, logs.String())
	}
	if strings.Contains(logs.String(), "which was not given") {
		t.Fatalf("the server met a key it lacked:\n%s", logs.String())
	}
}
