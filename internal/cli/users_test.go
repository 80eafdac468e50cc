package cli_test

import (
	"context"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

type usersResult struct {
	code        int
	out, errOut string
}

// runServerCommand runs an nsauth-server command (users, clients,
// federation, audit: args[0]) with exactly env as its environment and
// stdin (nil: nothing) as its input.
func runServerCommand(env map[string]string, stdin io.Reader, args ...string) usersResult {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	out, errOut := &servetest.Buffer{}, &servetest.Buffer{}
	app := &cli.App{In: stdin, Out: out, ErrOut: errOut, Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Now: time.Now}
	code := cli.Run(context.Background(), app, args, servercmd.Commands...)
	return usersResult{code, out.String(), errOut.String()}
}

func runUsers(env map[string]string, stdin io.Reader, args ...string) usersResult {
	return runServerCommand(env, stdin, append([]string{"users"}, args...)...)
}

// usersEnv prepares a store of backend b and returns the environment that
// points `nsauth users` at it, and a handle to check it.
func usersEnv(t *testing.T, b storetest.Backend) (map[string]string, *store.Store) {
	t.Helper()
	if b.Name == "postgres" {
		u := storetest.PostgresURL(t)
		st, err := store.OpenPostgres(context.Background(), u, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return map[string]string{"NSAUTH_DATABASE_URL": u}, st
	}
	dir := filepath.Join(t.TempDir(), "data")
	st, err := store.OpenSQLite(context.Background(), dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return map[string]string{"NSAUTH_DATA_DIR": dir}, st
}

func TestUsersCommand(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		ok := func(r usersResult, what string) usersResult {
			t.Helper()
			if r.code != 0 {
				t.Fatalf("%s: exit %d\n%s", what, r.code, r.errOut)
			}
			return r
		}
		ok(runUsers(env, strings.NewReader("first-password\n"), "add", "Alice", "--name", "Alice Liddell", "--email", "alice@example.com"), "add")
		u, err := st.UserByUsername(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		if good, _ := password.Verify("first-password", u.PasswordHash); !good || u.Name != "Alice Liddell" || u.Email != "alice@example.com" {
			t.Fatalf("stored user = %+v", u)
		}
		list := ok(runUsers(env, nil, "list"), "list")
		if !strings.Contains(list.out, "USERNAME") || !regexpLine(list.out, "alice", "enabled", "Alice Liddell", "alice@example.com") {
			t.Fatalf("list:\n%s", list.out)
		}

		ok(runUsers(env, strings.NewReader("second-password\r\n"), "passwd", "alice"), "passwd")
		u, _ = st.UserByUsername(context.Background(), "alice")
		if good, _ := password.Verify("second-password", u.PasswordHash); !good {
			t.Fatal("passwd did not change the password (or kept the CR)")
		}

		ok(runUsers(env, nil, "disable", "alice"), "disable")
		if !regexpLine(ok(runUsers(env, nil, "list"), "list").out, "alice", "disabled") {
			t.Fatal("list does not show alice disabled")
		}
		ok(runUsers(env, nil, "enable", "ALICE"), "enable")
		if !regexpLine(ok(runUsers(env, nil, "list"), "list").out, "alice", "enabled") {
			t.Fatal("list does not show alice enabled")
		}
		// unlock clears the account's counters, and takes the account's
		// attempts off the addresses' counters, and only the account's.
		for _, c := range []store.AttemptCounter{{Key: "user:alice", Account: "alice"}, {Key: "dev:d1", Account: "alice"}, {Key: "user:bob", Account: "bob"},
			{Key: "addr:192.0.2.1"}, {Key: "addr:192.0.2.2", At: "alice"}, {Key: "addr:192.0.2.3", At: "bob"}} {
			if _, err := st.ReserveLoginAttempt(context.Background(), []store.AttemptCounter{c}, 5, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		unlocked := ok(runUsers(env, nil, "unlock", "ALICE"), "unlock")
		if !strings.Contains(unlocked.errOut, `Unlocked "alice": cleared 2 login-attempt counter(s) and took its failed sign-ins off 1 client address(es).`) {
			t.Fatalf("unlock said %q", unlocked.errOut)
		}
		for key, want := range map[string]int{"user:alice": 0, "dev:d1": 0, "user:bob": 1, "addr:192.0.2.1": 1, "addr:192.0.2.2": 0, "addr:192.0.2.3": 1} {
			if n, _ := st.LoginAttempts(context.Background(), key, time.Minute); n != want {
				t.Errorf("after unlock, counter %s = %d, want %d", key, n, want)
			}
		}
		ok(runUsers(env, nil, "delete", "alice"), "delete")
		if strings.Contains(ok(runUsers(env, nil, "list"), "list").out, "alice") {
			t.Fatal("alice is still listed")
		}

		for _, tc := range []struct {
			name  string
			stdin string
			args  []string
			code  int
			want  string
		}{
			{"password on the command line", "", []string{"add", "bob", "hunter2hunter2"}, cli.ExitUsage, "exactly one argument"},
			{"no password", "", []string{"add", "bob"}, cli.ExitFailure, "no password"},
			{"short password", "short\n", []string{"add", "bob"}, cli.ExitFailure, "at least 8"},
			{"bad username", "long-enough\n", []string{"add", "bad name"}, cli.ExitUsage, "may contain only"},
			{"unknown user", "long-enough\n", []string{"passwd", "nobody"}, cli.ExitFailure, `no user "nobody"`},
			{"delete unknown", "", []string{"delete", "nobody"}, cli.ExitFailure, `no user "nobody"`},
			{"disable unknown", "", []string{"disable", "nobody"}, cli.ExitFailure, `no user "nobody"`},
			{"unlock unknown", "", []string{"unlock", "nobody"}, cli.ExitFailure, `no user "nobody"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := runUsers(env, strings.NewReader(tc.stdin), tc.args...)
				if r.code != tc.code || !strings.Contains(r.errOut, tc.want) {
					t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", r.code, r.errOut, tc.code, tc.want)
				}
				if strings.Contains(r.errOut+r.out, "hunter2") || (tc.stdin != "" && strings.Contains(r.errOut+r.out, strings.TrimSpace(tc.stdin))) {
					t.Fatal("output echoes the password")
				}
			})
		}
		ok(runUsers(env, strings.NewReader("carol-password\n"), "add", "carol"), "add carol")
		if r := runUsers(env, strings.NewReader("carol-password\n"), "add", "carol"); r.code != cli.ExitFailure || !strings.Contains(r.errOut, "already exists") {
			t.Fatalf("duplicate add: exit %d %q", r.code, r.errOut)
		}
	})
}

func TestUsersNeedsAStore(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "missing")
	r := runUsers(map[string]string{"NSAUTH_DATA_DIR": dir}, nil, "list")
	if r.code != cli.ExitFailure || !strings.Contains(r.errOut, "no nsauth data in "+dir) {
		t.Fatalf("exit %d: %s", r.code, r.errOut)
	}
	r = runUsers(map[string]string{"NSAUTH_DATABASE_URL": "mysql://u:hunter2@db/x"}, nil, "list")
	if r.code == 0 || strings.Contains(r.errOut, "hunter2") {
		t.Fatalf("bad database URL: exit %d: %s", r.code, r.errOut)
	}
}

// TestUsersPasswdPrompt types the password into a pseudo-terminal: it is
// asked twice, and never echoed.
func TestUsersPasswdPrompt(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no pty")
	}
	env, st := usersEnv(t, storetest.Backends()[0])
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	var mu sync.Mutex
	var screen strings.Builder
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	errOut := &servetest.Buffer{}
	done := make(chan int, 1)
	go func() {
		app := &cli.App{In: tty, Out: io.Discard, ErrOut: errOut, Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Now: time.Now}
		done <- cli.Run(context.Background(), app, []string{"users", "add", "dave"}, servercmd.Commands...)
	}()
	waitFor := func(s string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(errOut.String(), s) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q prompt; stderr:\n%s", s, errOut.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("New password: ")
	io.WriteString(ptmx, "typed-secret-123\r")
	waitFor("Repeat it: ")
	io.WriteString(ptmx, "typed-secret-123\r")
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("users add did not finish")
	}
	u, err := st.UserByUsername(context.Background(), "dave")
	if err != nil {
		t.Fatal(err)
	}
	if good, _ := password.Verify("typed-secret-123", u.PasswordHash); !good {
		t.Fatal("the typed password was not stored")
	}
	// Type a marker now that the prompt is over and echo is back on: the
	// terminal echoes it after anything it echoed before, so once it is on
	// the screen, so is any echo of the password.
	if _, err := io.WriteString(ptmx, "echo-marker\r"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		marked := strings.Contains(screen.String(), "echo-marker")
		mu.Unlock()
		if marked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the marker typed after the prompt was not echoed: is echo still off?")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(screen.String(), "typed-secret") {
		t.Fatalf("the password was echoed on the terminal: %q", screen.String())
	}
}

// regexpLine reports whether one line of out contains all the words, in
// order.
func regexpLine(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, w := range words {
			i := strings.Index(rest, w)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(w):]
		}
		if ok {
			return true
		}
	}
	return false
}
