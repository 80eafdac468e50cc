package faults_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// buildNsauth builds cmd/nsauth-server into a temporary directory, without the
// race detector whatever the test binary was built with: the replicas are
// the system under test, not the code under race detection, and a race
// build would make each refresh several times slower.
func buildNsauth(t *testing.T, tags ...string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build nsauth: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "nsauth-server")
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	out, err := exec.Command(goTool, append(args, "github.com/nsauth/nsauth/cmd/nsauth-server")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/nsauth-server: %v\n%s", err, out)
	}
	return bin
}

// replica is one `nsauth serve` process at a fixed address, which the test
// may kill and start again there. Each incarnation logs to its own file.
type replica struct {
	name   string
	bin    string
	addr   string
	url    string
	args   []string
	env    []string
	logDir string

	// down is true from just before a kill until the restarted process is
	// ready; epoch counts those changes, so a call can tell whether its
	// replica went down while it was in flight.
	down  atomic.Bool
	epoch atomic.Int64

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
	logs   []string
}

// start runs a new incarnation and waits until /readyz answers 200.
func (r *replica) start(ctx context.Context) error {
	r.mu.Lock()
	r.starts++
	logPath := filepath.Join(r.logDir, fmt.Sprintf("%s-%d.log", r.name, r.starts))
	r.logs = append(r.logs, logPath)
	r.mu.Unlock()
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.bin, append([]string{"serve"}, r.args...)...)
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("starting replica %s: %w", r.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(exited)
	}()
	r.mu.Lock()
	r.cmd, r.exited = cmd, exited
	r.mu.Unlock()

	probe := &http.Client{Timeout: time.Second}
	for {
		resp, err := probe.Get(r.url + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				r.down.Store(false)
				r.epoch.Add(1)
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("replica %s exited before it was ready (log: %s)", r.name, logPath)
		case <-ctx.Done():
			return fmt.Errorf("replica %s not ready: %w (log: %s)", r.name, ctx.Err(), logPath)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (r *replica) kill() error {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	r.down.Store(true)
	r.epoch.Add(1)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing replica %s: %w", r.name, err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("replica %s still running 10 s after SIGKILL", r.name)
	}
}

// running reports whether the current incarnation has not exited.
func (r *replica) running() bool {
	r.mu.Lock()
	exited := r.exited
	r.mu.Unlock()
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// stop ends the current incarnation with SIGTERM, as the test's cleanup.
func (r *replica) stop() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// rssKiB reads the current incarnation's resident set size.
func (r *replica) rssKiB() (int64, error) {
	r.mu.Lock()
	pid := r.cmd.Process.Pid
	r.mu.Unlock()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

// logSummary describes the incarnations' JSON logs at levels WARN and
// ERROR: how many lines carry each message, and the first few lines in
// full that are errors or refused grants.
func (r *replica) logSummary(errorLines int) (string, error) {
	r.mu.Lock()
	logs := append([]string(nil), r.logs...)
	r.mu.Unlock()
	counts := map[string]int{}
	var errs []string
	for i, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		for line := range strings.Lines(string(b)) {
			var entry struct{ Level, Msg string }
			if json.Unmarshal([]byte(line), &entry) != nil || (entry.Level != "WARN" && entry.Level != "ERROR") {
				continue
			}
			counts[entry.Level+" "+entry.Msg]++
			// Errors and refusals of a grant are what explain a lost session.
			if (entry.Level == "ERROR" || strings.Contains(line, "invalid_grant")) && len(errs) < errorLines {
				errs = append(errs, fmt.Sprintf("  [%s-%d] %s", r.name, i+1, line))
			}
		}
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, "  %6d × %s\n", counts[k], k)
	}
	b.WriteString(strings.Join(errs, ""))
	return b.String(), nil
}

// countInLogs counts the lines of every incarnation's log that contain s.
func (r *replica) countInLogs(s string) (int, error) {
	r.mu.Lock()
	logs := append([]string(nil), r.logs...)
	r.mu.Unlock()
	n := 0
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, err
		}
		for line := range strings.Lines(string(b)) {
			if strings.Contains(line, s) {
				n++
			}
		}
	}
	return n, nil
}

// finishSessions gives every session that is not lost one more refresh
// and CheckToken, on its home replica, with both replicas and the database
// back: every chain must continue.
func finishSessions(ctx context.Context, sessions []*session) {
	for _, s := range sessions {
		if s.lost != "" {
			continue
		}
		fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
		if s.refresh(fctx) && !s.check(fctx) {
			s.lost = "the last CheckToken did not succeed within 30 s"
		}
		fcancel()
	}
}

// countReuses counts, per replica, the reuse detections it logged. Each is
// false: a session presents a used refresh token only to retry a call
// whose answer it never got.
func countReuses(t *testing.T, replicas []*replica) []int {
	t.Helper()
	reuses := make([]int, len(replicas))
	for i, r := range replicas {
		n, err := r.countInLogs(reuseWarning)
		if err != nil {
			t.Errorf("reading replica %s's logs: %v", r.name, err)
		}
		reuses[i] = n
	}
	return reuses
}

// runSettings is a run's length, from the Go duration in durationEnv
// (def when unset; at least least), and its random seed, from seedEnv or
// the clock, logged so that a run's random pauses can be repeated. Where each kill lands in a refresh is up to the scheduler.
func runSettings(t *testing.T, durationEnv string, def, least time.Duration, seedEnv string) (time.Duration, uint64) {
	t.Helper()
	duration := def
	if v := os.Getenv(durationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < least {
			t.Fatalf("%s=%q: want a Go duration of at least %v", durationEnv, v, least)
		}
		duration = d
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(seedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: want an unsigned integer", seedEnv, v)
		}
	}
	t.Logf("duration %v, seed %d (%s=%d repeats the random pauses)", duration, seed, seedEnv, seed)
	return duration, seed
}

// startReplicas starts every replica at once, as replicas deployed
// together do (on an empty schema they must agree on the migrations and
// the first key), each within a minute, and stops them when t ends.
func startReplicas(t *testing.T, ctx context.Context, replicas []*replica) {
	t.Helper()
	t.Cleanup(func() {
		for _, r := range replicas {
			r.stop()
		}
	})
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for i, r := range replicas {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			errs[i] = r.start(sctx)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
