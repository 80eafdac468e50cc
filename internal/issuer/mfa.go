package issuer

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// The second-factor step of the login (issue 15). After the password,
// afterFirstFactor decides what comes next:
//
//   - the user has a second factor: the login waits, as a pending state in
//     the store (store.PendingMFA, kind verify) tied to this auth request,
//     and the second-factor page asks for it;
//   - the user has none and the policy requires one (Config.RequireSecondFactor):
//     the login waits (kind enroll) and the enrolment page offers a TOTP
//     secret; once confirmed, the recovery codes are shown once and the
//     login goes on (kind enrolled);
//   - otherwise the login is complete (completeLogin).
//
// The browser holds the state's random token in the form, with the sealed
// auth request and the CSRF token; the store holds its digest. The state
// is good for its auth request only, for PendingMFATTL, and once: the step
// that completes the login takes it (store.TakePendingMFA). Every code
// typed counts on the login limits like a password (the guard), and a
// login's places are given back only when it is complete, so knowing the
// password does not reset the count of wrong codes.
//
// Other methods plug in through factors (what the user has) and the
// second-factor page's blocks ("mfa_passkey", "mfa_enroll_passkey"); a
// method that proves the second factor calls finishSecondFactor.

// PendingMFATTL is how long a login waits for its second factor.
const PendingMFATTL = 5 * time.Minute

// Paths of the second-factor pages.
const (
	mfaPath         = "/login/mfa"
	mfaEnrollPath   = "/login/mfa/enroll"
	mfaContinuePath = "/login/mfa/continue"
)

// pendingEnrolled is the kind of a login whose user just enrolled: the
// recovery codes are on screen, and continuing completes the login.
const pendingEnrolled = store.PendingEnrolled

// Messages of the second-factor pages.
const (
	msgWrongCode      = "That code is not right. Check the time on your device and try again."
	msgWrongRecovery  = "That recovery code is not right, or was already used."
	msgMFAExpired     = "This sign-in took too long or was already finished. Start the login again from your terminal."
	msgAlreadyEnabled = "A second factor was set up for this account meanwhile. Start the login again from your terminal."
)

// amr values (RFC 8176).
const (
	amrPassword = "pwd"
	amrOTP      = "otp"
	amrMFA      = "mfa"
)

// factors is what second factors a user has.
type factors struct {
	TOTP bool
	// RecoveryCodes is how many unused recovery codes the user has.
	RecoveryCodes int
	// Passkeys is how many passkeys the user has registered; the
	// second-factor page offers a passkey only when it is above 0.
	Passkeys int
}

// any reports whether the user has a factor that logs in on its own.
// Recovery codes do not count: they are for when the factor is lost.
func (f factors) any() bool { return f.TOTP || f.Passkeys > 0 }

// userFactors returns what second factors a user has.
func (i *Issuer) userFactors(ctx context.Context, userID string) (factors, error) {
	sf, err := i.st.SecondFactors(ctx, userID)
	if err != nil {
		return factors{}, err
	}
	return factors{TOTP: sf.TOTP, RecoveryCodes: sf.RecoveryCodes, Passkeys: sf.Passkeys}, nil
}

// mfaPage is the data of the second-factor pages (mfa.html,
// mfa_enroll.html, mfa_recovery.html).
type mfaPage struct {
	Title         string
	Client        string
	Device        bool
	Username      string
	Error         string
	AuthRequestID string
	CSRF          string
	// Token is the pending state's token.
	Token   string
	Factors factors
	// Passkeys: passkeys are available here (the issuer's host can be a
	// WebAuthn relying party, passkey.go), so the pages offer them.
	Passkeys bool
	// Enrolment: the QR code of the otpauth URI, and the secret as text
	// for typing.
	QR     template.HTML
	Secret string
	// RecoveryCodes are shown once, after enrolment; Enrolled names the
	// factor just set up ("authenticator app", "passkey") and Continue is
	// where the page's button posts (showRecoveryCodes).
	RecoveryCodes []string
	Enrolled      string
	Continue      string
}

