package issuer

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
)

//go:embed web
var webFiles embed.FS

// Messages shown on the login page. The wrong-credentials one is the same
// whether the user is unknown, disabled or typed the wrong password.
const (
	msgWrongCredentials = "Wrong username or password."
	msgTooManyAttempts  = "Too many sign-in attempts. Try again in %s."
	msgBusy             = "The server is busy checking other sign-ins. Try again in a moment."
	msgExpired          = "This sign-in link has expired or was already used. Start the login again from your terminal."
	msgIncomplete       = "This sign-in link is incomplete. Start the login again from your terminal."
	msgForged           = "This form could not be verified. Go back, reload the page and sign in again."
	msgInternal         = "Something went wrong on the server. Try again in a moment."
	msgLoggedOut        = "You are signed out. You can close this window."
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
}

type messagePage struct {
	Title   string
	Message string
}

var pageTemplates = template.Must(template.New("").ParseFS(webFiles, "web/templates/*.html"))

func assetHandler() http.Handler {
	sub, err := fs.Sub(webFiles, "web/assets")
	if err != nil {
		return http.NotFoundHandler()
	}
	return http.StripPrefix(assetsPath, http.FileServerFS(sub))
}

// render writes a page with the login CSP. formTarget is the origin the
// form's redirect goes to (CSP form-action covers redirects after a form
// submission); empty allows only our own origin.
func (i *Issuer) render(w http.ResponseWriter, status int, name string, data any, formTarget string) {
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		i.log.Error("rendering a page failed", "page", name, "error", err)
		http.Error(w, msgInternal, http.StatusInternalServerError)
		return
	}
	formAction := "'self'"
	if formTarget != "" {
		formAction += " " + formTarget
	}
	h := w.Header()
	// Only pages that run our passkey script may run scripts, and only
	// ours: same origin, no inline code.
	scripts := ""
	if p, ok := data.(interface{ scripted() bool }); ok && p.scripted() {
		scripts = "script-src 'self'; connect-src 'self'; "
	}
	h.Set("Content-Security-Policy", "default-src 'none'; "+scripts+"style-src 'self'; img-src 'self'; form-action "+formAction+
		"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// same-origin, not no-referrer: with no-referrer, browsers send
	// "Origin: null" on the form post, and the origin check needs the real
	// one. Cross-origin requests (the redirect to the client) still get no
	// referrer.
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (i *Issuer) message(w http.ResponseWriter, status int, title, msg string) {
	i.render(w, status, "message.html", messagePage{Title: title, Message: msg}, "")
}

func (i *Issuer) showLoggedOut(w http.ResponseWriter, _ *http.Request) {
	i.message(w, http.StatusOK, "Signed out", msgLoggedOut)
}

// showLogin renders the form for a pending auth request.
func (i *Issuer) showLogin(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	if id == "" || len(id) > maxAuthRequestIDLen {
		i.message(w, http.StatusBadRequest, "Sign in", msgIncomplete)
		return
	}
	ar, ok := i.pendingRequest(w, r.Context(), id)
	if !ok {
		return
	}
	csrf := i.csrfCookie(w, r)
	i.render(w, http.StatusOK, "login.html", loginPage{Title: "Sign in", Client: ar.ClientID, Device: isDeviceLogin(ar), AuthRequestID: id, CSRF: csrf,
		Passkeys: i.passkeys != nil}, origin(ar.RedirectURI))
}

// pendingRequest opens the sealed auth request id, one a user may still
// log in for, or writes the page explaining why not. The page says no more
// than expired or incomplete: why a blob does not open is nobody's
// business.
func (i *Issuer) pendingRequest(w http.ResponseWriter, ctx context.Context, id string) (*store.AuthRequest, bool) {
	ar, status, msg := i.openPending(ctx, id)
	if ar == nil {
		i.message(w, status, "Sign in", msg)
		return nil, false
	}
	return ar, true
}

// submitLogin is the password step of a login: right, the login goes on
// to what next decides.
func (i *Issuer) submitLogin(w http.ResponseWriter, r *http.Request) {
	if !i.sameOrigin(r) {
		i.refuseLogin(w, r.Context(), loginFailure{reason: reasonCSRF}, http.StatusForbidden, msgForged)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginFormBytes)
	if err := r.ParseForm(); err != nil {
		i.message(w, http.StatusBadRequest, "Sign in", msgForged)
		return
	}
	form := r.PostForm
	id := form.Get("authRequestID")
	if id == "" || len(id) > maxAuthRequestIDLen {
		i.message(w, http.StatusBadRequest, "Sign in", msgIncomplete)
		return
	}
	csrf, ok := i.checkCSRF(r, form.Get("csrf"))
	if !ok {
		i.refuseLogin(w, r.Context(), loginFailure{reason: reasonCSRF}, http.StatusForbidden, msgForged)
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

	ar, ok := i.pendingRequest(w, ctx, id)
	if !ok {
		return
	}
	page := loginPage{Title: "Sign in", Client: ar.ClientID, Device: isDeviceLogin(ar), AuthRequestID: id, CSRF: csrf, Username: username,
		Passkeys: i.passkeys != nil}
	user, ok := i.checkPassword(w, r, &att, username, form.Get("password"), ar.ClientID, func(status int, msg string) {
		page.Error = msg
		i.render(w, status, "login.html", page, origin(ar.RedirectURI))
	})
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
func (i *Issuer) admitAttempt(w http.ResponseWriter, r *http.Request, username string) (attempt, func(), bool) {
	ctx := r.Context()
	att := i.guard.newAttempt(r, username, clientaddr.Label(clientaddr.Key(i.cfg.Clients.FromRequest(r))))
	done, ok := i.guard.enter(att)
	if ok {
		return att, done, true
	}
	i.cfg.Observer.login(LoginBusy)
	i.logRefusal(ctx, att, store.Reservation{Full: att.counters[0].Key, RetryAt: i.cfg.Now().Add(time.Second)})
	if i.recordLoginFailure(ctx, loginFailure{reason: reasonRateLimited, counter: counterKind(att.counters[0].Key)}) != nil {
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
func (i *Issuer) checkPassword(w http.ResponseWriter, r *http.Request, att *attempt, username, pw, clientID string, fail func(status int, msg string)) (*store.User, bool) {
	ctx := r.Context()
	res, err := i.guard.reserve(ctx, *att)
	if err != nil {
		i.log.ErrorContext(ctx, "counting a login attempt failed", "error", err)
		i.cfg.Observer.login(LoginError)
		fail(http.StatusInternalServerError, msgInternal)
		return nil, false
	}
	if !res.OK {
		i.logRefusal(ctx, *att, res)
		i.cfg.Observer.login(LoginLockedOut)
		if i.recordLoginFailure(ctx, loginFailure{reason: reasonLocked, clientID: clientID, counter: counterKind(res.Full)}) != nil {
			fail(http.StatusInternalServerError, msgInternal)
			return nil, false
		}
		fail(http.StatusTooManyRequests, fmt.Sprintf(msgTooManyAttempts, i.retryAfter(w, res.RetryAt)))
		return nil, false
	}
	leave, err := i.guard.hash.enter(ctx, att.address)
	if err != nil {
		// No password was checked: the attempt gives its places back.
		i.guard.release(ctx, *att)
		if errors.Is(err, errHashBusy) {
			i.cfg.Observer.login(LoginBusy)
			if ok, suppressed := i.refusals.allow(); ok {
				i.log.WarnContext(ctx, "login refused: password checks are at capacity", "client_address", att.address, "suppressed_since_last", suppressed)
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
	user, err := i.checkCredentials(ctx, username, pw)
	leave()
	if err != nil {
		if !errors.Is(err, errWrongCredentials) {
			i.log.ErrorContext(ctx, "checking credentials failed", "error", err)
			i.cfg.Observer.login(LoginError)
			fail(http.StatusInternalServerError, msgInternal)
			return nil, false
		}
		// The username is logged only when it names an account: people type
		// passwords into the username field, and those must not reach logs.
		account := "(unknown)"
		if user != nil {
			account = user.Username
		}
		i.log.InfoContext(ctx, "failed login", "username", account, "client_address", att.address, "known_device", att.device != "")
		if i.recordLoginFailure(ctx, loginFailure{reason: credentialsReason(err), user: user, clientID: clientID}) != nil {
			fail(http.StatusInternalServerError, msgInternal)
			return nil, false
		}
		i.cfg.Observer.login(LoginWrongCredentials)
		if res.Remaining == 0 {
			i.cfg.Observer.lockout()
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
	if err := i.record(ctx, audit.Event{Type: audit.LoginSucceeded, Subject: user.ID, Username: user.Username, ClientID: clientID}); err != nil {
		fail(http.StatusInternalServerError, msgInternal)
		return nil, false
	}
	att.account = user.Username
	return user, true
}

// completeLogin ends a login whose user proved every factor needed (amr):
// a device login goes on to the approval page; a browser login completes
// its auth request (once: a second completion finds it taken) and is
// redirected to the client with a code. The caller has given the
// attempt's places back (loginSucceeded).
func (i *Issuer) completeLogin(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, user *store.User, amr []string, csrf string) {
	ctx := r.Context()
	if isDeviceLogin(ar) {
		i.showDeviceApproval(w, ctx, ar, user, amr, csrf)
		return
	}

	if err := i.st.InsertCompletedAuthRequest(ctx, ar, user.ID, amr, CodeTTL+time.Minute); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			i.message(w, http.StatusBadRequest, "Sign in", msgExpired)
			return
		}
		i.log.ErrorContext(ctx, "completing an auth request failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	code := store.RandomToken(32)
	if err := i.storage.SaveAuthCode(ctx, ar.ID, code); err != nil {
		i.log.ErrorContext(ctx, "storing a code failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	// The code is stored but not yet handed out: unrecorded, it never is.
	if err := i.record(ctx, audit.Event{Type: audit.CodeIssued, Subject: user.ID, Username: user.Username, ClientID: ar.ClientID,
		Refs: i.refs(audit.RefCode, code, audit.RefGrant, ar.ID)}); err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	target, err := op.AuthResponseURL(ar.RedirectURI, oidc.ResponseTypeCode, oidc.ResponseModeQuery,
		&op.CodeResponseType{Code: code, State: ar.State}, oidc.NewEncoder())
	if err != nil {
		i.log.ErrorContext(ctx, "building the redirect failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	i.log.InfoContext(ctx, "login", "username", user.Username, "client_id", ar.ClientID)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// errWrongCredentials is every refusal of checkCredentials; the page says
// the same for each, the audit trail tells them apart.
var (
	errWrongCredentials = errors.New("wrong credentials")
	errUnknownUser      = fmt.Errorf("%w: unknown user", errWrongCredentials)
	errBadPassword      = fmt.Errorf("%w: bad password", errWrongCredentials)
	errUserDisabled     = fmt.Errorf("%w: disabled", errWrongCredentials)
)

// checkCredentials returns the user when the password is right and the
// account enabled. The caller holds a hashing slot. On errWrongCredentials it still returns the account the
// username named, if any, for logging. Unknown users cost as much time as
// known ones.
func (i *Issuer) checkCredentials(ctx context.Context, username, pw string) (*store.User, error) {
	user, err := i.st.UserByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		password.Burn(pw)
		return nil, errUnknownUser
	}
	if err != nil {
		return nil, fmt.Errorf("reading the user: %w", err)
	}
	ok, err := password.Verify(pw, user.PasswordHash)
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

// sameOrigin refuses cross-site form posts when the browser says where the
// request comes from. Requests without these headers (non-browser clients)
// still need the CSRF token.
func (i *Issuer) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != i.origin {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

func (i *Issuer) csrfCookieName() string {
	if i.secure {
		return "__Host-nsauth_csrf"
	}
	return "nsauth_csrf"
}

// csrfCookie returns the browser's CSRF token (double-submit cookie),
// setting a new one when it has none. Reusing it lets several login tabs
// coexist.
func (i *Issuer) csrfCookie(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(i.csrfCookieName()); err == nil && validToken(c.Value) {
		return c.Value
	}
	v := store.RandomToken(32)
	http.SetCookie(w, &http.Cookie{
		Name:     i.csrfCookieName(),
		Value:    v,
		Path:     "/",
		MaxAge:   int(AuthRequestTTL / time.Second),
		HttpOnly: true,
		Secure:   i.secure,
		SameSite: http.SameSiteStrictMode,
	})
	return v
}

// checkCSRF compares the form's token with the cookie's.
func (i *Issuer) checkCSRF(r *http.Request, formValue string) (string, bool) {
	c, err := r.Cookie(i.csrfCookieName())
	if err != nil || !validToken(c.Value) || !validToken(formValue) {
		return "", false
	}
	return c.Value, subtle.ConstantTimeCompare([]byte(c.Value), []byte(formValue)) == 1
}

// validToken accepts what csrfCookie generates: 32 random bytes as
// store.RandomToken spells them.
func validToken(v string) bool { return isRandomToken(v, 32) }

// isRandomToken accepts what store.RandomToken(n) generates: the unpadded
// base64url spelling of n bytes, nothing else.
func isRandomToken(v string, n int) bool {
	if len(v) != base64.RawURLEncoding.EncodedLen(n) {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// origin returns scheme://host of a URL, for CSP, or "" when there is none.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	// CSP source expressions cannot carry arbitrary characters; our
	// redirect URIs are already validated, but stay strict.
	if strings.ContainsAny(u.Host, " ;,'\"") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// retryAfter sets Retry-After for a lockout that ends at retryAt and
// returns the wait, in whole seconds.
func (i *Issuer) retryAfter(w http.ResponseWriter, retryAt time.Time) time.Duration {
	wait := max(time.Second, retryAt.Sub(i.cfg.Now()).Round(time.Second))
	w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
	return wait
}

// logRefusal logs an attempt refused by its counters, throttled. It names
// the account only when one exists by that name: what people type into
// the username field may be a password.
func (i *Issuer) logRefusal(ctx context.Context, a attempt, res store.Reservation) {
	ok, suppressed := i.refusals.allow()
	if !ok {
		return
	}
	account := "(none)"
	if a.account != "" {
		account = "(unknown)"
		if u, err := i.st.UserByUsername(ctx, a.account); err == nil {
			account = u.Username
		}
	}
	i.log.WarnContext(ctx, "login refused: too many attempts", "counter", counterKind(res.Full), "username", account,
		"client_address", a.address, "known_device", a.device != "", "until", res.RetryAt.UTC().Format(time.RFC3339),
		"suppressed_since_last", suppressed)
}

// Reason categories of audit.LoginFailed events. What was typed into the
// form is never one of them.
const (
	reasonCSRF         = "csrf"         // the form failed the origin or CSRF check
	reasonRateLimited  = "rate_limited" // as many attempts as allowed were being checked
	reasonLocked       = "locked"       // a failed-login counter was full
	reasonBusy         = "busy"         // the password checks were at capacity
	reasonUnknownUser  = "unknown_user" // no account has the username
	reasonBadPassword  = "bad_password" // the password was wrong
	reasonUserDisabled = "disabled"     // the password was right, the account disabled
)

// credentialsReason is the reason category of a checkCredentials refusal.
func credentialsReason(err error) string {
	switch {
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
// recordRefusal aggregates by address, reason and minute.
func (i *Issuer) recordLoginFailure(ctx context.Context, f loginFailure) error {
	e := audit.Event{Type: audit.LoginFailed, Outcome: audit.Failure, ClientID: f.clientID, Reason: f.reason, Target: f.counter}
	if f.user != nil {
		e.Subject, e.Username = f.user.ID, f.user.Username
	}
	return i.recordRefusal(ctx, e)
}

// refuseLogin records f and writes the page of a refusal, or the server
// error's when the event was required and not recorded.
func (i *Issuer) refuseLogin(w http.ResponseWriter, ctx context.Context, f loginFailure, status int, msg string) {
	if i.recordLoginFailure(ctx, f) != nil {
		status, msg = http.StatusInternalServerError, msgInternal
	}
	i.message(w, status, "Sign in", msg)
}
