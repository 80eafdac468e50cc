package authflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/connector"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/devicepages"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
)

// Messages shown on the login page. The wrong-credentials one is the same
// whether the user is unknown, disabled or typed the wrong password.
const (
	msgWrongCredentials = "Wrong username or password."
	msgTooManyAttempts  = "Too many sign-in attempts. Try again in %s."
	msgBusy             = "The server is busy checking other sign-ins. Try again in a moment."
	msgExpired          = "This sign-in link has expired or was already used. Start the login again from your terminal."
	msgIncomplete       = "This sign-in link is incomplete. Start the login again from your terminal."
	msgInternal         = web.MsgInternal
	msgUnreachable      = "%s is unreachable; try again later."
	msgNoPasswordLogin  = "This server does not take nsauth passwords: sign in with one of the other ways on this page."
)

// maxLoginFormBytes bounds the login form body: the sealed auth request
// (at most maxAuthRequestIDLen) and room for the other fields.
const maxLoginFormBytes = maxAuthRequestIDLen + 8<<10

type loginPage struct {
	Title         string
	Client        string
	Device        bool // the login is for a device authorization
	Error         string
	AuthRequestID string
	CSRF          string
	Username      string
	// Passkeys offers "Sign in with a passkey" (passkey.go).
	Passkeys bool
	// Password: the form takes nsauth passwords; Directories are the
	// LDAP connectors it also takes (Connector the one chosen); Buttons
	// are the "Continue with" forms of the redirecting connectors.
	Password             bool
	Connector            string
	Buttons, Directories []LoginOption
}

// passwordStep is the login page: the password, the first factor.
type passwordStep struct {
	*deps
	passwordCheck
}

// passwordCheck admits and checks a password against the login limits,
// for the login page and the enrolment link's page.
type passwordCheck struct{ *deps }

// showLoginPage renders the password page of the pending auth request
// ar, sealed in id.
func (i *passwordStep) showLoginPage(w http.ResponseWriter, r *http.Request, id string, ar *store.AuthRequest) {
	i.render(w, http.StatusOK, "login.html", i.newLoginPage(r.Context(), id, i.csrf.Cookie(w, r), ar), web.Origin(ar.RedirectURI))
}

// newLoginPage is the login page's data for ar, sealed in id, with the
// enabled connectors (none when they cannot be read: logged).
func (i *deps) newLoginPage(ctx context.Context, id, csrf string, ar *store.AuthRequest) loginPage {
	page := loginPage{Title: "Sign in", Client: i.clientTitle(ctx, ar.ClientID), Device: devicepages.IsDeviceLogin(ar), AuthRequestID: id, CSRF: csrf,
		Passkeys: i.passkeys != nil, Password: !i.cfg.NoPasswordLogin}
	if i.cfg.Connectors != nil {
		var err error
		if page.Buttons, page.Directories, err = i.cfg.Connectors.LoginOptions(ctx); err != nil {
			i.log.ErrorContext(ctx, "reading the connectors failed", "error", err)
		}
	}
	return page
}

// OpenRequest opens the sealed auth request id, one a user may still
// log in for, or writes the page explaining why not (connectorflow's
// sign-ins carry the id upstream and back). The page says no more
// than expired or incomplete: why a blob does not open is nobody's
// business.
func (i *deps) OpenRequest(w http.ResponseWriter, ctx context.Context, id string) (*store.AuthRequest, bool) {
	ar, status, msg := i.openPending(ctx, id)
	if ar == nil {
		i.message(w, status, "Sign in", msg)
		return nil, false
	}
	return ar, true
}

