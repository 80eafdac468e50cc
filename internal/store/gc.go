package store

import (
	"context"
	"fmt"
	"time"
)

// codeRetention is how long a redeemed or expired code's digest is kept,
// so a late replay is still recognised (and punished) rather than looking
// like an unknown code.
const codeRetention = 24 * time.Hour

// DeleteExpired removes what can no longer be used: expired auth requests,
// old codes, expired token records, stale login counters and signing keys
// past their expiry. It returns how many rows went. Concurrent calls from
// several processes are harmless.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	now := s.now()
	ms := now.UnixMilli()
	stmts := []struct {
		query string
		arg   int64
	}{
		{`DELETE FROM nsauth_auth_requests WHERE expires_at <= ?`, ms},
		{`DELETE FROM nsauth_auth_codes WHERE expires_at <= ?`, now.Add(-codeRetention).UnixMilli()},
		{`DELETE FROM nsauth_access_tokens WHERE expires_at <= ?`, ms},
		{`DELETE FROM nsauth_refresh_tokens WHERE expires_at <= ?`, ms},
		{`DELETE FROM nsauth_login_attempts WHERE window_start <= ?`, now.Add(-time.Hour).UnixMilli()},
		{`DELETE FROM nsauth_signing_keys WHERE expires_at IS NOT NULL AND expires_at <= ?`, ms},
	}
	var total int64
	for _, st := range stmts {
		res, err := s.exec(ctx, s.db, st.query, st.arg)
		if err != nil {
			return total, fmt.Errorf("deleting expired records: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}
