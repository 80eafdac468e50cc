package accountflow

import (
	"context"
	"slices"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
)

// recentEvents is how many sign-in events the page shows.
const recentEvents = 20

// signInTypes are the events the page shows as sign-ins, and how it
// words them.
var signInTypes = map[audit.Type]string{
	audit.LoginSucceeded:        "Signed in",
	audit.LoginFailed:           "Wrong password",
	audit.LoginLockedOut:        "Too many failed attempts",
	audit.SecondFactorSucceeded: "Second factor accepted",
	audit.SecondFactorFailed:    "Second factor refused",
	audit.PasskeyUsed:           "Signed in with a passkey",
	audit.PasskeyFailed:         "Passkey refused",
	audit.SessionEnded:          "Signed out",
	audit.UserChanged:           "Account changed",
}

// eventLines lists the recent sign-in events of a's user's account, the
// newest first, from the audit trail (by the user's id: a username used
// again after its user was deleted shows nothing of the other's).
func (d *deps) eventLines(ctx context.Context, a *account) ([]eventLine, error) {
	types := make([]audit.Type, 0, len(signInTypes))
	for t := range signInTypes {
		types = append(types, t)
	}
	slices.Sort(types)
	evs, err := d.st.AuditEvents(ctx, store.AuditFilter{User: a.user.ID, Types: types, Newest: true, Limit: recentEvents})
	if err != nil {
		return nil, err
	}
	lines := make([]eventLine, 0, len(evs))
	for _, e := range slices.Backward(evs) {
		what := signInTypes[e.Type]
		switch {
		case e.Type == audit.LoginSucceeded && e.Reason == "reauthenticated":
			what = "Confirmed it was you"
		case e.Type == audit.UserChanged && e.Reason == "password_changed":
			what = "Password changed"
		case e.Type == audit.LoginFailed && e.Reason != "bad_password" && e.Reason != "bad_credentials":
			what = "Sign-in refused (" + e.Reason + ")"
		}
		app := e.ClientID
		switch {
		case e.Type == audit.SessionEnded || e.Type == audit.UserChanged:
			app = "" // done on this page, or by an administrator
		case app == AppID:
			app = "this account page"
		}
		lines = append(lines, eventLine{Time: showTime(e.Time), What: what, From: e.ClientAddr, App: app, Failed: e.Outcome == audit.Failure})
	}
	return lines, nil
}