// submitLogin is the password step of a login: right, the login goes on
// to what next decides.
func (i *passwordStep) submitLogin(w http.ResponseWriter, r *http.Request) {
	form, csrf := r.PostForm, web.Token(r)
	id := form.Get("authRequestID")
	if id == "" || len(id) > maxAuthRequestIDLen {
		i.message(w, http.StatusBadRequest, "Sign in", msgIncomplete)
		return
	}
	ctx := r.Context()
	username := strings.TrimSpace(form.Get("username"))
	if len(username) > store.MaxUsernameLen {
		username = username[:store.MaxUsernameLen]
	}
	att, done, ok := i.admitAttempt(w, r, username)
	if !ok {
		return
	}
	defer done()

	ar, ok := i.OpenRequest(w, ctx, id)
	if !ok {
		return
	}
	page := i.newLoginPage(ctx, id, csrf, ar)
	page.Username, page.Connector = username, form.Get("connector")
	fail := func(status int, msg string) {
		page.Error = msg
		i.render(w, status, "login.html", page, web.Origin(ar.RedirectURI))
	}
	if page.Connector == "" && !page.Password {
		fail(http.StatusBadRequest, msgNoPasswordLogin)
		return
	}
	user, ok := i.checkPassword(w, r, &att, credentials{username, form.Get("password"), page.Connector}, ar.ClientID, fail)
	if !ok {
		return
	}
	i.next(w, r, &loginFlow{id: id, ar: ar, csrf: csrf, user: user, amr: []string{amrPassword}, att: &att})
}

// admitAttempt counts a password attempt for username in this process,
// or refuses it at once when as many as the limit allows are being
// checked right now: whatever they find, this one could not have a place.
// It is refused before any other work, so a burst costs little. The
// returned function ends the attempt.
func (i *passwordCheck) admitAttempt(w http.ResponseWriter, r *http.Request, username string) (attempts.Attempt, func(), bool) {
	ctx := r.Context()
	att := i.guard.NewAttempt(r, username, clientaddr.Label(clientaddr.Key(i.cfg.Clients.FromRequest(r))))
	done, ok := i.guard.Enter(att)
	if ok {
		return att, done, true
	}
	i.logRefusal(ctx, att, store.Reservation{Full: att.Counters[0].Key, RetryAt: i.cfg.Now().Add(time.Second)})
	if i.recordLoginFailure(ctx, loginFailure{reason: reasonRateLimited, counter: attempts.CounterKind(att.Counters[0].Key)}) != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return att, nil, false
	}
	w.Header().Set("Retry-After", "1")
	i.message(w, http.StatusTooManyRequests, "Sign in", fmt.Sprintf(msgTooManyAttempts, time.Second))
	return att, nil, false
}

