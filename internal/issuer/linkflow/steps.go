package linkflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/browsersession"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
	"github.com/nsauth/nsauth/internal/issuer/passkey"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// step is the flow after the link was used: its user, the browser's CSRF
// token (half of every later step's key) and the methods proven.
type step struct {
	user *store.User
	csrf string
	amr  []string
	// enrolled: a factor was set up in this flow.
	enrolled bool
}

// stepLink marks the steps this flow stores (store.PendingMFA.Steps), so
// that a login's step is never taken for one of ours. store.StepEnrolLink
// goes with it: a step without an auth request is a link's.
const stepLink = "account_link"

// stepTTL is how long each step waits for the browser.
const stepTTL = 15 * time.Minute

// stepKey is what a step is stored under: the form's token and the
// browser's CSRF token together (authflow's rule, which the login's
// passkey script relies on), so the step works only in this browser.
func stepKey(token, csrf string) string { return token + "." + csrf }

// pause stores the flow at a step of kind and returns its token.
func (f *Flow) pause(ctx context.Context, st *step, kind, totpSecret string) (string, error) {
	steps := []string{store.StepEnrolLink, stepLink}
	if st.enrolled {
		steps = append(steps, store.StepEnrolled)
	}
	p := &store.PendingMFA{UserID: st.user.ID, AMR: st.amr, Kind: kind, Steps: steps, TOTPSecret: totpSecret,
		ExpiresAt: f.cfg.Now().Add(stepTTL)}
	token := store.RandomToken(32)
	if err := f.cfg.Store.CreatePendingMFA(ctx, p, stepKey(token, st.csrf)); err != nil {
		return "", fmt.Errorf("storing a link's step: %w", err)
	}
	return token, nil
}

// errStepGone: the step is expired, taken, another flow's or another
// browser's (which cannot be told apart, by design), or its user is
// disabled.
var errStepGone = errors.New("step gone")

// openStep reads the step of kind the form names, for this browser.
// take uses it up (of two posts at once, one gets it).
func (f *Flow) openStep(r *http.Request, kind string, take bool) (*step, *store.PendingMFA, string, error) {
	ctx, token, csrf := r.Context(), r.PostForm.Get("token"), web.Token(r)
	if !web.IsRandomToken(token, 32) {
		return nil, nil, "", errStepGone
	}
	read := f.cfg.Store.PendingMFA
	if take {
		read = f.cfg.Store.TakePendingMFA
	}
	p, err := read(ctx, stepKey(token, csrf))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, "", errStepGone
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("reading a link's step: %w", err)
	}
	if p.Kind != kind || !slices.Contains(p.Steps, stepLink) || p.AuthRequestID != "" {
		return nil, nil, "", errStepGone
	}
	u, err := f.cfg.Store.UserByID(ctx, p.UserID)
	if errors.Is(err, store.ErrNotFound) || err == nil && u.Disabled() {
		return nil, nil, "", errStepGone
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("reading a user: %w", err)
	}
	return &step{user: u, csrf: csrf, amr: p.AMR, enrolled: slices.Contains(p.Steps, store.StepEnrolled)}, p, token, nil
}

func (f *Flow) stepFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errStepGone) {
		f.message(w, http.StatusBadRequest, titleFactor, msgStepGone)
		return
	}
	f.log.ErrorContext(r.Context(), "reading a link's step failed", "error", err)
	f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
}

// next decides the flow's next step: the offer of a factor to a user who
// has none, else the session.
func (f *Flow) next(w http.ResponseWriter, r *http.Request, st *step) {
	ctx := r.Context()
	fs, err := f.mfa().UserFactors(ctx, st.user.ID)
	if err != nil {
		f.log.ErrorContext(ctx, "reading a user's second factors failed", "error", err)
		f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
		return
	}
	if !fs.Any() && !st.enrolled {
		f.askFactor(w, r, st, fs)
		return
	}
	f.signIn(w, r, st)
}

// factorPage is the data of link_enrol.html.
type factorPage struct {
	Title    string
	Error    string
	Username string
	CSRF     string
	Token    string
	// Secret and QR offer an authenticator app ("" when the user has one).
	Secret string
	QR     template.HTML
	// Passkeys offers a passkey (the login's passkey script runs).
	Passkeys bool
	// Later: the factor may be set up later (NSAUTH_MFA=optional).
	Later bool
}