// afterFirstFactor is how a login goes on after its first factor (amr so
// far: ["pwd"]): to the second-factor page, to enrolment, or to its end.
// id is the sealed auth request, att the attempt that checked the
// password: its places are given back only when the login is complete.
func (i *Issuer) afterFirstFactor(w http.ResponseWriter, r *http.Request, id string, ar *store.AuthRequest, user *store.User, amr []string, csrf string, att attempt) {
	ctx := r.Context()
	f, err := i.userFactors(ctx, user.ID)
	if err != nil {
		i.log.ErrorContext(ctx, "reading second factors failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	page := mfaPage{Client: ar.ClientID, Device: isDeviceLogin(ar), Username: user.Username, AuthRequestID: id, CSRF: csrf, Factors: f,
		Passkeys: i.passkeys != nil}
	switch {
	case f.any():
		p := &store.PendingMFA{AuthRequestID: ar.ID, UserID: user.ID, AMR: amr, Kind: store.PendingVerify, ExpiresAt: i.pendingExpiry(ar)}
		if page.Token, err = i.newPending(ctx, p, csrf); err != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		page.Title = "Second factor"
		i.render(w, http.StatusOK, "mfa.html", page, origin(ar.RedirectURI))
	case i.cfg.RequireSecondFactor:
		secret, _, err := secondfactor.NewTOTP(i.totpIssuer(), user.Username)
		if err == nil {
			err = i.fillEnrollPage(&page, user, secret)
		}
		if err != nil {
			i.log.ErrorContext(ctx, "preparing a TOTP secret failed", "error", err)
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		p := &store.PendingMFA{AuthRequestID: ar.ID, UserID: user.ID, AMR: amr, Kind: store.PendingEnroll, TOTPSecret: secret, ExpiresAt: i.pendingExpiry(ar)}
		if page.Token, err = i.newPending(ctx, p, csrf); err != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		page.Title = "Set up a second factor"
		i.render(w, http.StatusOK, "mfa_enroll.html", page, origin(ar.RedirectURI))
	default:
		i.cfg.Observer.login(LoginSucceeded)
		i.loginSucceeded(w, r.Context(), att)
		if i.offerPasskey(w, r, ar, id, user, amr, csrf) {
			return
		}
		i.completeLogin(w, r, ar, user, amr, csrf)
	}
}

// pendingExpiry is when a pending state for ar ends: after PendingMFATTL,
// or with the auth request if that is sooner.
func (i *Issuer) pendingExpiry(ar *store.AuthRequest) time.Time {
	exp := i.cfg.Now().Add(PendingMFATTL)
	if !ar.ExpiresAt.IsZero() && ar.ExpiresAt.Before(exp) {
		exp = ar.ExpiresAt
	}
	return exp
}

// newPending stores p and returns the token the page's form carries.
func (i *Issuer) newPending(ctx context.Context, p *store.PendingMFA, csrf string) (string, error) {
	token := store.RandomToken(32)
	if err := i.st.CreatePendingMFA(ctx, p, pendingKey(token, csrf)); err != nil {
		i.log.ErrorContext(ctx, "storing a pending second factor failed", "error", err)
		return "", err
	}
	return token, nil
}

// pendingKey is what a pending state is stored under: the form's token
// and the browser's CSRF token together, so the state works only in the
// browser that typed the password, as a device ticket does.
func pendingKey(token, csrf string) string { return token + "." + csrf }

// totpIssuer is the issuer name in otpauth:// URIs: what authenticator
// apps show above the account.
func (i *Issuer) totpIssuer() string {
	_, host, _ := strings.Cut(i.origin, "://")
	return "nsauth " + host
}

// loginSucceeded gives back a complete login's places in the counters and
// gives the browser its device cookie for the account.
func (i *Issuer) loginSucceeded(w http.ResponseWriter, ctx context.Context, att attempt) {
	i.guard.succeeded(ctx, att)
	i.guard.setDeviceCookie(w, att)
}

// mfaForm is a parsed, checked post of a second-factor page.
type mfaForm struct {
	id      string // the sealed auth request
	csrf    string
	token   string
	ar      *store.AuthRequest
	pending *store.PendingMFA
	user    *store.User
	page    mfaPage
}

// readMFAForm checks what every second-factor post must carry (same
// origin, size, CSRF token, a live pending state of the kind wanted for
// this very auth request, an enabled user) or writes the refusal.
func (i *Issuer) readMFAForm(w http.ResponseWriter, r *http.Request, kind string) (*mfaForm, bool) {
	ctx := r.Context()
	if !i.sameOrigin(r) {
		i.refuseSecondFactor(w, ctx, nil, "", reasonCSRF, http.StatusForbidden, msgForged)
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginFormBytes)
	if err := r.ParseForm(); err != nil {
		i.message(w, http.StatusBadRequest, "Sign in", msgForged)
		return nil, false
	}
	form := r.PostForm
	f := &mfaForm{id: form.Get("authRequestID"), token: form.Get("token")}
	if f.id == "" || len(f.id) > maxAuthRequestIDLen || !isRandomToken(f.token, 32) {
		i.message(w, http.StatusBadRequest, "Sign in", msgIncomplete)
		return nil, false
	}
	var ok bool
	if f.csrf, ok = i.checkCSRF(r, form.Get("csrf")); !ok {
		i.refuseSecondFactor(w, ctx, nil, "", reasonCSRF, http.StatusForbidden, msgForged)
		return nil, false
	}
	if f.ar, ok = i.pendingRequest(w, ctx, f.id); !ok {
		return nil, false
	}
	p, err := i.st.PendingMFA(ctx, pendingKey(f.token, f.csrf))
	switch {
	case errors.Is(err, store.ErrNotFound):
		i.message(w, http.StatusBadRequest, "Sign in", msgMFAExpired)
		return nil, false
	case err != nil:
		i.log.ErrorContext(ctx, "reading a pending second factor failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return nil, false
	case p.AuthRequestID != f.ar.ID || p.Kind != kind:
		// A state of another login (or another step) is no good here.
		i.message(w, http.StatusBadRequest, "Sign in", msgMFAExpired)
		return nil, false
	}
	f.pending = p
	user, err := i.st.UserByID(ctx, p.UserID)
	if err != nil || user.Disabled() {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			i.log.ErrorContext(ctx, "reading a user failed", "error", err)
		}
		i.message(w, http.StatusBadRequest, "Sign in", msgMFAExpired)
		return nil, false
	}
	f.user = user
	fs, err := i.userFactors(ctx, user.ID)
	if err != nil {
		i.log.ErrorContext(ctx, "reading second factors failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return nil, false
	}
	f.page = mfaPage{Title: "Second factor", Client: f.ar.ClientID, Device: isDeviceLogin(f.ar), Username: user.Username,
		AuthRequestID: f.id, CSRF: f.csrf, Token: f.token, Factors: fs, Passkeys: i.passkeys != nil}
	return f, true
}

// guardCode counts a typed code on the login limits, as a password is
// counted. It returns the attempt and a function ending it, or writes the
// refusal (too many attempts) and returns false.
func (i *Issuer) guardCode(w http.ResponseWriter, r *http.Request, f *mfaForm, tmpl string) (attempt, func(), store.Reservation, bool) {
	ctx := r.Context()
	att := i.guard.newAttempt(r, f.user.Username, clientaddr.Label(clientaddr.Key(i.cfg.Clients.FromRequest(r))))
	done, ok := i.guard.enter(att)
	if !ok {
		i.cfg.Observer.login(LoginBusy)
		w.Header().Set("Retry-After", "1")
		i.renderMFAError(w, http.StatusTooManyRequests, tmpl, f, fmt.Sprintf(msgTooManyAttempts, time.Second))
		return att, nil, store.Reservation{}, false
	}
	res, err := i.guard.reserve(ctx, att)
	if err != nil {
		done()
		i.log.ErrorContext(ctx, "counting a login attempt failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return att, nil, res, false
	}
	if !res.OK {
		done()
		i.logRefusal(ctx, att, res)
		i.cfg.Observer.login(LoginLockedOut)
		if i.recordSecondFactorFailure(ctx, f.user, f.ar.ClientID, reasonLocked, counterKind(res.Full)) != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return att, nil, res, false
		}
		wait := i.retryAfter(w, res.RetryAt)
		i.renderMFAError(w, http.StatusTooManyRequests, tmpl, f, fmt.Sprintf(msgTooManyAttempts, wait))
		return att, nil, res, false
	}
	return att, done, res, true
}

// wrongCode answers a refused code: the audit event, the lockout when the
// attempt took the last place, and the page again with msg.
func (i *Issuer) wrongCode(w http.ResponseWriter, ctx context.Context, f *mfaForm, tmpl, reason string, res store.Reservation, msg string) {
	i.log.InfoContext(ctx, "wrong second factor", "username", f.user.Username, "reason", reason)
	i.cfg.Observer.login(LoginWrongCredentials)
	if i.recordSecondFactorFailure(ctx, f.user, f.ar.ClientID, reason, "") != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	if res.Remaining == 0 {
		i.cfg.Observer.lockout()
		if i.recordLockout(ctx, f.user, f.ar.ClientID, res) != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		wait := i.retryAfter(w, res.RetryAt)
		i.renderMFAError(w, http.StatusUnauthorized, tmpl, f, msg+" "+fmt.Sprintf(msgTooManyAttempts, wait))
		return
	}
	i.renderMFAError(w, http.StatusUnauthorized, tmpl, f, msg)
}

func (i *Issuer) renderMFAError(w http.ResponseWriter, status int, tmpl string, f *mfaForm, msg string) {
	f.page.Error = msg
	if tmpl == "mfa_enroll.html" {
		f.page.Title = "Set up a second factor"
		if err := i.fillEnrollPage(&f.page, f.user, f.pending.TOTPSecret); err != nil {
			i.log.Error("drawing a QR code failed", "error", err)
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
	}
	i.render(w, status, tmpl, f.page, origin(f.ar.RedirectURI))
}

func (i *Issuer) fillEnrollPage(page *mfaPage, user *store.User, secret string) error {
	uri, err := secondfactor.TOTPURI(i.totpIssuer(), user.Username, secret)
	if err != nil {
		return err
	}
	qr, err := secondfactor.QRSVG(uri, 232)
	if err != nil {
		return err
	}
	page.QR, page.Secret = qr, secret
	return nil
}

// submitSecondFactor checks a TOTP code or a recovery code typed on the
// second-factor page.
func (i *Issuer) submitSecondFactor(w http.ResponseWriter, r *http.Request) {
	f, ok := i.readMFAForm(w, r, store.PendingVerify)
	if !ok {
		return
	}
	ctx := r.Context()
	att, done, res, ok := i.guardCode(w, r, f, "mfa.html")
	if !ok {
		return
	}
	defer done()
	method := "totp"
	if r.PostForm.Get("method") == "recovery" {
		method = "recovery_code"
	}
	var err error
	switch method {
	case "totp":
		err = i.checkTOTP(ctx, f.user.ID, r.PostForm.Get("code"))
	default:
		err = i.useRecoveryCode(ctx, f.user.ID, r.PostForm.Get("recovery_code"))
	}
	switch {
	case errors.Is(err, errCodeReplayed):
		i.wrongCode(w, ctx, f, "mfa.html", "replayed", res, msgWrongCode)
		return
	case errors.Is(err, secondfactor.ErrWrongCode) && method == "totp":
		i.wrongCode(w, ctx, f, "mfa.html", "wrong_code", res, msgWrongCode)
		return
	case errors.Is(err, secondfactor.ErrWrongCode):
		i.wrongCode(w, ctx, f, "mfa.html", "wrong_recovery_code", res, msgWrongRecovery)
		return
	case err != nil:
		i.log.ErrorContext(ctx, "checking a second factor failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	i.finishSecondFactor(w, r, f, att, []string{amrOTP}, method)
}

// errCodeReplayed is a right TOTP code whose time step was used before.
var errCodeReplayed = errors.New("TOTP code used before")

// checkTOTP accepts a user's TOTP code once: it returns
// secondfactor.ErrWrongCode or errCodeReplayed otherwise.
func (i *Issuer) checkTOTP(ctx context.Context, userID, code string) error {
	secret, _, err := i.st.TOTPSecret(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return secondfactor.ErrWrongCode
	}
	if err != nil {
		return err
	}
	step, err := secondfactor.CheckTOTP(secret, code, i.cfg.Now())
	if err != nil {
		return err
	}
	switch err := i.st.UseTOTPStep(ctx, userID, step); {
	case errors.Is(err, store.ErrReused):
		return errCodeReplayed
	case errors.Is(err, store.ErrNotFound):
		return secondfactor.ErrWrongCode
	default:
		return err
	}
}

// useRecoveryCode uses up one of a user's recovery codes, or returns
// secondfactor.ErrWrongCode.
func (i *Issuer) useRecoveryCode(ctx context.Context, userID, code string) error {
	c, ok := secondfactor.NormalizeRecoveryCode(code)
	if !ok {
		return secondfactor.ErrWrongCode
	}
	err := i.st.UseRecoveryCode(ctx, userID, c)
	if errors.Is(err, store.ErrNotFound) {
		return secondfactor.ErrWrongCode
	}
	return err
}

// finishSecondFactor completes a login whose second factor (method, amr
// values added) was just proven: it takes the pending state, so that of
// two simultaneous proofs only one completes the login, records the
// event and goes on to completeLogin.
func (i *Issuer) finishSecondFactor(w http.ResponseWriter, r *http.Request, f *mfaForm, att attempt, added []string, method string) {
	ctx := r.Context()
	p, ok := i.takePending(w, ctx, f)
	if !ok {
		return
	}
	if err := i.record(ctx, audit.Event{Type: audit.SecondFactorSucceeded, Subject: f.user.ID, Username: f.user.Username,
		ClientID: f.ar.ClientID, Reason: method}); err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	i.cfg.Observer.login(LoginSucceeded)
	i.loginSucceeded(w, ctx, att)
	amr := mfaAMR(p.AMR, added)
	if i.offerPasskey(w, r, f.ar, f.id, f.user, amr, f.csrf) {
		return
	}
	i.completeLogin(w, r, f.ar, f.user, amr, f.csrf)
}

// mfaAMR adds the methods of a second factor to the login's and "mfa".
func mfaAMR(amr, added []string) []string {
	out := slices.Clone(amr)
	for _, a := range append(slices.Clone(added), amrMFA) {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// submitEnrollment checks the first code of a TOTP secret offered on the
// enrolment page. Right, the secret and fresh recovery codes are stored,
// and the codes are shown once.
func (i *Issuer) submitEnrollment(w http.ResponseWriter, r *http.Request) {
	f, ok := i.readMFAForm(w, r, store.PendingEnroll)
	if !ok {
		return
	}
	ctx := r.Context()
	_, done, res, ok := i.guardCode(w, r, f, "mfa_enroll.html")
	if !ok {
		return
	}
	defer done()
	step, err := secondfactor.CheckTOTP(f.pending.TOTPSecret, r.PostForm.Get("code"), i.cfg.Now())
	if err != nil {
		if !errors.Is(err, secondfactor.ErrWrongCode) {
			i.log.ErrorContext(ctx, "checking a TOTP code failed", "error", err)
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		i.wrongCode(w, ctx, f, "mfa_enroll.html", "wrong_code", res, msgWrongCode)
		return
	}
	p, ok := i.takePending(w, ctx, f)
	if !ok {
		return
	}
	codes := secondfactor.NewRecoveryCodes()
	switch err := i.st.EnrollTOTP(ctx, f.user.ID, p.TOTPSecret, step, codes); {
	case errors.Is(err, store.ErrConflict):
		i.message(w, http.StatusConflict, "Sign in", msgAlreadyEnabled)
		return
	case err != nil:
		i.log.ErrorContext(ctx, "storing a TOTP secret failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	if err := i.record(ctx, audit.Event{Type: audit.SecondFactorEnrolled, Subject: f.user.ID, Username: f.user.Username,
		ClientID: f.ar.ClientID, Reason: "totp"}); err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	next := &store.PendingMFA{AuthRequestID: f.ar.ID, UserID: f.user.ID, AMR: mfaAMR(p.AMR, []string{amrOTP}),
		Kind: pendingEnrolled, ExpiresAt: i.pendingExpiry(f.ar)}
	token, err := i.newPending(ctx, next, f.csrf)
	if err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	page := f.page
	page.Token = token
	i.showRecoveryCodes(w, f.ar, page, "authenticator app", mfaContinuePath, codes)
}

// The recovery codes (issue 15): ten single-use codes, stored hashed,
// shown once, when a user sets up their first second factor, whichever
// it is. TOTP enrolment replaces them (store.EnrollTOTP); a passkey
// creates them when the user has none (newRecoveryCodesIfNone). Both show
// them with showRecoveryCodes before the login goes on.

// newRecoveryCodesIfNone gives a user who has no recovery codes ten, and
// returns them to be shown once; nil when the user has some already.
func (i *Issuer) newRecoveryCodesIfNone(ctx context.Context, userID string) ([]string, error) {
	codes := secondfactor.NewRecoveryCodes()
	switch err := i.st.AddRecoveryCodesIfNone(ctx, userID, codes); {
	case errors.Is(err, store.ErrConflict):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("storing recovery codes: %w", err)
	}
	return codes, nil
}

// showRecoveryCodes shows new recovery codes once, after the factor
// enrolled was set up; the page's button posts page's form fields (the
// auth request, the CSRF token and the state's token, if any) to next,
// which goes on with the login.
func (i *Issuer) showRecoveryCodes(w http.ResponseWriter, ar *store.AuthRequest, page mfaPage, enrolled, next string, codes []string) {
	page.Title, page.RecoveryCodes, page.Enrolled, page.Continue, page.Error = "Save your recovery codes", codes, enrolled, next, ""
	page.Passkeys = false // nothing to run on this page
	i.render(w, http.StatusOK, "mfa_recovery.html", page, origin(ar.RedirectURI))
}

// submitContinue completes a login after its user enrolled and saw the
// recovery codes.
func (i *Issuer) submitContinue(w http.ResponseWriter, r *http.Request) {
	f, ok := i.readMFAForm(w, r, pendingEnrolled)
	if !ok {
		return
	}
	att := i.guard.newAttempt(r, f.user.Username, clientaddr.Label(clientaddr.Key(i.cfg.Clients.FromRequest(r))))
	// The code that proved the new factor was counted and accepted on the
	// enrolment page: nothing is typed here.
	p, ok := i.takePending(w, r.Context(), f)
	if !ok {
		return
	}
	i.cfg.Observer.login(LoginSucceeded)
	i.loginSucceeded(w, r.Context(), att)
	if i.offerPasskey(w, r, f.ar, f.id, f.user, p.AMR, f.csrf) {
		return
	}
	i.completeLogin(w, r, f.ar, f.user, p.AMR, f.csrf)
}

// recordSecondFactorFailure records an audit.SecondFactorFailed event: a
// refusal (the login is not authenticated without its second factor),
// which recordRefusal aggregates by address, account, reason and minute.
func (i *Issuer) recordSecondFactorFailure(ctx context.Context, user *store.User, clientID, reason, counter string) error {
	e := audit.Event{Type: audit.SecondFactorFailed, Outcome: audit.Failure, ClientID: clientID, Reason: reason, Target: counter}
	if user != nil {
		e.Subject, e.Username = user.ID, user.Username
	}
	return i.recordRefusal(ctx, e)
}

func (i *Issuer) refuseSecondFactor(w http.ResponseWriter, ctx context.Context, user *store.User, clientID, reason string, status int, msg string) {
	if i.recordSecondFactorFailure(ctx, user, clientID, reason, "") != nil {
		status, msg = http.StatusInternalServerError, msgInternal
	}
	i.message(w, status, "Sign in", msg)
}

// takePending takes (single use) the pending second factor a form names,
// or writes the answer: expired or already used, or an internal error.
func (i *Issuer) takePending(w http.ResponseWriter, ctx context.Context, f *mfaForm) (*store.PendingMFA, bool) {
	p, err := i.st.TakePendingMFA(ctx, pendingKey(f.token, f.csrf))
	switch {
	case errors.Is(err, store.ErrNotFound):
		i.message(w, http.StatusBadRequest, "Sign in", msgMFAExpired)
		return nil, false
	case err != nil:
		i.log.ErrorContext(ctx, "taking a pending second factor failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return nil, false
	}
	return p, true
}
