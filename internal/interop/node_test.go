//go:build interop

package interop_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// jsDir is interop/js: the relying parties written in JavaScript, with
// their dependencies pinned in its package-lock.json. `npm ci` there (CI
// runs it) installs them; the tests never download anything.
func jsDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "interop", "js"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@auth", "core", "package.json")); err != nil {
		t.Fatalf("interop/js has no node_modules: run `npm ci` in %s first (.ci/run does)", dir)
	}
	return dir
}

// nodeBinary returns $NSAUTH_NODE_BIN or node on the PATH; a missing node
// fails the test, as a missing Hydra does.
func nodeBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NSAUTH_NODE_BIN"); p != "" {
		return p
	}
	p, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is required for the JavaScript relying parties (Debian's nodejs, or set NSAUTH_NODE_BIN)")
	}
	return p
}

// nodeProcess is a running JavaScript program from interop/js.
type nodeProcess struct {
	// Lines receives its standard output, line by line; closed when it
	// exits.
	Lines <-chan string
	// Stderr is its standard error so far.
	Stderr *lockedBuffer
	// Stdin writes to its standard input.
	Stdin io.WriteCloser
}

// startNode runs interop/js/script with exactly env (plus PATH) and stops
// it when the test ends.
func startNode(t *testing.T, script string, env map[string]string) *nodeProcess {
	t.Helper()
	dir := jsDir(t)
	cmd := exec.Command(nodeBinary(t), filepath.Join(dir, script))
	cmd.Dir = dir
	cmd.Env = append(environ(env), "PATH="+os.Getenv("PATH"))
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node %s: %v", script, err)
	}
	lines := make(chan string, 64)
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_ = cmd.Wait() // after the pipe is read to its end
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		go func() {
			for range lines { // nobody reads any more: let the reader finish
			}
		}()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("%s's standard error:\n%s", script, tail(stderr.String(), 40))
		}
	})
	return &nodeProcess{Lines: lines, Stderr: stderr, Stdin: stdin}
}

// waitLine returns the first line of p's output with prefix, failing after
// timeout or when p exits first. Lines before it are dropped.
func (p *nodeProcess) waitLine(t *testing.T, ctx context.Context, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-p.Lines:
			if !ok {
				t.Fatalf("the program ended before printing %q:\n%s", prefix, tail(p.Stderr.String(), 40))
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-deadline:
			t.Fatalf("no line %q within %v:\n%s", prefix, timeout, tail(p.Stderr.String(), 40))
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}
