package accountflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
)

// The page's checks of what only its user should know (the password, a
// code) count against the login limits (package attempts), as the login
// page's do: each post takes a place in the account's counters (or in
// its browser's, once the browser logged in) and the client address's;
// a right answer gives them back, a wrong one keeps it. A full counter
// refuses the post before anything is checked.

// Messages of the checks.
const (
	msgWrongPassword   = "That is not your password."
	msgWrongCode       = "That code is not right, or was used already."
	msgTooManyAttempts = "Too many attempts. Try again in %s."
	msgBusy            = "The server is busy checking passwords. Try again in a moment."
)

// check is one post's place in the limits (res: how many are left);
// done ends it.
type check struct {
	att  attempts.Attempt
	res  store.Reservation
	done func()
}

// admit takes a place for a post of a's user in the login limits, or
// answers (429, or the server's error) and returns false. The caller
// defers c.done(), and calls d.passed when every check passed.
func (d *deps) admit(w http.ResponseWriter, r *http.Request, a *account, section string) (*check, bool) {
	ctx := r.Context()
	att := d.cfg.Guard.NewAttempt(r, a.user.Username, clientaddr.Label(clientaddr.Key(d.cfg.Clients.FromRequest(r))))
	done, ok := d.cfg.Guard.Enter(att)
	if !ok {
		w.Header().Set("Retry-After", "1")
		d.show(w, r, a, view{Status: http.StatusTooManyRequests, Section: section, Error: fmt.Sprintf(msgTooManyAttempts, time.Second)})
		return nil, false
	}
	res, err := d.cfg.Guard.Reserve(ctx, att)
	if err != nil {
		done()
		d.fail(w, r, "counting an attempt", err)
		return nil, false
	}
	if !res.OK {
		done()
		if ok, suppressed := d.cfg.Refusals.Allow(); ok {
			d.log.WarnContext(ctx, "account page: check refused: too many attempts", "counter", attempts.CounterKind(res.Full),
				"username", a.user.Username, "suppressed_since_last", suppressed)
		}
		if d.refused(ctx, a, audit.LoginFailed, "locked") != nil {
			d.message(w, http.StatusInternalServerError, web.MsgInternal)
			return nil, false
		}
		wait := web.RetryAfter(w, d.cfg.Now(), res.RetryAt)
		d.show(w, r, a, view{Status: http.StatusTooManyRequests, Section: section, Error: fmt.Sprintf(msgTooManyAttempts, wait)})
		return nil, false
	}
	return &check{att: att, res: res, done: done}, true
}

// passed gives back the places of a post whose checks all passed.
func (d *deps) passed(ctx context.Context, c *check) { d.cfg.Guard.Succeeded(ctx, c.att) }

// errWrong is a check's "no": the password or code is not right.
var errWrong = errors.New("wrong")

// checkPassword checks pw against a's user's password, in a hashing slot
// of the password checks' gate. It returns errWrong when it is not the
// password (or the user has none), ErrHashBusy when the gate is full, or
// another error.
func (d *deps) checkPassword(ctx context.Context, c *check, a *account, pw string) error {
	leave, err := d.cfg.Guard.Hash.Enter(ctx, c.att.Address)
	if err != nil {
		return err
	}
	defer leave()
	// The hash read now, not the session's copy: a password changed since
	// the page was loaded is the one to know.
	u, err := d.st.UserByID(ctx, a.user.ID)
	if err != nil {
		return err
	}
	if !u.HasPassword() || pw == "" || len(pw) > 1024 {
		password.Burn(pw)
		return errWrong
	}
	ok, err := password.Verify(pw, u.PasswordHash)
	switch {
	case err != nil:
		return err
	case !ok:
		return errWrong
	}
	return nil
}

// wrongAnswer answers a check that failed: err is checkPassword's or a
// code check's (errWrong, attempts.ErrHashBusy, or a fault), typ and
// reason the refusal's audit event.
func (d *deps) wrongAnswer(w http.ResponseWriter, r *http.Request, a *account, c *check, section string, err error, typ audit.Type, reason, msg string) {
	ctx := r.Context()
	switch {
	case errors.Is(err, attempts.ErrHashBusy):
		// Nothing was checked: the places go back.
		d.cfg.Guard.Release(ctx, c.att)
		w.Header().Set("Retry-After", "1")
		d.show(w, r, a, view{Status: http.StatusTooManyRequests, Section: section, Error: msgBusy})
		return
	case !errors.Is(err, errWrong):
		d.fail(w, r, "checking "+reason, err)
		return
	}
	if d.refused(ctx, a, typ, reason) != nil {
		d.message(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	if c.res.Remaining == 0 {
		// This answer took the last place: the next is refused until
		// the window is over. Say so now, as the login page does.
		if d.refused(ctx, a, audit.LoginLockedOut, "too_many_failures") != nil {
			d.message(w, http.StatusInternalServerError, web.MsgInternal)
			return
		}
		wait := web.RetryAfter(w, d.cfg.Now(), c.res.RetryAt)
		msg += " " + fmt.Sprintf(msgTooManyAttempts, wait)
	}
	d.show(w, r, a, view{Status: http.StatusUnauthorized, Section: section, Error: msg})
}

// refused records a refused check of a's user: an event of typ (a login
// refusal: the trail aggregates them) for the account page's app.
func (d *deps) refused(ctx context.Context, a *account, typ audit.Type, reason string) error {
	return d.cfg.Events.Refusal(ctx, audit.Event{Type: typ, Outcome: audit.Failure, Subject: a.user.ID, Username: a.user.Username,
		ClientID: AppID, Reason: reason})
}
