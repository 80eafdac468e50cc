package sessions

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
)

// What the account page (/account) needs of sessions: proving it is the
// user again, signing out of the other sessions, and the apps used within
// each session.

// ReauthenticateSession records that the user of live session id proved
// it again at at, with the methods amr: the session's AuthTime becomes
// at and its AMR becomes amr, so that both describe the latest proof (a
// rule that asks what the recent proof included, such as the account
// page's for adding a factor, must not see an older proof's methods). A
// session that ended or expired fails with [core.ErrNotFound].
func (s *SessionStore) ReauthenticateSession(ctx context.Context, id string, at time.Time, amr []string) error {
	if at.IsZero() || len(amr) == 0 {
		return errors.New("a re-authentication needs a time and the methods it used")
	}
	res, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_browser_sessions SET auth_time = ?, amr = ? WHERE id = ? AND ended_at IS NULL AND expires_at > ?`,
		at.UnixMilli(), core.JoinList(amr), id, s.db.NowMillis())
	if err != nil {
		return fmt.Errorf("re-authenticating a session: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("session: %w", core.ErrNotFound)
	}
	return nil
}

// EndOtherSessions ends every session of userID but keepSessionID and
// revokes the grants issued within them, as [SessionStore.EndSession]
// does, in one transaction. It returns the grants of the sessions it
// ended, those revoked marked Revoked. keepSessionID "" ends them all.
func (s *SessionStore) EndOtherSessions(ctx context.Context, userID, keepSessionID string) ([]Grant, error) {
	var out []Grant
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		ids, err := userSessions(ctx, s.db, tx, userID)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if id == keepSessionID {
				continue
			}
			grants, err := endSession(ctx, s.db, tx, s.rev, id, nil)
			if err != nil {
				return err
			}
			out = append(out, grants...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppUse is an app signed in within a browser session: its last use is
// when the newest token of its grants in that session was issued (an
// access token, or a refresh token, which a refresh rotates), or when the
// grant was issued if none is left.
type AppUse struct {
	ClientID   string
	SessionID  string
	LastUsedAt time.Time
}

// UserApps returns the apps signed in within the live sessions of userID
// whose grants are not revoked, one per session and app: by session, and
// within a session the most recently used first. Apps signed in outside a
// browser session (a device login, say) are not among them.
func (s *SessionStore) UserApps(ctx context.Context, userID string) ([]AppUse, error) {
	type row struct {
		AppUse
		created           int64
		access, refreshed sql.NullInt64
	}
	rows, err := core.QueryAll(ctx, s.db, "listing a user's apps", func(r core.Scanner) (*row, error) {
		var v row
		if err := r.Scan(&v.SessionID, &v.ClientID, &v.created, &v.access, &v.refreshed); err != nil {
			return nil, err
		}
		return &v, nil
	}, `SELECT session_id, client_id, MAX(created_at), MAX(access_at), MAX(refresh_at) FROM (
		SELECT g.session_id, g.client_id, g.created_at,
			(SELECT MAX(a.created_at) FROM nsauth_access_tokens a WHERE a.grant_id = g.grant_id) AS access_at,
			(SELECT MAX(r.created_at) FROM nsauth_refresh_tokens r WHERE r.family_id = g.grant_id) AS refresh_at
		FROM nsauth_session_grants g JOIN nsauth_browser_sessions b ON b.id = g.session_id
		WHERE b.user_id = ? AND b.ended_at IS NULL AND b.expires_at > ? AND g.revoked_at IS NULL) AS uses
		GROUP BY session_id, client_id`, userID, s.db.NowMillis())
	if err != nil {
		return nil, err
	}
	out := make([]AppUse, 0, len(rows))
	for _, r := range rows {
		last := max(r.created, r.access.Int64, r.refreshed.Int64)
		r.LastUsedAt = time.UnixMilli(last)
		out = append(out, r.AppUse)
	}
	slices.SortFunc(out, func(a, b AppUse) int {
		return cmp.Or(cmp.Compare(a.SessionID, b.SessionID), b.LastUsedAt.Compare(a.LastUsedAt), cmp.Compare(a.ClientID, b.ClientID))
	})
	return out, nil
}

// EndRevokedOtherSessions is [EndRevokedUserSessions] but for session
// keep, whose unrevoked grants it returns (when keep is a live session of
// userID; none otherwise) so that the caller revokes every other token of
// the user ([revocations.Revoker.UserTokensExcept]): a password changed on
// the account page keeps the session it was changed in.
func EndRevokedOtherSessions(ctx context.Context, db *core.DB, tx *sql.Tx, userID, keep string) ([]string, error) {
	now := db.NowMillis()
	var kept []string
	if keep != "" {
		rows, err := db.Query(ctx, tx, `SELECT g.grant_id FROM nsauth_session_grants g JOIN nsauth_browser_sessions b ON b.id = g.session_id
			WHERE b.id = ? AND b.user_id = ? AND b.ended_at IS NULL AND b.expires_at > ? AND g.revoked_at IS NULL ORDER BY g.grant_id`, keep, userID, now)
		if err != nil {
			return nil, fmt.Errorf("reading the kept session's grants: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading the kept session's grants: %w", err)
			}
			kept = append(kept, id)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("reading the kept session's grants: %w", err)
		}
	}
	if _, err := db.Exec(ctx, tx, `UPDATE nsauth_session_grants SET revoked_at = ? WHERE revoked_at IS NULL AND session_id IN
		(SELECT id FROM nsauth_browser_sessions WHERE user_id = ? AND ended_at IS NULL AND id <> ?)`, now, userID, keep); err != nil {
		return nil, fmt.Errorf("revoking the user's session grants: %w", err)
	}
	if _, err := db.Exec(ctx, tx, `UPDATE nsauth_browser_sessions SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL AND id <> ?`, now, userID, keep); err != nil {
		return nil, fmt.Errorf("ending the user's sessions: %w", err)
	}
	return kept, nil
}
