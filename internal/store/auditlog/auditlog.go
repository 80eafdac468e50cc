// Package auditlog stores audit events, one row each or aggregated under
// a key, and reads them back by filter.
package auditlog

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store/internal/core"
)

// AuditStore keeps the audit trail. It implements audit.BatchSink.
type AuditStore struct {
	db *core.DB
}

// New returns the audit trail of db.
func New(db *core.DB) *AuditStore {
	return &AuditStore{db: db}
}

// InsertAuditEvent stores an event as a row of its own: one INSERT. It
// implements audit.Sink. The event's ID is ignored; the database numbers
// rows.
func (s *AuditStore) InsertAuditEvent(ctx context.Context, e audit.Event) error {
	return s.insertAuditEvent(ctx, "", e)
}

// InsertAuditEvents stores each event as a row of its own, in the order
// given, all or none: one multi-row INSERT, one write transaction, for up
// to [audit.MaxBatch] events (more take one statement per MaxBatch, in one
// transaction). It implements audit.BatchSink, for the group commit of
// audit.Config.GroupCommit.
func (s *AuditStore) InsertAuditEvents(ctx context.Context, es []audit.Event) error {
	if len(es) <= audit.MaxBatch {
		return s.insertAuditEvents(ctx, s.db, es)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		for rest := es; len(rest) > 0; {
			n := min(len(rest), audit.MaxBatch)
			if err := s.insertAuditEvents(ctx, tx, rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
}

// InsertAuditEventIn stores e as a row of its own through q, the
// transaction of the change e tells of (the token records of package
// tokens, its EventWriter): the event is committed with its change, or
// neither is.
func (s *AuditStore) InsertAuditEventIn(ctx context.Context, q core.Querier, e audit.Event) error {
	return s.insertAuditEvents(ctx, q, []audit.Event{e})
}

// NoteBatchFailure tells the store's Outage of ctx (store.WatchOutage)
// about err, the failure of the batch that held an event recorded under
// ctx, when the database was unavailable: the batch ran under a context
// of its own, and the request whose event failed answers as if its own
// write had. It implements the optional interface of audit's group
// commit.
func (s *AuditStore) NoteBatchFailure(ctx context.Context, err error) { core.NoteOutage(ctx, err) }

// auditColumns are the columns of one event's row, in the order of
// auditValues.
const auditColumns = `(at, type, outcome, subject, username, client_id, client_addr, user_agent, trace_id, replica, reason, actor, target, refs, agg_key, agg_count)`

// auditRow is the placeholders of one row of auditColumns.
const auditRow = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// auditValues appends to args the values of e's row, stored under key
// ("": a row of its own).
func auditValues(args []any, key string, e audit.Event) ([]any, error) {
	var refs string
	if len(e.Refs) > 0 {
		b, err := json.Marshal(e.Refs)
		if err != nil {
			return nil, fmt.Errorf("encoding audit refs: %w", err)
		}
		refs = string(b)
	}
	return append(args, e.Time.UnixMilli(), string(e.Type), string(e.Outcome), e.Subject, e.Username, e.ClientID, e.ClientAddr,
		e.UserAgent, e.TraceID, e.Replica, e.Reason, e.Actor, e.Target, refs, sql.NullString{String: key, Valid: key != ""}, e.Count), nil
}

// insertAuditEvents inserts es, each a row of its own, with one statement
// on q.
func (s *AuditStore) insertAuditEvents(ctx context.Context, q core.Querier, es []audit.Event) error {
	if len(es) == 0 {
		return nil
	}
	args := make([]any, 0, 16*len(es))
	var err error
	for _, e := range es {
		if args, err = auditValues(args, "", e); err != nil {
			return err
		}
	}
	query := `INSERT INTO nsauth_audit_events ` + auditColumns + ` VALUES ` + auditRow + strings.Repeat(`, `+auditRow, len(es)-1)
	if _, err := s.db.Exec(ctx, q, query, args...); err != nil {
		return fmt.Errorf("storing %d audit events: %w", len(es), err)
	}
	return nil
}

// CountAuditEvent adds e.Count to the aggregated row stored under key,
// storing e as that row when there is none: one INSERT ... ON CONFLICT DO
// UPDATE, so that replicas adding to one row at once lose no count. It
// implements audit.Sink.
func (s *AuditStore) CountAuditEvent(ctx context.Context, key string, e audit.Event) error {
	if key == "" || e.Count <= 0 {
		return fmt.Errorf("storing an aggregated audit event: a key and a positive count are required")
	}
	return s.insertAuditEvent(ctx, key, e)
}

// insertAuditEvent inserts e, or with a key, adds its count to the row of
// that key.
func (s *AuditStore) insertAuditEvent(ctx context.Context, key string, e audit.Event) error {
	args, err := auditValues(nil, key, e)
	if err != nil {
		return err
	}
	q := `INSERT INTO nsauth_audit_events ` + auditColumns + ` VALUES ` + auditRow
	if key != "" {
		q += ` ON CONFLICT (agg_key) DO UPDATE SET agg_count = nsauth_audit_events.agg_count + excluded.agg_count`
	}
	if _, err := s.db.Exec(ctx, s.db, q, args...); err != nil {
		return fmt.Errorf("storing an audit event: %w", err)
	}
	return nil
}

// AuditFilter selects audit events. Zero fields select everything.
type AuditFilter struct {
	// Since and Until bound the events' time: Since inclusive, Until
	// exclusive.
	Since, Until time.Time
	// Types keeps the events of these types.
	Types []audit.Type
	// User keeps the events whose username or subject is this.
	User string
	// ClientID keeps the events of this client.
	ClientID string
	// Ref keeps the events that carry this keyed HMAC (audit.Hash of a
	// token or code) under any name.
	Ref string
	// AfterID keeps the events stored after the one with this ID.
	AfterID int64
	// Limit caps how many are returned (the first ones in order, or with
	// Newest the last ones); zero means no cap.
	Limit int
	// Newest, with Limit, returns the last Limit events selected rather
	// than the first (still oldest first): the recent sign-ins of a user,
	// say. Without Limit it changes nothing.
	Newest bool
}

// AuditEvents returns the events f selects, oldest first (in ID order).
func (s *AuditStore) AuditEvents(ctx context.Context, f AuditFilter) ([]audit.Event, error) {
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if !f.Since.IsZero() {
		add(`at >= ?`, f.Since.UnixMilli())
		if f.User == "" && f.ClientID == "" && f.Ref == "" {
			// Rows are read in id order: without a bound on id, SQLite
			// walks them from the first (in id order, to spare a sort)
			// until it has Limit of them at or after Since, through every
			// older event: 0.6 s at a million. No event at or after Since
			// has an id below the least of theirs, which the index on at
			// finds: MIN(id + 0), since for MIN(id) SQLite would walk the
			// ids from the first again. (Not with a more selective filter,
			// which has an index of its own.)
			add(`id >= (SELECT COALESCE(MIN(id + 0), 0) FROM nsauth_audit_events WHERE at >= ?)`, f.Since.UnixMilli())
		}
	}
	if !f.Until.IsZero() {
		add(`at < ?`, f.Until.UnixMilli())
	}
	if len(f.Types) > 0 {
		marks := make([]string, len(f.Types))
		for i, t := range f.Types {
			marks[i] = "?"
			args = append(args, string(t))
		}
		where = append(where, `type IN (`+strings.Join(marks, ", ")+`)`)
	}
	if f.User != "" {
		add(`(username = ? OR subject = ?)`, f.User, f.User)
	}
	if f.ClientID != "" {
		add(`client_id = ?`, f.ClientID)
	}
	if f.Ref != "" {
		if strings.Trim(f.Ref, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("%q is not an audit ref: refs are hexadecimal", f.Ref)
		}
		// nsauth_audit_refs holds every value of every event's refs
		// (migration 0018's trigger), under its primary key (ref, id).
		add(`id IN (SELECT event_id FROM nsauth_audit_refs WHERE ref = ?)`, f.Ref)
	}
	if f.AfterID > 0 {
		add(`id > ?`, f.AfterID)
	}
	q := `SELECT id, at, type, outcome, subject, username, client_id, client_addr, user_agent, trace_id, replica, reason, actor, target, refs, agg_count
		FROM nsauth_audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	newest := f.Newest && f.Limit > 0
	if newest {
		q += ` ORDER BY id DESC`
	} else {
		q += ` ORDER BY id`
	}
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	rows, err := s.db.Query(ctx, s.db, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading audit events: %w", err)
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var e audit.Event
		var at int64
		var typ, outcome, refs string
		if err := rows.Scan(&e.ID, &at, &typ, &outcome, &e.Subject, &e.Username, &e.ClientID, &e.ClientAddr,
			&e.UserAgent, &e.TraceID, &e.Replica, &e.Reason, &e.Actor, &e.Target, &refs, &e.Count); err != nil {
			return nil, fmt.Errorf("reading audit events: %w", err)
		}
		e.Time = time.UnixMilli(at).UTC()
		e.Type, e.Outcome = audit.Type(typ), audit.Outcome(outcome)
		if refs != "" {
			if err := json.Unmarshal([]byte(refs), &e.Refs); err != nil {
				return nil, fmt.Errorf("reading audit event %d's refs: %w", e.ID, err)
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading audit events: %w", err)
	}
	if newest {
		slices.Reverse(out)
	}
	return out, nil
}
