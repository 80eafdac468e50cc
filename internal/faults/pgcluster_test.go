//go:build soak

package faults_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/servetest"
)

// pgCluster is a PostgreSQL cluster of the test's own, in a temporary
// directory on a free port, which the test may restart without touching
// the machine's PostgreSQL or anyone else's connections.
type pgCluster struct {
	bin, data, port string
	runAs           []string // "runuser -u postgres --" when the test runs as root
	logFile         string
}

// startPGCluster makes and starts a private cluster with Debian's
// PostgreSQL binaries (/usr/lib/postgresql/*/bin). Without them the test
// skips, or fails when CI=true.
func startPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the soak needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin/initdb; Debian's postgresql package)")
		}
		t.Skip("no /usr/lib/postgresql/*/bin/initdb (Debian's postgresql package): the soak needs a private PostgreSQL cluster")
	}
	slices.SortFunc(matches, func(a, b string) int { return versionOf(b) - versionOf(a) }) // newest first
	c := &pgCluster{bin: filepath.Dir(matches[0])}
	dir, err := os.MkdirTemp("", "nsauth-soak-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	c.data = filepath.Join(dir, "data")
	c.logFile = filepath.Join(dir, "postgres.log")
	if os.Geteuid() == 0 {
		// initdb refuses root: the cluster belongs to the postgres user.
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, the cluster needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	c.port = portOf(t, servetest.FreeAddr(t, "127.0.0.1"))
	if out, err := c.run("initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", c.port, dir)
	if out, err := c.run("pg_ctl", "-D", c.data, "-l", c.logFile, "-o", opts, "-w", "-t", "60", "start"); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop") })
	db, err := sql.Open("pgx", c.url("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE DATABASE nsauth`); err != nil {
		t.Fatalf("creating the soak's database: %v", err)
	}
	return c
}

// url is a URL of database name in the cluster.
func (c *pgCluster) url(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%s/%s?sslmode=disable", c.port, name)
}

// restart stops the cluster (fast: every session is ended, the LISTEN
// channels with them) and starts it again, and returns how long it took.
func (c *pgCluster) restart(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	// -l again: without it the new postmaster would hold pg_ctl's output
	// pipe open, and the wait for that output would never end.
	out, err := c.runContext(ctx, "pg_ctl", "-D", c.data, "-l", c.logFile, "-m", "fast", "-w", "-t", "60", "restart")
	if err != nil {
		return 0, fmt.Errorf("pg_ctl restart: %w\n%s", err, out)
	}
	return time.Since(start), nil
}

func (c *pgCluster) run(tool string, args ...string) ([]byte, error) {
	return c.runContext(context.Background(), tool, args...)
}

func (c *pgCluster) runContext(ctx context.Context, tool string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, c.runAs...), filepath.Join(c.bin, tool)), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

func versionOf(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}
