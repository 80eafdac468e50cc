package bench

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
)

// scaleData describes the rows a scale run seeds. Every row is a function
// of its index, so that the measuring side can name a seeded user, an
// event's ref or a revoked token again without keeping a million of them.
type scaleData struct {
	users, events, revocations int
	// now is when the seeding began: events lie in the retention window
	// before it, revocations expire after it.
	now time.Time
	// window is how far back the events reach: inside the audit retention,
	// so that the server's clean-up deletes none of them during the run.
	window time.Duration
	// key is the store's audit HMAC key, under which refs are computed as
	// the provider computes them (audit.Hash).
	key []byte
	// clientID is the broker's client, which the provider's tokens and
	// events name.
	clientID string
	// passwordHash is every seeded user's password hash: one hash of
	// scalePassword, computed once.
	passwordHash string
}

// scalePassword is the seeded users' password: the bench logs in as them.
// The stores it seeds are the bench's own and deleted afterwards.
const scalePassword = "scale-bench-password-not-a-secret"

var (
	firstNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yasmin"}
	lastNames  = []string{"martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand", "leroy", "moreau", "simon", "laurent", "lefebvre", "michel", "garcia", "david", "bertrand", "roux", "vincent", "fournier"}
	userAgents = []string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"nsauth/1.4.0 (linux/amd64)",
	}
)

// mix is a 64-bit hash of i under a label: a reproducible stand-in for
// randomness.
func mix(label string, i int) uint64 {
	h := sha256.New()
	h.Write([]byte(label))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	h.Write(b[:])
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// username is user i's name: first.last and a number, unique by i.
func (d *scaleData) username(i int) string {
	return firstNames[i%len(firstNames)] + "." + lastNames[(i/len(firstNames))%len(lastNames)] + strconv.Itoa(i)
}

// userID is user i's id, shaped like the store's (16 random bytes,
// base64url).
func (d *scaleData) userID(i int) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], mix("user id", i))
	binary.BigEndian.PutUint64(b[8:], mix("user id 2", i))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// tokenID is revoked token i's id, shaped like the store's.
func (d *scaleData) tokenID(i int) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], mix("token id", i))
	binary.BigEndian.PutUint64(b[8:], mix("token id 2", i))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// eventUser is the user event j concerns.
func (d *scaleData) eventUser(j int) int { return int(mix("event user", j) % uint64(d.users)) }

// eventAt is event j's time in Unix milliseconds: the events are spread
// evenly over the window, in id order, as a server records them.
func (d *scaleData) eventAt(j int) int64 {
	start := d.now.Add(-d.window).UnixMilli()
	return start + int64(float64(j)*float64(d.window.Milliseconds())/float64(max(1, d.events)))
}

// eventRef is the ref of the secret of kind (token, refresh, code, grant)
// that event j concerns.
func (d *scaleData) eventRef(j int, kind string) string {
	return audit.Hash(d.key, "scale-"+kind+"-"+strconv.Itoa(j))
}

// refEvent reports whether event j carries a token ref (eventRef(j,
// "token")), which --ref looks for.
func refEvent(j int) bool {
	switch j % 10 {
	case 2, 3, 4, 5, 6, 8:
		return true
	}
	return false
}

// eventColumns are the columns a seeded event fills; id is the database's.
var eventColumns = []string{"at", "type", "outcome", "subject", "username", "client_id", "client_addr", "user_agent", "trace_id", "replica", "reason", "actor", "target", "refs"}

