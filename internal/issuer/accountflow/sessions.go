package accountflow

import (
	"context"
	"net/http"
	"slices"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/backchannel"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// Messages of the sessions section.
const (
	msgNoSuchSession  = "That session is not one of yours that is still signed in."
	msgEndedOne       = "That browser is signed out, with the apps signed in there."
	msgEndedOthers    = "Every other browser is signed out, with the apps signed in there."
	msgNoOtherSession = "You are signed in nowhere else."
	msgNotThisOne     = "To sign out of this browser, sign out from an app, or close the browser."
)

// others is the session field's value that ends every session but this
// one.
const others = "others"

// sessionLines lists a's user's live browser sessions, a's first, each
// with the apps signed in within it and their last use (the account
// page's own app is not listed).
func (d *deps) sessionLines(ctx context.Context, a *account) ([]sessionLine, error) {
	all, err := d.st.ListSessions(ctx, a.user.ID)
	if err != nil {
		return nil, err
	}
	apps, err := d.st.UserApps(ctx, a.user.ID)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	var lines []sessionLine
	for _, s := range all {
		line := sessionLine{ID: s.ID, Current: s.ID == a.session.ID, Started: showTime(s.CreatedAt), LastSeen: showTime(s.LastSeenAt)}
		for _, u := range apps {
			if u.SessionID != s.ID || u.ClientID == AppID {
				continue
			}
			name, ok := names[u.ClientID]
			if !ok {
				name = u.ClientID
				if c, err := d.st.ClientByID(ctx, u.ClientID); err == nil {
					name = c.Title()
				}
				names[u.ClientID] = name
			}
			line.Apps = append(line.Apps, appLine{Name: name, LastUsed: showTime(u.LastUsedAt)})
		}
		lines = append(lines, line)
	}
	// This browser's first; the store's order (newest first) otherwise.
	slices.SortStableFunc(lines, func(x, y sessionLine) int {
		switch {
		case x.Current == y.Current:
			return 0
		case x.Current:
			return -1
		}
		return 1
	})
	return lines, nil
}

// submitEndSessions is POST /account/sessions/end, after a recent proof:
// field session is the id of one of the user's other sessions, or
// "others" for all of them. Each ends and the grants issued within it are
// revoked, as a sign-out does: their refresh tokens are refused, and
// their access tokens by CheckToken (package revocations). Each ended
// session is recorded.
func (s *sessionsStep) submitEndSessions(w http.ResponseWriter, r *http.Request) {
	a, ok := s.account(w, r)
	if !ok || !s.requireRecent(w, r, a) {
		return
	}
	ctx := r.Context()
	which := r.PostForm.Get("session")
	ids, err := s.otherSessions(ctx, a)
	if err != nil {
		s.fail(w, r, "listing sessions", err)
		return
	}
	var ended []string
	notice := msgEndedOne
	switch {
	case which == others:
		if len(ids) == 0 {
			s.show(w, r, a, view{Notice: msgNoOtherSession})
			return
		}
		grants, err := s.st.EndOtherSessions(ctx, a.user.ID, a.session.ID)
		if err != nil {
			s.fail(w, r, "ending sessions", err)
			return
		}
		s.tellApps(ctx, a, grants)
		ended, notice = ids, msgEndedOthers
	case which == a.session.ID:
		s.show(w, r, a, view{Status: http.StatusBadRequest, Section: "sessions", Error: msgNotThisOne})
		return
	case !slices.Contains(ids, which):
		// Another user's session, an ended one, or no session: all the
		// same to the page.
		s.show(w, r, a, view{Status: http.StatusNotFound, Section: "sessions", Error: msgNoSuchSession})
		return
	default:
		grants, err := s.st.EndSession(ctx, which, nil)
		if err != nil {
			s.fail(w, r, "ending a session", err)
			return
		}
		s.tellApps(ctx, a, grants)
		ended = []string{which}
	}
	failed := false
	for _, id := range ended {
		failed = s.record(ctx, a, audit.Event{Type: audit.SessionEnded, ClientID: AppID, Target: id, Reason: "signed_out"}) != nil || failed
	}
	if failed {
		s.message(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	s.show(w, r, a, view{Notice: notice})
}

// tellApps tells the apps of grants, issued within sessions of a's user
// the page ended, by back-channel logout (those that asked for it), as a
// sign-out does (package endsession). It never delays the answer.
func (d *deps) tellApps(ctx context.Context, a *account, grants []store.SessionGrant) {
	if d.cfg.Backchannel == nil {
		return
	}
	told := map[string]bool{}
	for _, g := range grants {
		if g.ClientID == AppID || told[g.GrantID] {
			continue
		}
		told[g.GrantID] = true
		app, err := d.st.ClientByID(ctx, g.ClientID)
		if err != nil || app.BackchannelLogoutURI == "" || app.Disabled() {
			continue // deleted since, or nobody to tell
		}
		d.cfg.Backchannel.Send(ctx, backchannel.Logout{ClientID: app.ID, URI: app.BackchannelLogoutURI, Subject: a.user.ID, SessionID: g.GrantID})
	}
}
