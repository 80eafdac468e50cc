package authflow

import (
	"context"
	"errors"
	"net/http"
	"strings"

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
	// Password asks for the account's password; a user a connector
	// created has none and proves themselves with one of their
	// connectors instead: Buttons (a sign-in at the upstream) or
	// Directories (the directory's username and password).
	Password    bool
	Buttons     []LoginOption
	Directories []LoginOption
	Connector   string
	DirUsername string
}

// newEnrolLinkPage is the data of the link's page for user.
func (i *enrolLinkStep) newEnrolLinkPage(ctx context.Context, user *store.User, link, csrf string) (enrolLinkPage, error) {
	page := enrolLinkPage{Title: titleEnrolByLink, Username: user.Username, Link: link, CSRF: csrf, Password: user.HasPassword()}
	if page.Password || i.cfg.Connectors == nil {
		return page, nil
	}
	var err error
	page.Buttons, page.Directories, err = i.cfg.Connectors.UserOptions(ctx, user.ID)
	return page, err
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
	page, err := i.newEnrolLinkPage(r.Context(), user, link, i.csrf.Cookie(w, r))
	if err != nil {
		i.log.ErrorContext(r.Context(), "listing a user's connectors failed", "error", err)
		i.message(w, http.StatusInternalServerError, titleEnrolByLink, msgInternal)
		return
	}
	i.render(w, http.StatusOK, "enrol.html", page, "")
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
	page, err := i.newEnrolLinkPage(ctx, user, link, csrf)
	if err != nil {
		i.log.ErrorContext(ctx, "listing a user's connectors failed", "error", err)
		i.message(w, http.StatusInternalServerError, titleEnrolByLink, msgInternal)
		return
	}
	cred := credentials{username: user.Username, password: form.Get("password")}
	if !user.HasPassword() {
		// The directory's account the user is bound to, which may be
		// named otherwise there; it must be this user's.
		cred.connector, cred.username = form.Get("connector"), strings.TrimSpace(form.Get("username"))
		page.Connector, page.DirUsername = cred.connector, cred.username
	}
	proven, ok := i.checkPassword(w, r, &att, cred, "", func(status int, msg string) {
		page.Error = msg
		i.render(w, status, "enrol.html", page, "")
	})
	if !ok {
		return
	}
	if proven.ID != user.ID {
		// Another account's right password: as wrong as any other.
		page.Error = msgWrongCredentials
		i.render(w, http.StatusUnauthorized, "enrol.html", page, "")
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