// Scripted: the page runs the passkey script when it offers a passkey.
func (p factorPage) Scripted() bool { return p.Passkeys }

// askFactor shows the offer of a factor: an authenticator app (a new
// secret, kept on a new step) and a passkey.
func (f *Flow) askFactor(w http.ResponseWriter, r *http.Request, st *step, fs mfa.Factors) {
	ctx := r.Context()
	secret := ""
	if !fs.TOTP {
		var err error
		if secret, _, err = secondfactor.NewTOTP(secondfactor.IssuerName(f.cfg.Issuer), st.user.Username); err != nil {
			f.log.ErrorContext(ctx, "making a TOTP secret failed", "error", err)
			f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
			return
		}
	}
	token, err := f.pause(ctx, st, store.PendingEnroll, secret)
	if err != nil {
		f.log.ErrorContext(ctx, "storing a link's step failed", "error", err)
		f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
		return
	}
	f.renderFactor(w, r, st, fs, secret, token, "")
}

// renderFactor renders the offer of a factor on the step token, with msg
// when the last answer was refused.
func (f *Flow) renderFactor(w http.ResponseWriter, r *http.Request, st *step, fs mfa.Factors, secret, token, msg string) {
	page := factorPage{Title: titleFactor, Error: msg, Username: st.user.Username, CSRF: st.csrf, Token: token,
		Passkeys: f.cfg.Passkeys != nil && fs.Passkeys < store.MaxPasskeysPerUser, Later: !f.cfg.RequireSecondFactor}
	if secret != "" {
		if err := f.fillTOTP(&page, st.user, secret); err != nil {
			f.log.ErrorContext(r.Context(), "drawing a QR code failed", "error", err)
			f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
			return
		}
	}
	status := http.StatusOK
	if msg != "" {
		status = http.StatusBadRequest
	}
	f.cfg.Pages.Render(w, status, "link_enrol.html", page, "")
}

// again renders the step of the form again after a refused answer.
func (f *Flow) again(w http.ResponseWriter, r *http.Request, st *step, p *store.PendingMFA, token, msg string) {
	fs, err := f.mfa().UserFactors(r.Context(), st.user.ID)
	if err != nil {
		f.stepFailed(w, r, err)
		return
	}
	f.renderFactor(w, r, st, fs, p.TOTPSecret, token, msg)
}

func (f *Flow) fillTOTP(page *factorPage, u *store.User, secret string) error {
	qr, err := secondfactor.EnrolmentQR(f.cfg.Issuer, u.Username, secret)
	if err != nil {
		return err
	}
	page.QR, page.Secret = qr, secret
	return nil
}

// submitTOTP checks the first code of the offered authenticator app.
// Right, the app and fresh recovery codes are stored and the codes shown
// once.
func (f *Flow) submitTOTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st, p, token, err := f.openStep(r, store.PendingEnroll, false)
	if err != nil {
		f.stepFailed(w, r, err)
		return
	}
	if p.TOTPSecret == "" {
		f.message(w, http.StatusBadRequest, titleFactor, msgStepGone)
		return
	}
	usedStep, err := secondfactor.CheckTOTP(p.TOTPSecret, r.PostForm.Get("code"), f.cfg.Now())
	if errors.Is(err, secondfactor.ErrWrongCode) {
		// The secret was made a moment ago for this browser: a wrong
		// code guesses nothing that counts.
		f.again(w, r, st, p, token, msgWrongCode)
		return
	}
	if err != nil {
		f.log.ErrorContext(ctx, "checking a TOTP code failed", "error", err)
		f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
		return
	}
	if _, _, _, err := f.openStep(r, store.PendingEnroll, true); err != nil {
		f.stepFailed(w, r, err)
		return
	}
	codes := secondfactor.NewRecoveryCodes()
	if err := f.cfg.Store.EnrollTOTP(ctx, st.user.ID, p.TOTPSecret, usedStep, codes); err != nil {
		if errors.Is(err, store.ErrConflict) {
			f.message(w, http.StatusConflict, titleFactor, "An authenticator app was set up for this account meanwhile.")
			return
		}
		f.log.ErrorContext(ctx, "storing a TOTP secret failed", "error", err)
		f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
		return
	}
	if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.SecondFactorEnrolled, Subject: st.user.ID, Username: st.user.Username,
		Reason: "totp"}); err != nil {
		f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
		return
	}
	st.amr, st.enrolled = mfa.AddAMR(st.amr, []string{mfa.AMROTP}), true
	f.showRecoveryCodes(w, r, st, "authenticator app", codes)
}

