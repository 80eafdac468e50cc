package store

import (
	"context"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// postgresAtVersion makes a PostgreSQL schema of its own, migrated to
// version and then given the statements then, dropped when the test ends,
// and returns a URL that selects it. It skips the test when PostgreSQL is
// unreachable, except in CI (as package storetest, which this package's
// own tests cannot import).
func postgresAtVersion(t *testing.T, version int, then ...string) string {
	t.Helper()
	ctx := context.Background()
	base := os.Getenv("NSAUTH_TEST_DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("skipping: PostgreSQL unreachable (%v)", err)
	}
	defer conn.Close(ctx)
	schema := "nsauth_test_" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(RandomToken(9)))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	ms, err := migrations("postgres")
	if err != nil || len(ms) <= version {
		t.Fatalf("migrations: %v", err)
	}
	stmts := []string{"SET search_path TO " + schema, `CREATE TABLE nsauth_schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`}
	for _, m := range ms[:version] {
		stmts = append(stmts, m.sql, `INSERT INTO nsauth_schema_migrations (version, applied_at) VALUES (`+strconv.Itoa(m.version)+`, 0)`)
	}
	for _, q := range append(stmts, then...) {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestMigration0014MakesTheBrokerAnApp: the native client registered
// before apps existed (the broker's nsauth-cli) becomes a native,
// first-party app with the device flow and takes its id as its name
// (unless a machine client has that name); machine clients stay as they
// were.
func TestMigration0014MakesTheBrokerAnApp(t *testing.T) {
	t.Parallel()
	before := []string{
		`INSERT INTO nsauth_clients (id, secret_hash, redirect_uris, created_at) VALUES ('nsauth-cli', '\x0102', '[]', 1000)`,
		`INSERT INTO nsauth_clients (id, secret_hash, redirect_uris, created_at) VALUES ('legacy', '\x0102', '["http://127.0.0.1/cb"]', 1000)`,
		`INSERT INTO nsauth_clients (id, secret_hash, redirect_uris, created_at, kind, name, updated_at) VALUES ('m-abc', '\x0304', '[]', 1000, 'machine', 'legacy', 1000)`,
	}
	open := map[string]func(t *testing.T) (*Store, error){
		"sqlite": func(t *testing.T) (*Store, error) {
			dir := t.TempDir()
			var stmts []string
			for _, q := range before {
				stmts = append(stmts, strings.NewReplacer(`'\x0102'`, `x'0102'`, `'\x0304'`, `x'0304'`).Replace(q))
			}
			sqliteAtVersion(t, dir, 13, stmts...)
			return OpenSQLite(context.Background(), dir, Options{})
		},
		"postgres": func(t *testing.T) (*Store, error) {
			return OpenPostgres(context.Background(), postgresAtVersion(t, 13, before...), Options{})
		},
	}
	for name, openAt13 := range open {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, err := openAt13(t)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			cli, err := s.ClientByID(ctx, "nsauth-cli")
			if err != nil {
				t.Fatal(err)
			}
			if !cli.Native || cli.Public || cli.ThirdParty || !reflect.DeepEqual(cli.GrantTypes, BrokerGrantTypes) || cli.PostLogoutRedirectURIs != nil ||
				cli.UpdatedAt.UnixMilli() != 1000 || !reflect.DeepEqual(cli.SecretHash, []byte{1, 2}) {
				t.Errorf("nsauth-cli after 0014: %+v", cli)
			}
			names := map[string]string{}
			for _, id := range []string{"nsauth-cli", "legacy", "m-abc"} {
				var name *string
				if err := s.db.QueryRow(ctx, s.db, `SELECT name FROM nsauth_clients WHERE id = ?`, id).Scan(&name); err != nil {
					t.Fatal(err)
				}
				if name != nil {
					names[id] = *name
				}
			}
			if !reflect.DeepEqual(names, map[string]string{"nsauth-cli": "nsauth-cli", "m-abc": "legacy"}) {
				t.Errorf("names after 0014: %v (a native client whose id a machine client has as name keeps none)", names)
			}
			m, err := s.MachineClientByName(ctx, "legacy")
			if err != nil || m.ID != "m-abc" {
				t.Errorf("the machine client after 0014: %+v, %v", m, err)
			}
			apps, err := s.ListApps(ctx)
			if err != nil || len(apps) != 2 || apps[0].ID != "legacy" || apps[0].RedirectURIs[0] != "http://127.0.0.1/cb" {
				t.Errorf("ListApps = %+v, %v", apps, err)
			}
		})
	}
}
