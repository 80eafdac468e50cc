package store

import (
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect holds what differs between the backends. Queries are written
// once, with `?` placeholders and portable SQL (ON CONFLICT, RETURNING).
type dialect struct {
	name string
	// numbered rewrites `?` to `$1`, `$2`, … (PostgreSQL).
	numbered bool
	// lockRows is appended to a SELECT that must lock the rows it reads
	// until the transaction ends. SQLite needs none: its transactions hold
	// the database's write lock from BEGIN.
	lockRows string
	// lockName is a statement that takes, until the transaction ends, an
	// exclusive lock named by its one argument (in the current schema),
	// for transactions that must not interleave although no one row
	// stands for what they share. SQLite needs none, as for lockRows.
	lockName string
	// shareRows is appended to a SELECT whose rows must not change until
	// the transaction ends, while others may read them so too. SQLite
	// needs none, as for lockRows.
	shareRows string
	// isUnique recognises a unique-constraint violation.
	isUnique func(error) bool
}

var sqliteDialect = dialect{
	name: "sqlite",
	isUnique: func(err error) bool {
		var se *sqlite.Error
		if !errors.As(err, &se) {
			return false
		}
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
}

var postgresDialect = dialect{
	name:      "postgres",
	numbered:  true,
	lockRows:  " FOR UPDATE",
	lockName:  `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.' || ?))`,
	shareRows: " FOR SHARE",
	isUnique: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	},
}

// rebind rewrites placeholders. Our queries never contain a literal `?`.
func (d dialect) rebind(q string) string {
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
