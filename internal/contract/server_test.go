package contract_test

import (
	"bufio"
	"bytes"
	"encoding/json"
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

// binEnv names a prebuilt nsauth binary to test instead of building one.
const binEnv = "NSAUTH_BIN"

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	var err error
	buildDir, err = os.MkdirTemp("", "nsauth-contract-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(buildDir)
	os.Exit(code)
}

// nsauthBinary returns the nsauth-server binary under test: $NSAUTH_BIN, or
// cmd/nsauth-server built once per test run. It runs as a separate process because
// this test binary links the original API's generated code, whose protobuf
// names collide with ours.
func nsauthBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv(binEnv); p != "" {
			builtBin = p
			return
		}
		builtBin = filepath.Join(buildDir, "nsauth-server")
		cmd := exec.Command("go", "build", "-o", builtBin, "github.com/nsauth/nsauth/cmd/nsauth-server")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/nsauth-server: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is `nsauth serve` running as a child process.
type server struct {
	URL  string
	Logs *lockedBuffer
}

// startServer runs `nsauth serve` on a free loopback port with exactly env
// as its environment, waits until it listens, and stops it (SIGTERM) when
// the test ends.
func startServer(t *testing.T, env map[string]string) *server {
	t.Helper()
	bin := nsauthBinary(t)
	s := &server{Logs: &lockedBuffer{}}
	// The drain bound exceeds the 5 s that net/http's Shutdown waits for
	// connections a client opened but never used.
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "10s")
	cmd.Env = []string{}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout = s.Logs
	cmd.Stderr = s.Logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nsauth serve: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("nsauth serve exited with %v after SIGTERM:\n%s", err, s.Logs.String())
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("nsauth serve did not stop after SIGTERM")
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		if u := servingURL(s.Logs.String()); u != "" {
			s.URL = u
			return s
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("nsauth serve exited (%v) before listening:\n%s", err, s.Logs.String())
		case <-deadline:
			t.Fatalf("nsauth serve did not start listening:\n%s", s.Logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// servingURL finds the URL in the "nsauth serving" log line.
func servingURL(logs string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
			URL string `json:"url"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "nsauth serving" {
			return line.URL
		}
	}
	return ""
}

// assertClean fails when text contains any of the secrets. It names a
// secret by its position in the list, never by any part of its value.
func assertClean(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for i, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains secret #%d", where, i)
		}
	}
}