// submitPasskey stores the passkey registered with the login's passkey
// script (its begin request opened this very step: authflow's
// /login/passkey/begin, mode "enroll", keeps the ceremony on the step).
func (f *Flow) submitPasskey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if f.cfg.Passkeys == nil {
		f.message(w, http.StatusNotFound, titleFactor, "Passkeys are not available on this server.")
		return
	}
	st, p, token, err := f.openStep(r, store.PendingEnroll, false)
	if err != nil {
		f.stepFailed(w, r, err)
		return
	}
	data, err := f.cfg.Store.TakePendingCeremony(ctx, stepKey(token, st.csrf))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		f.stepFailed(w, r, err)
		return
	}
	pk, msg, err := f.createPasskey(ctx, st.user, data, r.PostForm.Get("name"), r.PostForm.Get("credential"))
	if err != nil {
		f.log.ErrorContext(ctx, "storing a passkey failed", "error", err)
		f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
		return
	}
	if msg != "" {
		f.again(w, r, st, p, token, msg)
		return
	}
	if _, _, _, err := f.openStep(r, store.PendingEnroll, true); err != nil {
		f.stepFailed(w, r, err)
		return
	}
	if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.SecondFactorEnrolled, Subject: st.user.ID, Username: st.user.Username,
		Reason: "passkey"}); err != nil {
		f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
		return
	}
	st.amr, st.enrolled = mfa.AddAMR(st.amr, []string{passkey.Method(pk)}), true
	codes := secondfactor.NewRecoveryCodes()
	switch err := f.cfg.Store.AddRecoveryCodesIfNone(ctx, st.user.ID, codes); {
	case errors.Is(err, store.ErrConflict):
		f.signIn(w, r, st)
		return
	case err != nil:
		f.log.ErrorContext(ctx, "storing recovery codes failed", "error", err)
		f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
		return
	}
	f.showRecoveryCodes(w, r, st, "passkey", codes)
}

// createPasskey checks the browser's answer to the registration ceremony
// (data, nil when none was begun or it was answered) and stores the
// passkey. A refusal the user can act on is msg.
func (f *Flow) createPasskey(ctx context.Context, u *store.User, data []byte, name, credential string) (*store.Passkey, string, error) {
	if err := store.CheckPasskeyName(name); err != nil {
		return nil, "The name of a passkey must be 1 to 64 characters on one line, without invisible formatting characters.", nil
	}
	refused := func(reason string) (*store.Passkey, string, error) {
		if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.PasskeyFailed, Outcome: audit.Failure, Subject: u.ID, Username: u.Username,
			Reason: reason}); err != nil {
			return nil, "", err
		}
		return nil, msgNotSaved, nil
	}
	if data == nil || credential == "" {
		return refused("expired")
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(data, &session); err != nil {
		return nil, "", fmt.Errorf("decoding a passkey ceremony: %w", err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(credential))
	if err != nil {
		return refused("bad_attestation")
	}
	cred, err := f.cfg.Passkeys.CreateCredential(passkey.User{U: u}, session, parsed)
	if err != nil {
		return refused("bad_attestation")
	}
	transports := make([]string, len(cred.Transport))
	for j, t := range cred.Transport {
		transports[j] = string(t)
	}
	pk := &store.Passkey{UserID: u.ID, Name: name, CredentialID: cred.ID, PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount,
		UserVerified: cred.Flags.UserVerified, BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		Transports: transports, AAGUID: cred.Authenticator.AAGUID, AttestationType: cred.AttestationType}
	switch err := f.cfg.Store.AddPasskey(ctx, pk); {
	case errors.Is(err, store.ErrConflict):
		return nil, "You already have a passkey of that name, or this passkey is registered already.", nil
	case errors.Is(err, store.ErrTooManyPasskeys):
		return nil, "You have as many passkeys as allowed.", nil
	case err != nil:
		return nil, "", err
	}
	if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.PasskeyRegistered, Subject: u.ID, Username: u.Username, Target: pk.Name}); err != nil {
		return nil, "", err
	}
	return pk, "", nil
}

