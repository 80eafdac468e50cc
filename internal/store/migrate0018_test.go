package store

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
)

// TestMigration0018IndexesRefs: a database at version 17 holding an event
// with refs gains nsauth_audit_refs, filled from it; --ref finds that
// event and a new one (through the trigger), not an event without the ref,
// and an event deleted at the end of the retention takes its refs along.
func TestMigration0018IndexesRefs(t *testing.T) {
	t.Parallel()
	old := time.Now().Add(-100 * 24 * time.Hour).UnixMilli()
	before := []string{
		`INSERT INTO nsauth_audit_events (at, type, outcome, username, refs) VALUES (` + itoa(old) + `, 'code.exchanged', 'success', 'alice',
			'{"code_hmac":"aaaa0000aaaa0000aaaa0000aaaa0000","token_hmac":"bbbb0000bbbb0000bbbb0000bbbb0000"}')`,
		`INSERT INTO nsauth_audit_events (at, type, outcome, username, refs) VALUES (` + itoa(old) + `, 'login.succeeded', 'success', 'alice', '')`,
	}
	open := map[string]func(t *testing.T) (*Store, error){
		"sqlite": func(t *testing.T) (*Store, error) {
			dir := t.TempDir()
			sqliteAtVersion(t, dir, 17, before...)
			return OpenSQLite(context.Background(), dir, Options{})
		},
		"postgres": func(t *testing.T) (*Store, error) {
			return OpenPostgres(context.Background(), postgresAtVersion(t, 17, before...), Options{})
		},
	}
	for name, openAt17 := range open {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, err := openAt17(t)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			refs := func(ref string) int {
				t.Helper()
				evs, err := s.AuditEvents(ctx, AuditFilter{Ref: ref})
				if err != nil {
					t.Fatal(err)
				}
				return len(evs)
			}
			if n := refs("bbbb0000bbbb0000bbbb0000bbbb0000"); n != 1 {
				t.Errorf("the token's ref finds %d events after 0018, want 1", n)
			}
			if err := s.InsertAuditEvent(ctx, audit.Event{Time: time.Now(), Type: audit.TokenRevoked, Outcome: audit.Success,
				Refs: map[string]string{audit.RefToken: "bbbb0000bbbb0000bbbb0000bbbb0000"}}); err != nil {
				t.Fatal(err)
			}
			if n := refs("bbbb0000bbbb0000bbbb0000bbbb0000"); n != 2 {
				t.Errorf("the token's ref finds %d events after a new one, want 2", n)
			}
			if n := refs("cccc0000cccc0000cccc0000cccc0000"); n != 0 {
				t.Errorf("an unknown ref finds %d events", n)
			}
			if _, err := s.DeleteExpired(ctx); err != nil {
				t.Fatal(err)
			}
			var left int
			if err := s.db.QueryRow(ctx, s.db, `SELECT COUNT(*) FROM nsauth_audit_refs`).Scan(&left); err != nil || left != 1 {
				t.Errorf("%d refs left after the old events were deleted (%v), want the new event's 1", left, err)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
