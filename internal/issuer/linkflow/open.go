package linkflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
	"github.com/nsauth/nsauth/internal/issuer/passkey"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// linkCookieTTL bounds how long the browser keeps a link's secret after
// opening it (never past the link's expiry).
const linkCookieTTL = time.Hour

// cookieName is the cookie that holds the secret of the link this
// browser opened.
func (f *Flow) cookieName() string { return web.CookieName("nsauth_link", f.cfg.Secure) }

// setCookie keeps secret in the browser for maxAge (negative: removes it).
// HttpOnly, and SameSite=Lax so that the redirect that follows a click in
// a mail (a top-level navigation from another site) carries it.
func (f *Flow) setCookie(w http.ResponseWriter, secret string, maxAge time.Duration) {
	age := int(maxAge / time.Second)
	if age <= 0 {
		age = -1
	}
	http.SetCookie(w, &http.Cookie{Name: f.cookieName(), Value: secret, Path: "/", MaxAge: age,
		HttpOnly: true, Secure: f.cfg.Secure, SameSite: http.SameSiteLaxMode})
}

// cookieSecret is the secret of the link this browser opened, or "".
func (f *Flow) cookieSecret(r *http.Request) string {
	c, err := r.Cookie(f.cookieName())
	if err != nil || !web.IsRandomToken(c.Value, SecretBytes) {
		return ""
	}
	return c.Value
}

// errLinkGone: the link does not exist, has expired (audited and deleted
// then), or its user is disabled or gone.
var errLinkGone = errors.New("link gone")

// liveLink returns the live link of secret and its enabled user. An
// expired link found here is audited (link.expired, with its ref) and
// deleted.
func (f *Flow) liveLink(ctx context.Context, secret string) (*store.Link, *store.User, error) {
	if !web.IsRandomToken(secret, SecretBytes) {
		return nil, nil, errLinkGone
	}
	l, err := f.cfg.Store.LinkBySecret(ctx, secret)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errLinkGone
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading a link: %w", err)
	}
	u, err := f.cfg.Store.UserByID(ctx, l.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errLinkGone
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading a link's user: %w", err)
	}
	if !f.cfg.Now().Before(l.ExpiresAt) {
		if err := f.cfg.Store.DeleteLink(ctx, l.ID); err == nil {
			// Deleted here, so recorded once even when two requests race.
			if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.LinkExpired, Subject: u.ID, Username: u.Username,
				Reason: l.Purpose, Target: l.ID}); err != nil {
				return nil, nil, err
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, nil, fmt.Errorf("deleting an expired link: %w", err)
		}
		return nil, nil, errLinkGone
	}
	if u.Disabled() {
		return nil, nil, errLinkGone
	}
	return l, u, nil
}

// linkFailed answers a request whose link could not be read.
func (f *Flow) linkFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errLinkGone) {
		f.setCookie(w, "", -1)
		f.message(w, http.StatusBadRequest, titleSetPassword, msgLinkGone)
		return
	}
	f.log.ErrorContext(r.Context(), "reading a one-time link failed", "error", err)
	f.message(w, http.StatusInternalServerError, titleSetPassword, msgInternal)
}

// passwordPage is the data of link.html.
type passwordPage struct {
	Title    string
	Error    string
	Username string
	CSRF     string
	// Reset: the link is a reset link; Factors: its user has second
	// factors, one of which the form asks for.
	Reset   bool
	Factors bool
	// TOTP: the user has an authenticator app, whose code the form asks.
	TOTP bool
	// Passkey: the user has passkeys, one of which the form's passkey
	// button proves (the login's passkey script, through the step Token).
	Passkey bool
	Token   string
}

// Scripted: the page runs the passkey script when it offers a passkey.
func (p passwordPage) Scripted() bool { return p.Passkey }

// open serves GET /link: with ?link=SECRET it checks the link, keeps the
// secret in this browser and sends the browser to the clean URL; without,
// it shows the password form of the link the browser opened.
func (f *Flow) open(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if r.URL.Query().Has("link") {
		secret := r.URL.Query().Get("link")
		l, _, err := f.liveLink(ctx, secret)
		if err != nil {
			f.linkFailed(w, r, err)
			return
		}
		f.setCookie(w, secret, min(linkCookieTTL, l.ExpiresAt.Sub(f.cfg.Now())))
		http.Redirect(w, r, Path, http.StatusSeeOther)
		return
	}
	_, l, u, ok := f.browserLink(w, r)
	if !ok {
		return
	}
	csrf := f.cfg.CSRF.Cookie(w, r)
	page, err := f.newPasswordPage(ctx, l, u, csrf)
	if err == nil && page.Passkey {
		// The step a passkey's ceremony is kept on (the login's
		// /login/passkey/begin, mode second_factor, begins it there).
		page.Token, err = f.pause(ctx, &step{user: u, csrf: csrf}, store.PendingVerify, "")
	}
	if err != nil {
		f.log.ErrorContext(ctx, "preparing a link's page failed", "error", err)
		f.message(w, http.StatusInternalServerError, titleSetPassword, msgInternal)
		return
	}
	f.cfg.Pages.Render(w, http.StatusOK, "link.html", page, "")
}

