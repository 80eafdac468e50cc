package authrequests

import (
	"context"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
)

// SetCompletedAuthTime sets the auth_time of the completed request id to
// authTime: when the user last proved who they are, for a login completed
// from a browser session (issue 24) rather than with a password just now.
// It is called before the request's code exists, so every token the
// request yields carries it. An unknown id fails with [core.ErrNotFound].
func (s *RequestStore) SetCompletedAuthTime(ctx context.Context, id string, authTime time.Time) error {
	res, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_auth_requests SET auth_time = ? WHERE id = ? AND user_id IS NOT NULL`,
		authTime.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("setting an auth request's auth_time: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("auth request: %w", core.ErrNotFound)
	}
	return nil
}
