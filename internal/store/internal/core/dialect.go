package core

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect holds what differs between the backends. Queries are written
// once, with `?` placeholders and portable SQL (ON CONFLICT, RETURNING).
type Dialect struct {
	// Name is "sqlite" or "postgres".
	Name string
	// numbered rewrites `?` to `$1`, `$2`, … (PostgreSQL).
	numbered bool
	// LockRows is appended to a SELECT that must lock the rows it reads
	// until the transaction ends. SQLite needs none: its transactions hold
	// the database's write lock from BEGIN.
	LockRows string
	// LockName is a statement that takes, until the transaction ends, an
	// exclusive lock named by its one argument (in the current schema),
	// for transactions that must not interleave although no one row
	// stands for what they share. SQLite needs none, as for LockRows.
	LockName string
	// ShareRows is appended to a SELECT whose rows must not change until
	// the transaction ends, while others may read them so too. SQLite
	// needs none, as for LockRows.
	ShareRows string
	// IsUnique recognises a unique-constraint violation.
	IsUnique func(error) bool
}

// SQLite is the dialect of modernc.org/sqlite.
var SQLite = Dialect{
	Name: "sqlite",
	IsUnique: func(err error) bool {
		var se *sqlite.Error
		if !errors.As(err, &se) {
			return false
		}
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
}

// Postgres is the dialect of PostgreSQL through pgx.
var Postgres = Dialect{
	Name:      "postgres",
	numbered:  true,
	LockRows:  " FOR UPDATE",
	LockName:  `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.' || ?))`,
	ShareRows: " FOR SHARE",
	IsUnique: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	},
}

// IsDiskFull recognises a write refused because the disk holding the
// database is full, on either backend: SQLite's SQLITE_FULL (which it
// returns for ENOSPC, extended codes included), PostgreSQL's disk_full
// (SQLSTATE 53100), or ENOSPC itself from a file the process writes.
func IsDiskFull(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "53100" {
		return true
	}
	return errors.Is(err, syscall.ENOSPC)
}

// IsUnavailable recognises an error that says the database cannot be
// reached or cannot write now, so that the same call may succeed later
// without anything changing on the caller's side: a full disk
// ([IsDiskFull]); a connection refused, reset, cut (EOF) or closed, or one
// that could not be made (pgconn's connect errors, net errors,
// driver.ErrBadConn, sql.ErrConnDone); PostgreSQL's connection exceptions
// (SQLSTATE class 08) and its admin_shutdown, crash_shutdown and
// cannot_connect_now (57P01–57P03), which a restart of the database server
// sends. Constraint, syntax and data errors are not, nor the caller's own
// cancellation or deadline.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if IsDiskFull(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	var oe *net.OpError
	switch {
	case errors.As(err, &ce), errors.As(err, &oe):
		return true
	}
	for _, target := range []error{
		driver.ErrBadConn, sql.ErrConnDone, pgconn.ErrConnClosed, net.ErrClosed,
		io.EOF, io.ErrUnexpectedEOF,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// Rebind rewrites placeholders. Our queries never contain a literal `?`.
func (d Dialect) Rebind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
