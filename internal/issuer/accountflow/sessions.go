package accountflow

import (
	"context"
	"net/http"
)

// sessionLines lists a's user's browser sessions, a's first.
func (f *Flow) sessionLines(ctx context.Context, a *account) ([]sessionLine, error) {
	return []sessionLine{{ID: a.session.ID, Current: true, Started: showTime(a.session.CreatedAt), LastSeen: showTime(a.session.LastSeenAt)}}, nil
}

// submitEndSessions is POST /account/sessions/end: field session is a
// session's id, or "others".
func (f *Flow) submitEndSessions(w http.ResponseWriter, r *http.Request) {
	a, ok := f.account(w, r)
	if !ok || !f.requireRecent(w, r, a) {
		return
	}
	f.show(w, r, a, view{Status: http.StatusNotImplemented, Section: "sessions", Error: "Not yet."})
}
