package core

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// openSQLite opens a SQLite pool of conns connections that waits busy for
// a lock at most busy.
func openSQLite(t *testing.T, conns int, busy time.Duration) *DB {
	t.Helper()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.Itoa(int(busy.Milliseconds()))+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Set("_txlock", "immediate")
	dsn := (&url.URL{Scheme: "file", OmitHost: true, Path: filepath.Join(t.TempDir(), "t.db"), RawQuery: q.Encode()}).String()
	sqlDB, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqlDB.Close() })
	sqlDB.SetMaxOpenConns(conns)
	db := New(sqlDB, SQLite, nil)
	if _, err := db.Exec(context.Background(), db, `CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestPreparedOnce: a query run again and again, on the pool and in
// transactions, is prepared once for the pool and kept.
func TestPreparedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openSQLite(t, 4, 5*time.Second)
	for i := range 20 {
		if _, err := db.Exec(ctx, db, `INSERT INTO t (k, v) VALUES (?, ?)`, "k"+strconv.Itoa(i), i); err != nil {
			t.Fatal(err)
		}
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			var v int
			return db.QueryRow(ctx, tx, `SELECT v FROM t WHERE k = ?`, "k"+strconv.Itoa(i)).Scan(&v)
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitPrepared(t, db, `SELECT v FROM t WHERE k = ?`)
	var v int
	if err := db.QueryRow(ctx, db, `SELECT v FROM t WHERE k = ?`, "k7").Scan(&v); err != nil || v != 7 {
		t.Fatalf("read %d, %v; want 7", v, err)
	}
	if n := db.nstmts.Load(); n != 3 { // CREATE TABLE, INSERT, SELECT
		t.Errorf("%d statements prepared, want 3", n)
	}
}

// waitPrepared waits for the goroutine of querier to have prepared query.
func waitPrepared(t *testing.T, db *DB, query string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, ok := db.stmts.Load(query); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q was never prepared", query)
		}
	}
}

// TestTransactionNeverWaitsToPrepare: a transaction that holds the write
// lock runs a statement not prepared yet while every other connection of
// the pool waits for that lock. Preparing it for the pool would wait for a
// connection that waits for the transaction: the others' BEGIN would give
// up (SQLITE_BUSY) before it could go on. The statement runs unprepared.
func TestTransactionNeverWaitsToPrepare(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openSQLite(t, 2, 2*time.Second)
	held := make(chan struct{})
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.InTx(ctx, func(tx *sql.Tx) error {
			close(held)
			<-release
			_, err := db.Exec(ctx, tx, `INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING`, "first", 1)
			return err
		})
	}()
	<-held
	second := make(chan error, 1)
	go func() {
		second <- db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := db.Exec(ctx, tx, `UPDATE t SET v = v + 1 WHERE k = ?`, "first")
			return err
		})
	}()
	// The second transaction has the pool's other connection and waits
	// for the lock.
	for db.SQL.Stats().InUse < 2 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("the transaction holding the lock: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the transaction waiting for the lock: %v", err)
	}
}

// TestCloseWaitsForPreparations: statements first seen in transactions
// are prepared by goroutines; Close ends them before it closes the pool,
// so that nothing opens a connection (and the database's files) after it
// returns (a test's temporary directory could not be removed so).
func TestCloseWaitsForPreparations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openSQLite(t, 4, 5*time.Second)
	for i := range 50 {
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := db.Exec(ctx, tx, `UPDATE t SET v = `+strconv.Itoa(i)+` WHERE k = ?`, "x")
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	pending := 0
	db.preparing.Range(func(any, any) bool { pending++; return true })
	if pending != 0 {
		t.Errorf("%d statements still being prepared after Close", pending)
	}
	if err := db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := db.Exec(ctx, tx, `UPDATE t SET v = 0 WHERE k = ?`, "y")
		return err
	}); err == nil {
		t.Error("a closed pool ran a transaction")
	}
}