// browserLink is the live link this browser opened (its secret kept in
// the link cookie), and its user; else it has answered. Another browser
// than the one that opened the link has no secret to send, so it cannot
// go on.
func (f *Flow) browserLink(w http.ResponseWriter, r *http.Request) (string, *store.Link, *store.User, bool) {
	secret := f.cookieSecret(r)
	if secret == "" {
		f.message(w, http.StatusBadRequest, titleSetPassword, msgOpenAgain)
		return "", nil, nil, false
	}
	l, u, err := f.liveLink(r.Context(), secret)
	if err != nil {
		f.linkFailed(w, r, err)
		return "", nil, nil, false
	}
	return secret, l, u, true
}

func (f *Flow) newPasswordPage(ctx context.Context, l *store.Link, u *store.User, csrf string) (passwordPage, error) {
	page := passwordPage{Title: titleSetPassword, Username: u.Username, CSRF: csrf, Reset: l.Purpose == store.LinkReset}
	fs, err := f.mfa().UserFactors(ctx, u.ID)
	if err != nil {
		return page, err
	}
	page.Factors, page.TOTP = fs.Any() || fs.RecoveryCodes > 0, fs.TOTP
	page.Passkey = fs.Passkeys > 0 && f.cfg.Passkeys != nil
	return page, nil
}

func (f *Flow) mfa() *mfa.Checker { return &mfa.Checker{Store: f.cfg.Store, Now: f.cfg.Now} }

// submitPassword serves POST /link: the new password, twice (and a second
// factor the user has). Right, the link is used up, the password set, and
// the flow goes on to the second factor or the session.
func (f *Flow) submitPassword(w http.ResponseWriter, r *http.Request) {
	ctx, form := r.Context(), r.PostForm
	secret, l, u, ok := f.browserLink(w, r)
	if !ok {
		return
	}
	page, err := f.newPasswordPage(ctx, l, u, web.Token(r))
	if err != nil {
		f.log.ErrorContext(ctx, "reading a user's second factors failed", "error", err)
		f.message(w, http.StatusInternalServerError, titleSetPassword, msgInternal)
		return
	}
	page.Token = form.Get("token")
	if !web.IsRandomToken(page.Token, 32) {
		page.Token = ""
	}
	again := func(status int, msg string) {
		page.Error = msg
		f.cfg.Pages.Render(w, status, "link.html", page, "")
	}
	pw := form.Get("password")
	if pw != form.Get("password2") {
		again(http.StatusBadRequest, msgMismatch)
		return
	}
	if err := password.Validate(pw); err != nil {
		again(http.StatusBadRequest, err.Error())
		return
	}
	amr := []string{mfa.AMRPassword}
	if page.Factors {
		// Only a reset link's user can have factors: an invited user is
		// new. Either way the factor is asked before anything changes.
		added, ok := f.checkFactor(w, r, u, again)
		if !ok {
			return
		}
		amr = mfa.AddAMR(amr, added)
	}
	hash, err := password.Hash(pw)
	if err != nil {
		f.log.ErrorContext(ctx, "hashing a password failed", "error", err)
		f.message(w, http.StatusInternalServerError, titleSetPassword, msgInternal)
		return
	}
	// Used up first: of two browsers at once, exactly one sets the
	// password.
	if _, err := f.cfg.Store.TakeLink(ctx, secret, u.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			f.linkFailed(w, r, errLinkGone)
			return
		}
		f.linkFailed(w, r, err)
		return
	}
	f.setCookie(w, "", -1)
	// Its other sessions and tokens end with the password change
	// (store.SetPassword).
	if err := f.cfg.Store.SetPassword(ctx, u.Username, hash); err != nil {
		f.log.ErrorContext(ctx, "setting a password by link failed", "error", err)
		f.message(w, http.StatusInternalServerError, titleSetPassword, msgInternal)
		return
	}
	if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.LinkUsed, Subject: u.ID, Username: u.Username, Reason: l.Purpose, Target: l.ID}); err != nil {
		f.message(w, http.StatusInternalServerError, titleSetPassword, msgInternal)
		return
	}
	st := &step{user: u, csrf: web.Token(r), amr: amr}
	f.next(w, r, st)
}