// eventRow fills row (len(eventColumns)) with event j. Events of one user
// follow the shape of a session: a login, a code issued and exchanged,
// refresh rotations, a failed login, a revocation and a logout.
func (d *scaleData) eventRow(j int, row []any) {
	u := d.eventUser(j)
	typ, outcome, reason := audit.RefreshRotated, audit.Success, ""
	var refs string
	r := func(kinds ...string) string {
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range kinds { // in key order, as encoding/json writes a map
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"` + k + `_hmac":"` + d.eventRef(j, k) + `"`)
		}
		b.WriteByte('}')
		return b.String()
	}
	switch j % 10 {
	case 0:
		typ = audit.LoginSucceeded
	case 1:
		typ, refs = audit.CodeIssued, r("code")
	case 2:
		typ, refs = audit.CodeExchanged, r("code", "refresh", "token")
	case 3, 4, 5, 6:
		refs = r("refresh", "token")
	case 7:
		typ, outcome, reason = audit.LoginFailed, audit.Failure, "wrong password"
	case 8:
		typ, refs = audit.TokenRevoked, r("token")
	case 9:
		typ, refs = audit.Logout, r("grant")
	}
	subject := d.userID(u)
	if typ == audit.LoginFailed {
		subject = ""
	}
	h := mix("event", j)
	addr := fmt.Sprintf("10.%d.%d.%d", byte(h>>8), byte(h>>16), byte(h>>24))
	var trace [16]byte
	binary.BigEndian.PutUint64(trace[:8], h)
	binary.BigEndian.PutUint64(trace[8:], mix("trace", j))
	row[0], row[1], row[2], row[3] = d.eventAt(j), string(typ), string(outcome), subject
	row[4], row[5], row[6], row[7] = d.username(u), d.clientID, addr, userAgents[h%uint64(len(userAgents))]
	row[8], row[9], row[10], row[11] = hex.EncodeToString(trace[:]), "nsauth-"+strconv.Itoa(int(h>>32)%3), reason, ""
	row[12], row[13] = "", refs
}

var userColumns = []string{"id", "username", "name", "email", "password_hash", "created_at", "updated_at"}

// userRow fills row with user i, created at a time in the year before now.
func (d *scaleData) userRow(i int, row []any) {
	name := d.username(i)
	created := d.now.Add(-time.Duration(mix("user created", i)%uint64(365*24*time.Hour/time.Millisecond)) * time.Millisecond).UnixMilli()
	first, last, _ := strings.Cut(strings.TrimRight(name, "0123456789"), ".")
	row[0], row[1], row[2], row[3] = d.userID(i), name, strings.ToUpper(first[:1])+first[1:]+" "+strings.ToUpper(last[:1])+last[1:], name+"@example.com"
	row[4], row[5], row[6] = d.passwordHash, created, created
}

var accessTokenColumns = []string{"id", "grant_id", "user_id", "client_id", "scopes", "amr", "resources", "created_at", "expires_at", "revoked_at"}

// revokedTokenTimes are revoked token i's issue, revocation and expiry
// times: issued within the last hour, revoked since, expiring 1 to 24 h
// after now, so that every revocation is live for the whole run.
func (d *scaleData) revokedTokenTimes(i int) (created, revoked, expires int64) {
	h := mix("revocation", i)
	now := d.now.UnixMilli()
	created = now - int64(h%3_600_000)
	revoked = created + int64((h>>24)%uint64(now-created+1))
	expires = now + 3_600_000 + int64((h>>32)%(23*3_600_000))
	return created, revoked, expires
}

// accessTokenRow fills row with the record of revoked token i, issued to a
// seeded user.
func (d *scaleData) accessTokenRow(i int, row []any) {
	created, revoked, expires := d.revokedTokenTimes(i)
	var grant [16]byte
	binary.BigEndian.PutUint64(grant[:8], mix("grant", i))
	row[0], row[1], row[2], row[3] = d.tokenID(i), base64.RawURLEncoding.EncodeToString(grant[:]), d.userID(int(mix("token user", i)%uint64(d.users))), d.clientID
	row[4], row[5], row[6], row[7], row[8], row[9] = benchScope, "pwd", "", created, expires, revoked
}

var revocationColumns = []string{"token_id", "expires_at", "revoked_at"}

// revocationRow fills row with the revocation of token i, as the store
// writes it in the transaction that revokes the token.
func (d *scaleData) revocationRow(i int, row []any) {
	_, revoked, expires := d.revokedTokenTimes(i)
	row[0], row[1], row[2] = d.tokenID(i), expires, revoked
}

// bulkWriter inserts many generated rows into one table.
type bulkWriter interface {
	// insert inserts n rows of table's columns; fill(i, row) writes row
	// i's values into row.
	insert(ctx context.Context, table string, columns []string, n int, fill func(i int, row []any)) error
	// size is the bytes the store takes now: SQLite's files, PostgreSQL's
	// tables with their indexes and TOAST.
	size(ctx context.Context) (int64, error)
	// indexes returns the statements that create table's secondary
	// indexes, by name.
	indexes(ctx context.Context, table string) (map[string]string, error)
	// exec runs a statement.
	exec(ctx context.Context, stmt string) error
	// count runs a query that returns one number.
	count(ctx context.Context, query string) (int64, error)
	close() error
}

// scaleChunk is how many rows one transaction (SQLite) or COPY
// (PostgreSQL) holds, and how often progress is told.
const scaleChunk = 100_000

// sqliteWriter writes into the SQLite database of a data directory over
// a connection of its own, with multi-row INSERTs in large transactions.
type sqliteWriter struct {
	db   *sql.DB
	path string
}

func openSQLiteWriter(ctx context.Context, dataDir string) (*sqliteWriter, error) {
	path := filepath.Join(dataDir, store.SQLiteFileName)
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "cache_size(-262144)") // 256 MiB: the indexes' pages stay in memory while seeding
	dsn := (&url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening the SQLite database to seed: %w", err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("opening the SQLite database to seed: %w", err)
	}
	return &sqliteWriter{db: db, path: path}, nil
}

// sqliteRowsPerInsert keeps a statement's parameters (rows × columns)
// under SQLite's limit of 32766.
const sqliteRowsPerInsert = 500

func (w *sqliteWriter) insert(ctx context.Context, table string, columns []string, n int, fill func(int, []any)) error {
	stmtFor := func(tx *sql.Tx, rows int) (*sql.Stmt, error) {
		mark := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
		q := "INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") VALUES " + strings.TrimSuffix(strings.Repeat(mark+", ", rows), ", ")
		return tx.PrepareContext(ctx, q)
	}
	args := make([]any, sqliteRowsPerInsert*len(columns))
	for start := 0; start < n; start += scaleChunk {
		end := min(n, start+scaleChunk)
		err := func() error {
			tx, err := w.db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback() }()
			full, err := stmtFor(tx, sqliteRowsPerInsert)
			if err != nil {
				return err
			}
			defer full.Close()
			for i := start; i < end; i += sqliteRowsPerInsert {
				rows := min(sqliteRowsPerInsert, end-i)
				for r := range rows {
					fill(i+r, args[r*len(columns):(r+1)*len(columns)])
				}
				stmt := full
				if rows < sqliteRowsPerInsert {
					if stmt, err = stmtFor(tx, rows); err != nil {
						return err
					}
					defer stmt.Close()
				}
				if _, err := stmt.ExecContext(ctx, args[:rows*len(columns)]...); err != nil {
					return err
				}
			}
			return tx.Commit()
		}()
		if err != nil {
			return fmt.Errorf("seeding %s (rows %d to %d): %w", table, start, end, err)
		}
	}
	return nil
}

func (w *sqliteWriter) size(ctx context.Context) (int64, error) {
	// Checkpoint first, so that the main file holds every page: the WAL
	// is counted as well, but after a truncating checkpoint it is empty.
	if _, err := w.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return 0, fmt.Errorf("checkpointing the seeded database: %w", err)
	}
	return sqliteFilesSize(w.path)
}

func (w *sqliteWriter) indexes(ctx context.Context, table string) (map[string]string, error) {
	rows, err := w.db.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			return nil, err
		}
		out[name] = def
	}
	return out, rows.Err()
}

func (w *sqliteWriter) exec(ctx context.Context, stmt string) error {
	_, err := w.db.ExecContext(ctx, stmt)
	return err
}

func (w *sqliteWriter) count(ctx context.Context, query string) (int64, error) {
	var n int64
	err := w.db.QueryRowContext(ctx, query).Scan(&n)
	return n, err
}

func (w *sqliteWriter) close() error { return w.db.Close() }

// postgresWriter writes into a PostgreSQL schema with COPY.
type postgresWriter struct {
	conn *pgx.Conn
}

func openPostgresWriter(ctx context.Context, databaseURL string) (*postgresWriter, error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL at %s to seed: %w", store.RedactURL(databaseURL), err)
	}
	return &postgresWriter{conn: conn}, nil
}

func (w *postgresWriter) insert(ctx context.Context, table string, columns []string, n int, fill func(int, []any)) error {
	for start := 0; start < n; start += scaleChunk {
		end := min(n, start+scaleChunk)
		src := &rowSource{next: start, end: end, row: make([]any, len(columns)), fill: fill}
		if _, err := w.conn.CopyFrom(ctx, pgx.Identifier{table}, columns, src); err != nil {
			return fmt.Errorf("seeding %s (rows %d to %d): %w", table, start, end, err)
		}
	}
	return nil
}

func (w *postgresWriter) size(ctx context.Context) (int64, error) {
	return postgresSchemaSize(ctx, w.conn)
}

func (w *postgresWriter) indexes(ctx context.Context, table string) (map[string]string, error) {
	// Not those that back a constraint (the primary key).
	rows, err := w.conn.Query(ctx, `SELECT i.indexname, i.indexdef FROM pg_indexes i
		WHERE i.schemaname = current_schema() AND i.tablename = $1
		AND NOT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_class ic ON ic.oid = c.conindid
			JOIN pg_namespace n ON n.oid = ic.relnamespace
			WHERE ic.relname = i.indexname AND n.nspname = i.schemaname)`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			return nil, err
		}
		out[name] = def
	}
	return out, rows.Err()
}

func (w *postgresWriter) exec(ctx context.Context, stmt string) error {
	_, err := w.conn.Exec(ctx, stmt)
	return err
}

func (w *postgresWriter) count(ctx context.Context, query string) (int64, error) {
	var n int64
	err := w.conn.QueryRow(ctx, query).Scan(&n)
	return n, err
}

func (w *postgresWriter) close() error { return w.conn.Close(context.Background()) }

// rowSource is a pgx.CopyFromSource over generated rows.
type rowSource struct {
	next, end int
	row       []any
	fill      func(int, []any)
}

func (s *rowSource) Next() bool {
	if s.next >= s.end {
		return false
	}
	s.fill(s.next, s.row)
	s.next++
	return true
}

func (s *rowSource) Values() ([]any, error) { return s.row, nil }
func (s *rowSource) Err() error             { return nil }

// postgresSchemaSize is the bytes of the current schema's tables,
// indexes and TOAST included.
func postgresSchemaSize(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var n int64
	err := conn.QueryRow(ctx, `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint
		FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
		WHERE ns.nspname = current_schema() AND c.relkind = 'r'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("measuring the schema's size: %w", err)
	}
	return n, nil
}

