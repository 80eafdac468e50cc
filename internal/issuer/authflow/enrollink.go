package authflow

import (
	"errors"
	"net/http"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// The enrolment link's page (nsauth users enrol-link NAME): the way a user
// adds a second factor in the browser when no login of theirs proved one
// (the package doc: the rule for lasting factors). The link names the user; its
// holder gives that user's password, which counts on the login limits
// like any other, and the link is used up: the flow then goes to the
// enrolment page, bound to this browser like every step after the
// password, and ends once a factor is set up. No client is involved and
// no token is issued.
//
// GET shows the password form and uses nothing, so that a mail scanner
// opening the link does not spend it. Both methods are rate-limited per
// client address like the authorize endpoint: an unknown link costs one
// indexed read.

// EnrolLinkPath is the path of enrolment links under the issuer URL; the
// link's secret is its query parameter "link".
const EnrolLinkPath = "/login/enrol"

// Messages of the enrolment link's page.
const (
	msgLinkGone = "This enrolment link is not valid: it has expired, was already used or was replaced by a newer one. " +
		"Ask your administrator for a new one."
)

type enrolLinkPage struct {
	Title    string
	Error    string
	Username string
	Link     string
	CSRF     string
}

// enrolLinkStep is the page of an enrolment link: its user's password,
// then enrolment.
type enrolLinkStep struct {
	*deps
	passwordCheck
}

// linkUser returns the enabled user of a live enrolment link, or writes
// the page saying the link is not valid.
func (i *enrolLinkStep) linkUser(w http.ResponseWriter, r *http.Request, link string) (*store.User, bool) {
	ctx := r.Context()
	if !web.IsRandomToken(link, 32) {
		i.message(w, http.StatusBadRequest, titleEnrolByLink, msgLinkGone)
		return nil, false
	}
	user, err := i.st.EnrolLinkUser(ctx, link)
	switch {
	case err == nil && !user.Disabled():
		return user, true
	case err == nil, errors.Is(err, store.ErrNotFound):
		i.message(w, http.StatusBadRequest, titleEnrolByLink, msgLinkGone)
	default:
		i.log.ErrorContext(ctx, "reading an enrolment link failed", "error", err)
		i.message(w, http.StatusInternalServerError, titleEnrolByLink, msgInternal)
	}
	return nil, false
}

// showEnrolLink renders the password form of an enrolment link.
func (i *enrolLinkStep) showEnrolLink(w http.ResponseWriter, r *http.Request) {
	link := r.URL.Query().Get("link")
	user, ok := i.linkUser(w, r, link)
	if !ok {
		return
	}
	i.render(w, http.StatusOK, "enrol.html", enrolLinkPage{Title: titleEnrolByLink, Username: user.Username, Link: link,
		CSRF: i.csrf.Cookie(w, r)}, "")
}

// submitEnrolLink checks the password of the link's user and, when it is
// right, uses the link up and goes on to enrolment.
func (i *enrolLinkStep) submitEnrolLink(w http.ResponseWriter, r *http.Request) {
	ctx, form, csrf := r.Context(), r.PostForm, web.Token(r)
	link := form.Get("link")
	user, ok := i.linkUser(w, r, link)
	if !ok {
		return
	}
	att, done, ok := i.admitAttempt(w, r, user.Username)
	if !ok {
		return
	}
	defer done()
	page := enrolLinkPage{Title: titleEnrolByLink, Username: user.Username, Link: link, CSRF: csrf}
	if _, ok := i.checkPassword(w, r, &att, credentials{username: user.Username, password: form.Get("password")}, "", func(status int, msg string) {
		page.Error = msg
		i.render(w, status, "enrol.html", page, "")
	}); !ok {
		return
	}
	// Of two browsers giving the password at once, one uses the link.
	if err := i.st.TakeEnrolLink(ctx, link, user.ID); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			i.log.ErrorContext(ctx, "using an enrolment link failed", "error", err)
			i.message(w, http.StatusInternalServerError, titleEnrolByLink, msgInternal)
			return
		}
		i.message(w, http.StatusBadRequest, titleEnrolByLink, msgLinkGone)
		return
	}
	if err := i.events.Record(ctx, audit.Event{Type: audit.EnrolLinkUsed, Subject: user.ID, Username: user.Username}); err != nil {
		i.message(w, http.StatusInternalServerError, titleEnrolByLink, msgInternal)
		return
	}
	i.next(w, r, &loginFlow{csrf: csrf, user: user, amr: []string{amrPassword}, steps: []string{store.StepEnrolLink}, att: &att})
}