// checkFactor checks the second factor typed on a reset link's form (a
// TOTP code, or a recovery code), counted on the login's attempt limits
// like a login's. It returns the amr values it proved, or has answered.
func (f *Flow) checkFactor(w http.ResponseWriter, r *http.Request, u *store.User, again func(int, string)) ([]string, bool) {
	ctx, form := r.Context(), r.PostForm
	att := f.cfg.Guard.NewAttempt(r, u.Username, clientLabel(f.cfg.Clients, r))
	done, ok := f.cfg.Guard.Enter(att)
	if !ok {
		w.Header().Set("Retry-After", "1")
		again(http.StatusTooManyRequests, fmt.Sprintf(msgTooMany, time.Second))
		return nil, false
	}
	defer done()
	res, err := f.cfg.Guard.Reserve(ctx, att)
	if err != nil {
		f.log.ErrorContext(ctx, "counting an attempt failed", "error", err)
		again(http.StatusInternalServerError, msgInternal)
		return nil, false
	}
	if !res.OK {
		again(http.StatusTooManyRequests, fmt.Sprintf(msgTooMany, web.RetryAfter(w, f.cfg.Now(), res.RetryAt)))
		return nil, false
	}
	method, code := "totp", form.Get("code")
	if form.Get("method") == "recovery" || code == "" {
		method, code = "recovery_code", form.Get("recovery_code")
	}
	added := []string{mfa.AMROTP}
	switch {
	case form.Get("credential") != "":
		method = "passkey"
		added, err = f.checkPasskey(ctx, u, form.Get("token"), web.Token(r), form.Get("credential"))
	case method == "totp":
		err = f.mfa().CheckTOTP(ctx, u.ID, code)
	default:
		err = f.mfa().UseRecoveryCode(ctx, u.ID, code)
	}
	switch {
	case errors.Is(err, secondfactor.ErrWrongCode), errors.Is(err, mfa.ErrCodeReplayed):
		if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.SecondFactorFailed, Outcome: audit.Failure, Subject: u.ID,
			Username: u.Username, Reason: "wrong_code"}); err != nil {
			again(http.StatusInternalServerError, msgInternal)
			return nil, false
		}
		again(http.StatusUnauthorized, msgWrongCode)
		return nil, false
	case err != nil:
		f.log.ErrorContext(ctx, "checking a second factor failed", "error", err)
		again(http.StatusInternalServerError, msgInternal)
		return nil, false
	}
	f.cfg.Guard.Succeeded(ctx, att)
	if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.SecondFactorSucceeded, Subject: u.ID, Username: u.Username, Reason: method}); err != nil {
		again(http.StatusInternalServerError, msgInternal)
		return nil, false
	}
	return added, true
}

// checkPasskey checks the passkey assertion the form carries against the
// ceremony kept on the page's step (token, with this browser's CSRF
// token): a passkey of u's, or secondfactor.ErrWrongCode. Right, the step
// is used up and the passkey's amr values returned.
func (f *Flow) checkPasskey(ctx context.Context, u *store.User, token, csrf, credential string) ([]string, error) {
	if f.cfg.Passkeys == nil || !web.IsRandomToken(token, 32) {
		return nil, secondfactor.ErrWrongCode
	}
	data, err := f.cfg.Store.TakePendingCeremony(ctx, stepKey(token, csrf))
	if errors.Is(err, store.ErrNotFound) {
		return nil, secondfactor.ErrWrongCode
	}
	if err != nil {
		return nil, err
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(data, &session); err != nil {
		return nil, fmt.Errorf("decoding a passkey ceremony: %w", err)
	}
	_, pk, _, err := (&passkey.Verifier{RP: f.cfg.Passkeys, Store: f.cfg.Store}).Verify(ctx, &session, u, credential)
	var refused *passkey.Refusal
	if errors.As(err, &refused) {
		if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.PasskeyFailed, Outcome: audit.Failure, Subject: u.ID, Username: u.Username,
			Reason: refused.Reason}); err != nil {
			return nil, err
		}
		return nil, secondfactor.ErrWrongCode
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.cfg.Store.TakePendingMFA(ctx, stepKey(token, csrf)); err != nil {
		// Of two answers at once, one goes on.
		return nil, secondfactor.ErrWrongCode
	}
	if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.PasskeyUsed, Subject: u.ID, Username: u.Username, Reason: "reset_link",
		Target: pk.Name}); err != nil {
		return nil, err
	}
	return []string{passkey.Method(pk)}, nil
}
