package store

import (
	"context"
	"testing"

	"github.com/nsauth/nsauth/internal/audit"
)

// TestMigration0013KeepsAuditEvents: a database from before aggregated
// refusals keeps its audit events, read as single events (no count), and
// takes aggregated rows afterwards.
func TestMigration0013KeepsAuditEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	sqliteAtVersion(t, dir, 12,
		`INSERT INTO nsauth_audit_events (at, type, outcome, client_addr, reason) VALUES (1000, 'login.failed', 'failure', '192.0.2.1', 'unknown_user')`)

	s, err := OpenSQLite(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	row := audit.Event{Time: s.db.Now(), Type: audit.LoginFailed, Outcome: audit.Failure, ClientAddr: "192.0.2.1", Reason: "unknown_user", Count: 1}
	for range 2 {
		if err := s.CountAuditEvent(ctx, "k", row); err != nil {
			t.Fatal(err)
		}
	}
	events, err := s.AuditEvents(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Count != 0 || events[0].Reason != "unknown_user" || events[1].Count != 2 {
		t.Errorf("after 0013: %+v, want the old event without a count and one row counting 2", events)
	}
}
