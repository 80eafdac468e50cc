package accountflow

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
)

// Messages of the password section.
const (
	msgPasswordsDiffer = "The new password and its repetition are not the same."
	msgPasswordChanged = "Your password is changed. Every other browser and app signed in as you was signed out."
)

// submitPassword is POST /account/password: a new password (fields new
// and again), with the current one (field current) when the user has
// one, after a recent proof. It replaces the password, ends every other
// browser session of the user and revokes every token not issued within
// this session (store ChangePassword: at once), and records the change
// and each session it ended.
func (s *passwordStep) submitPassword(w http.ResponseWriter, r *http.Request) {
	a, ok := s.account(w, r)
	if !ok || !s.requireRecent(w, r, a) {
		return
	}
	ctx := r.Context()
	current, next, again := r.PostForm.Get("current"), r.PostForm.Get("new"), r.PostForm.Get("again")
	defer password.Burn(current)
	if next != again {
		s.show(w, r, a, view{Status: http.StatusBadRequest, Section: "password", Error: msgPasswordsDiffer})
		return
	}
	if err := password.Validate(next); err != nil {
		// Validate's messages name the rule, never the password.
		s.show(w, r, a, view{Status: http.StatusBadRequest, Section: "password", Error: capitalize(err.Error()) + "."})
		return
	}
	c, ok := s.admit(w, r, a, "password")
	if !ok {
		return
	}
	defer c.done()
	if a.user.HasPassword() {
		if err := s.checkPassword(ctx, c, a, current); err != nil {
			s.wrongAnswer(w, r, a, c, "password", err, audit.LoginFailed, "bad_password", msgWrongPassword)
			return
		}
	}
	s.passed(ctx, c)
	hash, err := password.Hash(next)
	if err != nil {
		s.fail(w, r, "hashing a password", err)
		return
	}
	others, err := s.otherSessions(ctx, a)
	if err != nil {
		s.fail(w, r, "listing sessions", err)
		return
	}
	// The grants of the sessions the change ends, read before: their
	// apps are told after.
	var grants []store.SessionGrant
	for _, id := range others {
		g, err := s.st.SessionGrants(ctx, id)
		if err != nil {
			s.fail(w, r, "listing a session's grants", err)
			return
		}
		grants = append(grants, g...)
	}
	if err := s.st.ChangePassword(ctx, a.user.ID, hash, a.session.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.message(w, http.StatusBadRequest, msgSessionGone)
			return
		}
		s.fail(w, r, "changing a password", err)
		return
	}
	a.user.PasswordHash = hash
	s.tellApps(ctx, a, grants)
	// The change is made: its record failing must not hide it, but the
	// page says the server failed.
	failed := s.record(ctx, a, audit.Event{Type: audit.UserChanged, ClientID: AppID, Reason: "password_changed"}) != nil
	for _, id := range others {
		failed = s.record(ctx, a, audit.Event{Type: audit.SessionEnded, ClientID: AppID, Target: id, Reason: "password_changed"}) != nil || failed
	}
	if failed {
		s.message(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	s.show(w, r, a, view{Notice: msgPasswordChanged})
}

// otherSessions lists the ids of a's user's live sessions but a's.
func (d *deps) otherSessions(ctx context.Context, a *account) ([]string, error) {
	all, err := d.st.ListSessions(ctx, a.user.ID)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range all {
		if s.ID != a.session.ID {
			ids = append(ids, s.ID)
		}
	}
	return ids, nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