// seedTable is one table's share of a seeding: its rows, the time they
// took and the bytes they added.
type seedTable struct {
	rows    int
	elapsed time.Duration
	bytes   int64
}

// seed writes d's rows through w: users, then audit events, then the
// revoked tokens' records and their revocations, each measured apart.
func seed(ctx context.Context, w bulkWriter, d *scaleData, progress io.Writer) (users, events, revocations seedTable, err error) {
	before, err := w.size(ctx)
	if err != nil {
		return users, events, revocations, err
	}
	step := func(what string, n int, do func() error) (seedTable, error) {
		start := time.Now()
		if err := do(); err != nil {
			return seedTable{}, err
		}
		elapsed := time.Since(start)
		after, err := w.size(ctx)
		if err != nil {
			return seedTable{}, err
		}
		t := seedTable{rows: n, elapsed: elapsed, bytes: after - before}
		before = after
		fmt.Fprintf(progress, "seeded %d %s in %s (%.0f rows/s), %.1f MiB\n", n, what, elapsed.Round(time.Millisecond), float64(n)/max(elapsed.Seconds(), 1e-9), float64(t.bytes)/(1<<20))
		return t, nil
	}
	if users, err = step("users", d.users, func() error {
		return w.insert(ctx, "nsauth_users", userColumns, d.users, d.userRow)
	}); err != nil {
		return users, events, revocations, err
	}
	if events, err = step("audit events", d.events, func() error {
		return eventsBeforeOthers(ctx, w, func() error {
			return withoutIndexes(ctx, w, "nsauth_audit_events", func() error {
				return w.insert(ctx, "nsauth_audit_events", eventColumns, d.events, d.eventRow)
			})
		})
	}); err != nil {
		return users, events, revocations, err
	}
	revocations, err = step("revoked access tokens and their revocations", d.revocations, func() error {
		if err := w.insert(ctx, "nsauth_access_tokens", accessTokenColumns, d.revocations, d.accessTokenRow); err != nil {
			return err
		}
		return w.insert(ctx, "nsauth_revocations", revocationColumns, d.revocations, d.revocationRow)
	})
	return users, events, revocations, err
}

