package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestIsUnavailable: the one rule of a database that cannot be reached or
// cannot write now recognises, as the drivers return them, a connection
// refused, the store's connections cut (a proxy between it and
// PostgreSQL), a connection PostgreSQL terminates as it does when it shuts
// down (57P01), a full disk, and the same wrapped; and nothing else: not a
// constraint violation, a syntax error, a missing row, nor the caller's
// own cancellation.
func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sqliteFull, sqliteUnique := sqliteErrors(t)

	// Nothing listens: a port that was free a moment ago.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	_ = ln.Close()
	refusedDB, err := sql.Open("pgx", "postgres://postgres@"+closedAddr+"/test?sslmode=disable&connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = refusedDB.Close() })
	refused := refusedDB.PingContext(ctx)

	// A store whose connections are cut, and stay cut.
	u, proxy := storetest.PostgresBehindProxy(t)
	st, err := store.OpenPostgres(ctx, u, store.Options{Keyring: storetest.Keyring()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	_, notFound := st.UserByUsername(ctx, "nobody")
	proxy.Cut()
	_, cut := st.UserByUsername(ctx, "nobody")

	terminated, syntax := postgresErrors(t)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, canceledErr := st.UserByUsername(canceled, "nobody")

	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"the store's connections cut", cut, true},
		{"connection terminated by PostgreSQL (57P01)", terminated, true},
		{"PostgreSQL cannot_connect_now (57P03)", &pgconn.PgError{Code: "57P03"}, true},
		{"PostgreSQL connection_failure (08006), wrapped", fmt.Errorf("reading user: %w", &pgconn.PgError{Code: "08006"}), true},
		{"unexpected EOF, wrapped", fmt.Errorf("reading client: %w", io.ErrUnexpectedEOF), true},
		{"disk full", sqliteFull, true},
		{"nil", nil, false},
		{"not found", notFound, false},
		{"SQLite unique violation", sqliteUnique, false},
		{"PostgreSQL unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"PostgreSQL syntax error", syntax, false},
		{"PostgreSQL query_canceled (57014)", &pgconn.PgError{Code: "57014"}, false},
		{"the caller's cancellation", canceledErr, false},
		{"a message that says refused", errors.New("connection refused"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if (tc.err == nil) != (tc.name == "nil") {
				t.Fatalf("the case's error is %v", tc.err)
			}
			if got := store.IsUnavailable(tc.err); got != tc.want {
				t.Errorf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// postgresErrors returns what pgx returns on a connection that PostgreSQL
// terminated (pg_terminate_backend: 57P01, as at a shutdown) and for a
// syntax error.
func postgresErrors(t *testing.T) (terminated, syntax error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := storetest.PostgresURL(t)
	victim, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = victim.Close(context.Background()) })
	killer, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(ctx)
	_, syntax = victim.Exec(ctx, "SELEC 1")
	if _, err := killer.Exec(ctx, "SELECT pg_terminate_backend($1)", victim.PgConn().PID()); err != nil {
		t.Fatal(err)
	}
	_, terminated = victim.Exec(ctx, "SELECT 1")
	if terminated == nil {
		t.Fatal("a terminated connection still answered")
	}
	return terminated, syntax
}

// TestWatchOutage: store calls under a context of WatchOutage report an
// unavailable database to its Outage, and nothing else: a missing row is
// no outage, and a call on another context reports to no one.
func TestWatchOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, proxy := storetest.PostgresBehindProxy(t)
	st, err := store.OpenPostgres(ctx, u, store.Options{Keyring: storetest.Keyring()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })

	wctx, outage := store.WatchOutage(ctx)
	if _, err := st.UserByUsername(wctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UserByUsername: %v, want not found", err)
	}
	if err := outage.Err(); err != nil {
		t.Fatalf("a missing row is an outage: %v", err)
	}
	proxy.Cut()
	if _, err := st.UserByUsername(ctx, "nobody"); err == nil {
		t.Fatal("a cut store answered")
	}
	if err := outage.Err(); err != nil {
		t.Fatalf("a call on another context reported to the outage: %v", err)
	}
	for _, call := range []struct {
		name string
		f    func(context.Context) error
	}{
		{"a read", func(ctx context.Context) error { _, err := st.UserByUsername(ctx, "nobody"); return err }},
		{"a write", func(ctx context.Context) error {
			return st.CreateUser(ctx, &store.User{Username: "outage-user", PasswordHash: "x"})
		}},
		{"a list", func(ctx context.Context) error { _, err := st.ListUsers(ctx); return err }},
	} {
		wctx, outage := store.WatchOutage(ctx)
		err := call.f(wctx)
		if got := outage.Err(); got == nil || !store.IsUnavailable(got) {
			t.Errorf("%s on a cut store: %v; the outage saw %v, want it", call.name, err, got)
		}
	}
	proxy.Restore()
}

// TestWatchOutageSeesAReadLostInFlight: a connection lost while a query is
// in flight fails only when its rows are read (database/sql's Scan, or
// Rows.Err), and that failure too reaches the Outage: the soak saw the
// token endpoint answer 500, not 503, when PostgreSQL restarted under a
// client lookup. The query is held in flight by a lock taken outside the
// store, and the proxy between the store and PostgreSQL is cut while it
// waits.
func TestWatchOutageSeesAReadLostInFlight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		table string // what the read waits for
		read  func(context.Context, *store.Store) error
	}{
		{"one row", "nsauth_users", func(ctx context.Context, st *store.Store) error {
			_, err := st.UserByUsername(ctx, "nobody")
			return err
		}},
		{"a list", "nsauth_passkeys", func(ctx context.Context, st *store.Store) error {
			_, err := st.PasskeysByUser(ctx, "nobody")
			return err
		}},
		{"a list without arguments", "nsauth_users", func(ctx context.Context, st *store.Store) error {
			_, err := st.ListUsers(ctx)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			direct := storetest.PostgresURL(t)
			pu, err := url.Parse(direct)
			if err != nil {
				t.Fatal(err)
			}
			schema := pu.Query().Get("search_path")
			proxy := storetest.StartProxy(t, pu.Host)
			pu.Host = proxy.Addr()
			st, err := store.OpenPostgres(ctx, pu.String(), store.Options{Keyring: storetest.Keyring()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			locker, err := pgx.Connect(ctx, direct)
			if err != nil {
				t.Fatal(err)
			}
			defer locker.Close(context.Background())
			tx, err := locker.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(context.Background()) }()
			table := pgx.Identifier{schema, tc.table}.Sanitize()
			if _, err := tx.Exec(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
				t.Fatal(err)
			}

			wctx, outage := store.WatchOutage(ctx)
			done := make(chan error, 1)
			go func() { done <- tc.read(wctx, st) }()
			// Wait until the read waits for the lock: sent, not answered.
			for waiting := false; !waiting; {
				if err := locker.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
					WHERE relation = $1::regclass AND NOT granted)`, table).Scan(&waiting); err != nil {
					t.Fatal(err)
				}
				if !waiting {
					select {
					case err := <-done:
						t.Fatalf("the read did not wait for the lock: %v", err)
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
			proxy.Cut()
			err = <-done
			if err == nil || !store.IsUnavailable(err) {
				t.Fatalf("a read whose connection was lost in flight: %v, want an unavailable error", err)
			}
			if got := outage.Err(); got == nil {
				t.Fatalf("a read whose connection was lost in flight failed with %v, and the outage saw nothing", err)
			}
		})
	}
}
