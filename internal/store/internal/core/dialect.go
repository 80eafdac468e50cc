package core

import (
	"errors"
	"strconv"
	"strings"

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
