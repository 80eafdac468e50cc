package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/store/accountlinks"
	"github.com/nsauth/nsauth/internal/store/authrequests"
	"github.com/nsauth/nsauth/internal/store/devices"
	"github.com/nsauth/nsauth/internal/store/revocations"
	"github.com/nsauth/nsauth/internal/store/sessions"
)

// DeleteExpired removes what can no longer be used: expired auth requests,
// old codes and device authorizations, expired token records, stale login
// counters, signing keys past their expiry, sign-ins that waited too long
// at an upstream provider, account links a week after they expired,
// browser sessions a day after they ended, and
// audit events older than
// the retention (Options.AuditRetention). It returns how many rows
// went. On SQLite it then gives the freed space back to the file system.
// Concurrent calls from several processes are harmless.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	now := s.db.Now()
	ms := now.UnixMilli()
	stmts := []struct {
		query string
		arg   int64
	}{
		{`DELETE FROM nsauth_auth_requests WHERE expires_at <= ?`, ms},
		{`DELETE FROM nsauth_auth_codes WHERE expires_at <= ?`, now.Add(-authrequests.CodeRetention).UnixMilli()},
		{`DELETE FROM nsauth_device_authorizations WHERE expires_at <= ?`, now.Add(-devices.Retention).UnixMilli()},
		// A token's record stays while a verifier may still accept it, so
		// that revoking its user or grant still records it.
		{`DELETE FROM nsauth_access_tokens WHERE expires_at <= ?`, now.Add(-revocations.Retention).UnixMilli()},
		{`DELETE FROM nsauth_revocations WHERE expires_at <= ?`, now.Add(-revocations.Retention).UnixMilli()},
		{`DELETE FROM nsauth_refresh_tokens WHERE expires_at <= ?`, ms},
		{`DELETE FROM nsauth_login_attempts WHERE window_start <= ?`, now.Add(-time.Hour).UnixMilli()},
		{`DELETE FROM nsauth_mfa_pending WHERE expires_at <= ?`, ms},
		{`DELETE FROM nsauth_signing_keys WHERE expires_at IS NOT NULL AND expires_at <= ?`, ms},
		{`DELETE FROM nsauth_passkey_ceremonies WHERE expires_at <= ?`, ms},
		{`DELETE FROM nsauth_enrol_links WHERE expires_at <= ?`, ms},
		{`DELETE FROM nsauth_connector_pending WHERE expires_at <= ?`, ms},
		// An expired account link is kept a while, so that opening it is
		// told (and audited) as expired.
		{`DELETE FROM nsauth_account_links WHERE expires_at <= ?`, now.Add(-accountlinks.Retention).UnixMilli()},
		// A session is kept a day past its end (so `nsauth sessions` and
		// end-session still find it); its grant links go with it.
		{`DELETE FROM nsauth_browser_sessions WHERE expires_at <= ?`, now.Add(-sessions.Retention).UnixMilli()},
		{`DELETE FROM nsauth_browser_sessions WHERE ended_at <= ?`, now.Add(-sessions.Retention).UnixMilli()},
	}
	if s.auditRetention > 0 {
		stmts = append(stmts, struct {
			query string
			arg   int64
		}{`DELETE FROM nsauth_audit_events WHERE at <= ?`, now.Add(-s.auditRetention).UnixMilli()})
	}
	var total int64
	for _, st := range stmts {
		res, err := s.db.Exec(ctx, s.db, st.query, st.arg)
		if err != nil {
			return total, fmt.Errorf("deleting expired records: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	if s.db.Dialect.Name == "sqlite" {
		if err := s.reclaimSpace(ctx, total > 0); err != nil {
			return total, err
		}
	}
	return total, nil
}

// reclaimSpace shrinks the SQLite file by its free pages, and the
// write-ahead log to nothing: without it, a burst of writes leaves both at
// their high-water mark for good. The log is truncated only after deleted
// rows or freed pages, because a truncating checkpoint waits for readers
// and briefly holds writers off.
func (s *Store) reclaimSpace(ctx context.Context, deleted bool) error {
	var free int64
	if err := s.db.SQL.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free); err != nil {
		return fmt.Errorf("reading the free page count: %w", err)
	}
	if free == 0 && !deleted {
		return nil
	}
	if free > 0 {
		// incremental_vacuum frees one page per step of its statement:
		// reading all its rows runs it to the end, whatever a driver's Exec
		// does with statements that return rows.
		rows, err := s.db.SQL.QueryContext(ctx, `PRAGMA incremental_vacuum`)
		if err != nil {
			return fmt.Errorf("reclaiming free pages: %w", err)
		}
		for rows.Next() {
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("reclaiming free pages: %w", err)
		}
	}
	var busy, logFrames, checkpointed int64
	if err := s.db.SQL.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed); err != nil {
		return fmt.Errorf("truncating the write-ahead log: %w", err)
	}
	// busy = 1 means a reader kept the log from being truncated this time;
	// the next run catches up.
	return nil
}