// checkPassword checks the password of an admitted attempt: it takes a
// place in the attempt's counters, waits for a hashing slot, verifies the
// password and records the outcome. It returns the user when the password
// is right and the account enabled; the places stay taken until the login
// is complete. Otherwise it has answered with fail (status, message).
func (i *passwordCheck) checkPassword(w http.ResponseWriter, r *http.Request, att *attempts.Attempt, c credentials, clientID string, fail func(status int, msg string)) (*store.User, bool) {
	ctx := r.Context()
	res, err := i.guard.Reserve(ctx, *att)
	if err != nil {
		i.events.Failed(ctx, audit.Event{Type: events.LoginErrored, ClientID: clientID, Reason: "counting"}, err)
		fail(http.StatusInternalServerError, msgInternal)
		return nil, false
	}
	if !res.OK {
		i.logRefusal(ctx, *att, res)
		if i.recordLoginFailure(ctx, loginFailure{reason: reasonLocked, clientID: clientID, counter: attempts.CounterKind(res.Full)}) != nil {
			fail(http.StatusInternalServerError, msgInternal)
			return nil, false
		}
		fail(http.StatusTooManyRequests, fmt.Sprintf(msgTooManyAttempts, i.retryAfter(w, res.RetryAt)))
		return nil, false
	}
	leave, err := i.guard.Hash.Enter(ctx, att.Address)
	if err != nil {
		// No password was checked: the attempt gives its places back.
		i.guard.Release(ctx, *att)
		if errors.Is(err, attempts.ErrHashBusy) {
			if ok, suppressed := i.refusals.Allow(); ok {
				i.log.WarnContext(ctx, "login refused: password checks are at capacity", "client_address", att.Address, "suppressed_since_last", suppressed)
			}
			if i.recordLoginFailure(ctx, loginFailure{reason: reasonBusy, clientID: clientID}) != nil {
				fail(http.StatusInternalServerError, msgInternal)
				return nil, false
			}
			w.Header().Set("Retry-After", "1")
			fail(http.StatusTooManyRequests, msgBusy)
		}
		return nil, false
	}
	user, err := i.checkCredentials(ctx, c)
	leave()
	if err != nil {
		if !errors.Is(err, ErrWrongCredentials) {
			i.events.Failed(ctx, audit.Event{Type: events.LoginErrored, ClientID: clientID, Reason: "password", Target: c.connector}, err)
			if c.connector != "" {
				fail(http.StatusBadGateway, fmt.Sprintf(msgUnreachable, c.connector))
				return nil, false
			}
			fail(http.StatusInternalServerError, msgInternal)
			return nil, false
		}
		// The username is logged only when it names an account: people type
		// passwords into the username field, and those must not reach logs.
		account := "(unknown)"
		if user != nil {
			account = user.Username
		}
		i.log.InfoContext(ctx, "failed login", "username", account, "client_address", att.Address, "known_device", att.Device != "")
		if i.recordLoginFailure(ctx, loginFailure{reason: credentialsReason(err), user: user, clientID: clientID, counter: c.connector}) != nil {
			fail(http.StatusInternalServerError, msgInternal)
			return nil, false
		}
		if res.Remaining == 0 {
			if i.recordLockout(ctx, user, clientID, res) != nil {
				fail(http.StatusInternalServerError, msgInternal)
				return nil, false
			}
			// This attempt used the last place: say so now rather than at
			// the next try.
			wait := i.retryAfter(w, res.RetryAt)
			fail(http.StatusUnauthorized, msgWrongCredentials+" "+fmt.Sprintf(msgTooManyAttempts, wait))
			return nil, false
		}
		fail(http.StatusUnauthorized, msgWrongCredentials)
		return nil, false
	}
	if err := i.events.Record(ctx, audit.Event{Type: audit.LoginSucceeded, Subject: user.ID, Username: user.Username, ClientID: clientID, Target: c.connector}); err != nil {
		fail(http.StatusInternalServerError, msgInternal)
		return nil, false
	}
	att.Account = user.Username
	return user, true
}

// ErrWrongCredentials is every refusal of checkCredentials and of a
// DirectoryLogin; the page says the same for each, the audit trail tells
// them apart (a DirectoryLogin's by the *connector.Refusal it wraps).
var (
	ErrWrongCredentials = errors.New("wrong credentials")
	errUnknownUser      = fmt.Errorf("%w: unknown user", ErrWrongCredentials)
	errBadPassword      = fmt.Errorf("%w: bad password", ErrWrongCredentials)
	errUserDisabled     = fmt.Errorf("%w: disabled", ErrWrongCredentials)
)

// checkCredentials returns the user when the password is right and the
// account enabled. The caller holds a hashing slot. On ErrWrongCredentials it still returns the account the
// username named, if any, for logging. Unknown users cost as much time as
// known ones.
func (i *passwordCheck) checkCredentials(ctx context.Context, c credentials) (*store.User, error) {
	if c.connector != "" {
		if i.cfg.Connectors == nil {
			return nil, errUnknownUser
		}
		return i.cfg.Connectors.LoginWithDirectory(ctx, c.connector, c.username, c.password)
	}
	user, err := i.st.UserByUsername(ctx, c.username)
	if errors.Is(err, store.ErrNotFound) {
		password.Burn(c.password)
		return nil, errUnknownUser
	}
	if err != nil {
		return nil, fmt.Errorf("reading the user: %w", err)
	}
	if !user.HasPassword() {
		// A user a connector created has no password: as long to refuse
		// as a wrong one.
		password.Burn(c.password)
		return user, errBadPassword
	}
	ok, err := password.Verify(c.password, user.PasswordHash)
	if err != nil {
		return nil, fmt.Errorf("verifying the password of %q: %w", user.Username, err)
	}
	if !ok {
		return user, errBadPassword
	}
	if user.Disabled() {
		return user, errUserDisabled
	}
	return user, nil
}

