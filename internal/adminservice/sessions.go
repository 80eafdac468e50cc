package adminservice

import (
	"context"
	"slices"
	"strings"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
)

// Browser sessions: listed, and ended with the tokens of the app logins
// within them. Never their cookie, nor the browser's device id.

// ListSessions lists the live browser sessions, newest first: every
// user's, or the user's named.
func (s *sessionsRPC) ListSessions(ctx context.Context, req *connect.Request[adminv1.ListSessionsRequest]) (*connect.Response[adminv1.ListSessionsResponse], error) {
	var userID string
	if req.Msg.GetUsername() != "" {
		u, err := s.sessionUser(ctx, req.Msg.GetUsername())
		if err != nil {
			return nil, err
		}
		userID = u.ID
	}
	sessions, err := s.cfg.Store.ListSessions(ctx, userID)
	if err != nil {
		return nil, toConnect(err, "sessions")
	}
	names := s.cfg.Store.Usernames()
	out := make([]*adminv1.Session, 0, len(sessions))
	for _, ss := range sessions {
		name, err := names.Of(ctx, ss.UserID)
		if err != nil {
			return nil, toConnect(err, "sessions")
		}
		grants, err := s.cfg.Store.SessionGrants(ctx, ss.ID)
		if err != nil {
			return nil, toConnect(err, "sessions")
		}
		apps := []string{}
		for _, g := range grants {
			if !g.Revoked && !slices.Contains(apps, g.ClientID) {
				apps = append(apps, g.ClientID)
			}
		}
		out = append(out, &adminv1.Session{Id: ss.ID, UserId: ss.UserID, Username: name, AuthTime: unix(ss.AuthTime), Amr: ss.AMR,
			CreatedAt: unix(ss.CreatedAt), LastSeenAt: unix(ss.LastSeenAt), ExpiresAt: unix(ss.ExpiresAt), Apps: apps})
	}
	return connect.NewResponse(&adminv1.ListSessionsResponse{Sessions: out}), nil
}

// EndSessions ends the session named by id, or every session of the user
// named, revoking every token issued to the apps logged in within them.
// Ending a session that has already ended is no error: it ends none.
func (s *sessionsRPC) EndSessions(ctx context.Context, req *connect.Request[adminv1.EndSessionsRequest]) (*connect.Response[adminv1.EndSessionsResponse], error) {
	id, username := strings.TrimSpace(req.Msg.GetId()), req.Msg.GetUsername()
	switch {
	case id == "" && username == "":
		return nil, invalid("id or username: name the session to end, or the user whose sessions end")
	case id != "" && username != "":
		return nil, invalid("id and username: give one, not both")
	case username != "":
		return s.endUserSessions(ctx, username)
	}
	ss, err := s.cfg.Store.SessionByID(ctx, id)
	if err != nil {
		return nil, toConnect(err, quoted("session", id))
	}
	name, err := s.cfg.Store.Usernames().Of(ctx, ss.UserID)
	if err != nil {
		return nil, toConnect(err, quoted("session", id))
	}
	if !ss.EndedAt.IsZero() {
		return connect.NewResponse(&adminv1.EndSessionsResponse{Username: name}), nil
	}
	grants, err := s.cfg.Store.EndSession(ctx, ss.ID, nil)
	if err != nil {
		return nil, toConnect(err, quoted("session", id))
	}
	if err := s.record(ctx, audit.Event{Type: audit.SessionRevoked, Subject: ss.UserID, Username: name, Target: ss.ID}); err != nil {
		return nil, err
	}
	var revoked int32
	for _, g := range grants {
		if g.Revoked {
			revoked++
		}
	}
	return connect.NewResponse(&adminv1.EndSessionsResponse{Ended: 1, Username: name, AppLoginsRevoked: revoked}), nil
}

func (s *sessionsRPC) endUserSessions(ctx context.Context, username string) (*connect.Response[adminv1.EndSessionsResponse], error) {
	u, err := s.sessionUser(ctx, username)
	if err != nil {
		return nil, err
	}
	n, err := s.cfg.Store.EndUserSessions(ctx, u.ID)
	if err != nil {
		return nil, toConnect(err, quoted("user", u.Username))
	}
	if n > 0 {
		if err := s.record(ctx, audit.Event{Type: audit.SessionRevoked, Subject: u.ID, Username: u.Username, Reason: "all_sessions"}); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(&adminv1.EndSessionsResponse{Ended: int32(min(n, 1<<31-1)), Username: u.Username}), nil
}

// sessionUser finds the user whose sessions a call names.
func (s *sessionsRPC) sessionUser(ctx context.Context, username string) (*store.User, error) {
	name, err := store.NormalizeUsername(username)
	if err != nil {
		return nil, invalid("username: %v", err)
	}
	u, err := s.cfg.Store.UserByUsername(ctx, name)
	if err != nil {
		return nil, toConnect(err, quoted("user", name))
	}
	return u, nil
}