// withoutIndexes runs load with table's secondary indexes dropped, then
// creates them again with the statements the schema made them with: the
// same indexes in the end, built by sorting instead of ten million
// inserts into each.
func withoutIndexes(ctx context.Context, w bulkWriter, table string, load func() error) error {
	defs, err := w.indexes(ctx, table)
	if err != nil {
		return fmt.Errorf("reading the indexes of %s: %w", table, err)
	}
	for name := range defs {
		if err := w.exec(ctx, "DROP INDEX "+name); err != nil {
			return fmt.Errorf("dropping the index %s while seeding: %w", name, err)
		}
	}
	loadErr := load()
	for name, def := range defs {
		if err := w.exec(ctx, def); err != nil {
			return fmt.Errorf("creating the index %s again: %w", name, err)
		}
	}
	return loadErr
}

// eventsBeforeOthers runs load, which inserts the seeded history of audit
// events, with the events already stored (the store's preparation and
// first start made a few, timed now) moved after it: ids then grow with
// time, as in a store that lived through that history.
func eventsBeforeOthers(ctx context.Context, w bulkWriter, load func() error) error {
	cols := strings.Join(append(slices.Clone(eventColumns), "agg_key", "agg_count"), ", ")
	for _, stmt := range []string{
		`CREATE TEMPORARY TABLE nsauth_scale_kept AS SELECT id AS kept_id, ` + cols + ` FROM nsauth_audit_events`,
		`DELETE FROM nsauth_audit_events`,
	} {
		if err := w.exec(ctx, stmt); err != nil {
			return fmt.Errorf("setting the stored audit events aside: %w", err)
		}
	}
	if err := load(); err != nil {
		return err
	}
	for _, stmt := range []string{
		`INSERT INTO nsauth_audit_events (` + cols + `) SELECT ` + cols + ` FROM nsauth_scale_kept ORDER BY kept_id`,
		`DROP TABLE nsauth_scale_kept`,
	} {
		if err := w.exec(ctx, stmt); err != nil {
			return fmt.Errorf("putting the stored audit events back: %w", err)
		}
	}
	return nil
}
