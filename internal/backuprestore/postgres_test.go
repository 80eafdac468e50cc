package backuprestore_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"

	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// pgTools returns a PATH with PostgreSQL's client programs first (the
// newest of Debian's /usr/lib/postgresql/*/bin, else PATH as it is). It
// skips the test when pg_dump or pg_restore is missing outside CI, and
// fails it in CI.
func pgTools(t *testing.T) string {
	t.Helper()
	path := os.Getenv("PATH")
	if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(dirs) > 0 {
		sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) < versionOf(dirs[j]) })
		path = dirs[len(dirs)-1] + string(os.PathListSeparator) + path
	}
	for _, prog := range []string{"pg_dump", "pg_restore"} {
		if _, err := lookPathIn(prog, path); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI (Debian's postgresql-client): %v", prog, err)
			}
			t.Skipf("skipping: %s not found (install postgresql-client; in CI this fails)", prog)
		}
	}
	return path
}

func versionOf(binDir string) int {
	n := 0
	for _, c := range filepath.Base(filepath.Dir(binDir)) {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func lookPathIn(prog, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, prog)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(prog)
}

// adviceLine returns the line of a command's advice that starts with
// prog, trimmed.
func adviceLine(t *testing.T, said, prog string) string {
	t.Helper()
	for _, line := range strings.Split(said, "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, prog+" ") {
			return l
		}
	}
	t.Fatalf("no %s command in:\n%s", prog, said)
	return ""
}

// TestPgDumpRestoresIntoANewDatabase: on PostgreSQL, `nsauth-server backup`
// names the pg_dump command and `restore` the pg_restore one; run as
// given, they copy a live nsauth schema (a server serving it) into a new
// database, where a server started with the same secret key serves the
// same sessions: a login, a refresh and CheckToken of a token from before
// the dump, and a session revoked before it stays revoked.
func TestPgDumpRestoresIntoANewDatabase(t *testing.T) {
	t.Parallel()
	path := pgTools(t)
	liveURL := storetest.PostgresURL(t)
	key := seal.GenerateKey()
	a := startNode(t, map[string]string{"NSAUTH_DATABASE_URL": liveURL, "NSAUTH_SECRET_KEY": key}, 0)
	before := a.login(t, "admin", adminPassword)
	revoked := a.login(t, "admin", adminPassword)
	if err := a.revoke(revoked.refresh); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "CheckToken of a revoked session before the dump", a.check(revoked.access), connect.CodeUnauthenticated)

	file := filepath.Join(t.TempDir(), "nsauth.dump")
	code, out, errOut := runCommand(t, map[string]string{"NSAUTH_DATABASE_URL": liveURL}, "backup", file)
	if code == 0 {
		t.Fatalf("backup on PostgreSQL succeeded; want the pg_dump advice:\n%s", out)
	}
	dump := adviceLine(t, out+errOut, "pg_dump")
	runShell(t, path, dump)
	if fi, err := os.Stat(file); err != nil || fi.Size() == 0 {
		t.Fatalf("%s wrote no dump: %v", dump, err)
	}

	restoredURL := newDatabase(t, liveURL)
	code, out, errOut = runCommand(t, map[string]string{"NSAUTH_DATABASE_URL": restoredURL}, "restore", file)
	if code == 0 {
		t.Fatalf("restore on PostgreSQL succeeded; want the pg_restore advice:\n%s", out)
	}
	runShell(t, path, adviceLine(t, out+errOut, "pg_restore"))
	t.Logf("ran: %s\nran: %s", dump, adviceLine(t, out+errOut, "pg_restore"))

	if code := a.srv.Stop(t); code != 0 {
		t.Fatalf("the server dumped exited with %d", code)
	}
	b := startNode(t, map[string]string{"NSAUTH_DATABASE_URL": restoredURL, "NSAUTH_SECRET_KEY": key}, a.port)
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"the administrator logs in", func(t *testing.T) {
			if err := b.check(b.login(t, "admin", adminPassword).access); err != nil {
				t.Error(err)
			}
		}},
		{"a session from before the dump checks and refreshes", func(t *testing.T) {
			if err := b.check(before.access); err != nil {
				t.Errorf("CheckToken: %v", err)
			}
			next, err := b.refresh(before.refresh)
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if err := b.check(next.access); err != nil {
				t.Errorf("CheckToken after the refresh: %v", err)
			}
		}},
		{"a session revoked before the dump stays revoked", func(t *testing.T) {
			wantCode(t, "refresh", errOf(b.refresh(revoked.refresh)), connect.CodeUnauthenticated)
			wantCode(t, "CheckToken", b.check(revoked.access), connect.CodeUnauthenticated)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.check)
	}
}

// runShell runs a command line as an operator would paste it.
func runShell(t *testing.T, path, line string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", line)
	cmd.Env = append(os.Environ(), "PATH="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
}

// newDatabase makes an empty database beside the one liveURL names,
// dropped when the test ends, and returns liveURL pointed at it (its
// search_path kept: the dump makes the schema).
func newDatabase(t *testing.T, liveURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := url.Parse(liveURL)
	if err != nil {
		t.Fatal(err)
	}
	admin := *u
	admin.RawQuery = ""
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	name := "nsauth_restore_" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(store.RandomToken(9)))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating a database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin.String())
		if err != nil {
			t.Logf("dropping database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dropping database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
