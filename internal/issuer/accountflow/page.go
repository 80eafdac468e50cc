package accountflow

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// account is a request of a signed-in browser: its session, the session's
// user, and the browser's CSRF token, which every form of the page carries.
type account struct {
	session *store.Session
	user    *store.User
	csrf    string
}

// view is what a handler adds to the page it answers with.
type view struct {
	// Status is the HTTP status; zero means 200.
	Status int
	// Notice says what was done; Error what went wrong, next to Section
	// (the id of the section it concerns: "password", "sessions",
	// "reauth", or one of the factors').
	Notice, Error, Section string
	// Factors is the factors sections' data for this answer only (codes
	// shown once, an enrolment in progress); nil means what
	// Flow.factorsSection reads.
	Factors any
}

// accountPage is the data of account.html.
type accountPage struct {
	Title    string
	CSRF     string
	Username string
	Name     string
	// HasPassword: the user has an nsauth password (a connector's user
	// may not), so the password section asks for the current one.
	HasPassword bool
	// Recent: the session's last proof is within ReauthAfter; otherwise
	// Reauth is the "confirm it's you" form of sensitive acts.
	Recent bool
	Reauth reauthForm
	// ReauthMinutes is ReauthAfter in minutes, for the page's words.
	ReauthMinutes int

	Notice, Error, Section string

	Sessions []sessionLine
	Events   []eventLine
	// MayAddFactor: the session may add a factor that can stand in for
	// the password (Flow.mayAddFactor); otherwise the factors' sections
	// offer none and say EnrolLinkHelp.
	MayAddFactor  bool
	EnrolLinkHelp string
	// Factors is the factors sections' data (factors*.go).
	Factors any
	// Scripted: a section runs our static script (passkeys).
	Script bool
}

// Scripted implements web.Scripted: the passkey section's script.
func (p accountPage) Scripted() bool { return p.Script }

// reauthForm is what the "confirm it's you" form asks for.
type reauthForm struct {
	Password bool
	// Code, Recovery and Passkey: the user's second factors, one of which
	// is asked for with the password (or alone, without a password).
	Code, Recovery, Passkey bool
}

// sessionLine is one browser session of the user.
type sessionLine struct {
	ID                string
	Current           bool
	Started, LastSeen string
	Apps              []appLine
}

type appLine struct {
	Name     string
	LastUsed string
}

// eventLine is one recent sign-in event of the user's account.
type eventLine struct {
	Time, What, From, App string
	Failed                bool
}

// msgAskEnrolLink is what a user without a second factor is told instead
// of being offered one: a password alone never adds a factor.
const msgAskEnrolLink = "To add a passkey or an authenticator app, ask your administrator for an enrolment link (nsauth users enrol-link %s)."

// timeFormat is how the page shows times (UTC: the page knows no zone).
const timeFormat = "2006-01-02 15:04 UTC"

func showTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

// show answers with the whole account page of a, with v's notice, error
// and factors' data, read now (a section changed by the act answered is
// shown changed). A store error is the server's error page.
func (d *deps) show(w http.ResponseWriter, r *http.Request, a *account, v view) {
	ctx := r.Context()
	page := accountPage{Title: title, CSRF: a.csrf, Username: a.user.Username, Name: a.user.Name,
		HasPassword: a.user.HasPassword(), Recent: d.recent(a), ReauthMinutes: int(d.cfg.ReauthAfter / time.Minute),
		Notice: v.Notice, Error: v.Error, Section: v.Section, Factors: v.Factors}
	factors, err := d.mfa.UserFactors(ctx, a.user.ID)
	if err != nil {
		d.fail(w, r, "reading second factors", err)
		return
	}
	page.Reauth = d.reauthForm(a, factors)
	if page.MayAddFactor, err = d.mayAddFactor(ctx, a); err != nil {
		d.fail(w, r, "reading second factors", err)
		return
	}
	if !factors.Any() {
		page.EnrolLinkHelp = fmt.Sprintf(msgAskEnrolLink, a.user.Username)
	}
	if page.Sessions, err = d.sessionLines(ctx, a); err != nil {
		d.fail(w, r, "listing sessions", err)
		return
	}
	if page.Events, err = d.eventLines(ctx, a); err != nil {
		d.fail(w, r, "reading sign-in events", err)
		return
	}
	if page.Factors == nil {
		if page.Factors, err = d.sections.factorsSection(ctx, a, factors); err != nil {
			d.fail(w, r, "reading the factors' section", err)
			return
		}
	}
	page.Script = d.sections.factorsScripted(page.Factors)
	status := v.Status
	if status == 0 {
		status = http.StatusOK
	}
	d.cfg.Pages.Render(w, status, "account.html", page, "")
}

// fail logs err (what was being done) and answers with the server's
// error page. Nothing secret reaches err: store and check errors only.
func (d *deps) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	d.log.ErrorContext(r.Context(), "account page: "+what+" failed", "error", err)
	d.message(w, http.StatusInternalServerError, web.MsgInternal)
}

// message answers with a page that only says msg.
func (d *deps) message(w http.ResponseWriter, status int, msg string) {
	d.cfg.Pages.Message(w, status, title, msg)
}

// record records e, an act of a's user on their account: the user is its
// subject, the act's reason and target are e's. An error means the event
// was required and not recorded (the recorder logged why): the caller
// answers with the server's error and must not report the act done.
func (d *deps) record(ctx context.Context, a *account, e audit.Event) error {
	e.Subject, e.Username = a.user.ID, a.user.Username
	return d.cfg.Events.Record(ctx, e)
}

// factorsOf reads a's user's second factors.
func (d *deps) factorsOf(ctx context.Context, a *account) (mfa.Factors, error) {
	return d.mfa.UserFactors(ctx, a.user.ID)
}