// retryAfter sets Retry-After for a lockout that ends at retryAt and
// returns the wait, in whole seconds.
func (i *deps) retryAfter(w http.ResponseWriter, retryAt time.Time) time.Duration {
	return web.RetryAfter(w, i.cfg.Now(), retryAt)
}

// logRefusal logs an attempt refused by its counters, throttled. It names
// the account only when one exists by that name: what people type into
// the username field may be a password.
func (i *deps) logRefusal(ctx context.Context, a attempts.Attempt, res store.Reservation) {
	ok, suppressed := i.refusals.Allow()
	if !ok {
		return
	}
	account := "(none)"
	if a.Account != "" {
		account = "(unknown)"
		if u, err := i.st.UserByUsername(ctx, a.Account); err == nil {
			account = u.Username
		}
	}
	i.log.WarnContext(ctx, "login refused: too many attempts", "counter", attempts.CounterKind(res.Full), "username", account,
		"client_address", a.Address, "known_device", a.Device != "", "until", res.RetryAt.UTC().Format(time.RFC3339),
		"suppressed_since_last", suppressed)
}

// Reason categories of audit.LoginFailed events. What was typed into the
// form is never one of them.
const (
	reasonRateLimited  = "rate_limited" // as many attempts as allowed were being checked
	reasonLocked       = "locked"       // a failed-login counter was full
	reasonBusy         = "busy"         // the password checks were at capacity
	reasonUnknownUser  = "unknown_user" // no account has the username
	reasonBadPassword  = "bad_password" // the password was wrong
	reasonUserDisabled = "disabled"     // the password was right, the account disabled
)

// credentials are what the password form carries: connector names the
// LDAP connector to check them, "" for an nsauth password.
type credentials struct{ username, password, connector string }

// credentialsReason is the reason category of a checkCredentials refusal.
func credentialsReason(err error) string {
	switch {
	case connector.ReasonOf(err) != "":
		return connector.ReasonOf(err)
	case errors.Is(err, errUnknownUser):
		return reasonUnknownUser
	case errors.Is(err, errUserDisabled):
		return reasonUserDisabled
	}
	return reasonBadPassword
}

// loginFailure is what the audit trail keeps of a refused login. The
// account is named only when one exists by the username typed (user):
// people type passwords into the username field.
type loginFailure struct {
	reason   string
	user     *store.User
	clientID string
	counter  string // the full counter's kind, for limits
}

// recordLoginFailure records an audit.LoginFailed event: a refusal, which
// events.Recorder.Refusal aggregates by address, reason and minute.
func (i *deps) recordLoginFailure(ctx context.Context, f loginFailure) error {
	e := audit.Event{Type: audit.LoginFailed, Outcome: audit.Failure, ClientID: f.clientID, Reason: f.reason, Target: f.counter}
	if f.user != nil {
		e.Subject, e.Username = f.user.ID, f.user.Username
	}
	return i.events.Refusal(ctx, e)
}

// recordLockout records the audit.LoginLockedOut event of the attempt that
// took the last place in one of its counters (res.Full): from now until
// res.RetryAt, that account's unknown browsers, that browser or that
// address is kept out. The account is named only when user says it exists.
func (i *deps) recordLockout(ctx context.Context, user *store.User, clientID string, res store.Reservation) error {
	e := audit.Event{Type: audit.LoginLockedOut, Outcome: audit.Failure, ClientID: clientID,
		Reason: "too_many_failures", Target: attempts.CounterKind(res.Full)}
	if user != nil {
		e.Subject, e.Username = user.ID, user.Username
	}
	return i.events.Refusal(ctx, e)
}