// recoveryPage is the data of mfa_recovery.html (the login's page).
type recoveryPage struct {
	Title         string
	Username      string
	Enrolled      string
	RecoveryCodes []string
	Continue      string
	AuthRequestID string
	CSRF          string
	Token         string
}

// showRecoveryCodes shows the recovery codes once; its button goes on
// (submitContinue).
func (f *Flow) showRecoveryCodes(w http.ResponseWriter, r *http.Request, st *step, enrolled string, codes []string) {
	ctx := r.Context()
	token, err := f.pause(ctx, st, store.PendingEnrolled, "")
	if err != nil {
		f.log.ErrorContext(ctx, "storing a link's step failed", "error", err)
		f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
		return
	}
	f.cfg.Pages.Render(w, http.StatusOK, "mfa_recovery.html", recoveryPage{Title: "Save your recovery codes", Username: st.user.Username,
		Enrolled: enrolled, RecoveryCodes: codes, Continue: continuePath, CSRF: st.csrf, Token: token}, "")
}

// submitContinue goes on after the recovery codes: the session.
func (f *Flow) submitContinue(w http.ResponseWriter, r *http.Request) {
	st, _, _, err := f.openStep(r, store.PendingEnrolled, true)
	if err != nil {
		f.stepFailed(w, r, err)
		return
	}
	f.signIn(w, r, st)
}

// submitLater goes on without a factor, when the policy allows it.
func (f *Flow) submitLater(w http.ResponseWriter, r *http.Request) {
	if f.cfg.RequireSecondFactor {
		st, p, token, err := f.openStep(r, store.PendingEnroll, false)
		if err != nil {
			f.stepFailed(w, r, err)
			return
		}
		f.again(w, r, st, p, token, msgRequired)
		return
	}
	st, _, _, err := f.openStep(r, store.PendingEnroll, true)
	if err != nil {
		f.stepFailed(w, r, err)
		return
	}
	f.signIn(w, r, st)
}

// signIn starts the browser session of a user whose link was used (and
// whose factors are proven, under the policy), bound to the browser's
// device cookie for the user, ends the session this browser held before,
// and sends the browser to the account page.
func (f *Flow) signIn(w http.ResponseWriter, r *http.Request, st *step) {
	ctx := r.Context()
	if f.cfg.RequireSecondFactor && !slices.Contains(st.amr, mfa.AMRMFA) {
		f.message(w, http.StatusForbidden, titleFactor, msgRequired)
		return
	}
	replaced, replacedUser, err := f.cfg.Sessions.CurrentUser(r)
	if err != nil && !errors.Is(err, browsersession.ErrNoSession) {
		f.log.ErrorContext(ctx, "reading the browser session a link replaces failed", "error", err)
	}
	device, ok := f.cfg.Guard.DeviceOf(r, st.user.Username)
	if !ok {
		device = f.cfg.Guard.SetDeviceCookie(w, attempts.Attempt{Account: st.user.Username})
	}
	s, err := f.cfg.Sessions.Start(w, r, st.user.ID, st.amr, f.cfg.Now(), device)
	if err != nil {
		f.log.ErrorContext(ctx, "starting a browser session failed", "error", err)
		f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
		return
	}
	if replaced != nil {
		if _, err := f.cfg.Store.EndSession(ctx, replaced.ID, func(store.SessionGrant) bool { return true }); err != nil {
			f.log.ErrorContext(ctx, "ending the browser session a link replaced failed", "error", err)
		} else {
			_ = f.cfg.Events.Record(ctx, audit.Event{Type: audit.SessionEnded, Subject: replaced.UserID, Username: replacedUser.Username,
				Target: replaced.ID, Reason: "replaced"})
		}
	}
	if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.SessionStarted, Subject: st.user.ID, Username: st.user.Username, Target: s.ID}); err != nil {
		f.cfg.Sessions.Clear(w)
		f.message(w, http.StatusInternalServerError, titleFactor, msgInternal)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, AccountPath, http.StatusSeeOther)
}

// clientLabel is the request's client address as the attempt counters
// name it.
func clientLabel(c *clientaddr.Resolver, r *http.Request) string {
	return clientaddr.Label(clientaddr.Key(c.FromRequest(r)))
}
