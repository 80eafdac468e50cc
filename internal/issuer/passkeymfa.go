package issuer

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/store"
)

// Passkeys in the second-factor step (mfa.go): a user who has a passkey
// may prove the second factor with it, and the enrolment page of a
// required policy offers to register one instead of an authenticator
// app. Both ride on the step's pending state (its token, kind verify or
// enroll, for this auth request), which readMFAForm checks; the WebAuthn
// ceremony itself is kept like every other (passkey.go).

// Paths of the second-factor step's passkey posts.
const (
	mfaPasskeyPath       = "/login/mfa/passkey"
	mfaPasskeyEnrollPath = "/login/mfa/passkey/enroll"
)

// scripted: the second-factor pages run the passkey script when passkeys
// are offered on them.
func (p mfaPage) scripted() bool { return p.Passkeys }

// pendingFor returns the user of the pending second-factor state token
// (of the browser whose CSRF token is csrf) when it is of kind and
// belongs to ar, else an error wrapping store.ErrNotFound.
func (i *Issuer) pendingFor(ctx context.Context, ar *store.AuthRequest, token, csrf, kind string) (*store.PendingMFA, *store.User, error) {
	if !isRandomToken(token, 32) {
		return nil, nil, fmt.Errorf("pending second factor: %w", store.ErrNotFound)
	}
	p, err := i.st.PendingMFA(ctx, pendingKey(token, csrf))
	if err != nil {
		return nil, nil, err
	}
	if p.AuthRequestID != ar.ID || p.Kind != kind {
		return nil, nil, fmt.Errorf("pending second factor of another step: %w", store.ErrNotFound)
	}
	user, err := i.st.UserByID(ctx, p.UserID)
	if err != nil {
		return nil, nil, err
	}
	if user.Disabled() {
		return nil, nil, fmt.Errorf("disabled user: %w", store.ErrNotFound)
	}
	return p, user, nil
}

// beginPasskeySecondFactor asks for one of the user's passkeys after
// their password.
func (i *Issuer) beginPasskeySecondFactor(ctx context.Context, ar *store.AuthRequest, token, csrf string) (any, error) {
	_, user, err := i.pendingFor(ctx, ar, token, csrf, store.PendingVerify)
	if err != nil {
		return nil, err
	}
	pks, err := i.st.PasskeysByUser(ctx, user.ID)
	if err != nil {
		return nil, err
	}
	if len(pks) == 0 {
		return nil, fmt.Errorf("no passkeys: %w", store.ErrNotFound)
	}
	creds := make([]webauthn.Credential, len(pks))
	for j := range pks {
		creds[j] = toCredential(&pks[j])
	}
	options, session, err := i.passkeys.BeginLogin(passkeyUser{u: user, creds: creds},
		webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, err
	}
	return options, i.putCeremony(ctx, ar, kindSecondFactor, user.ID, ceremonyState{Session: session})
}

// beginPasskeyEnroll starts registering a passkey as the second factor a
// required policy asks for.
func (i *Issuer) beginPasskeyEnroll(ctx context.Context, ar *store.AuthRequest, token, csrf string) (any, error) {
	p, user, err := i.pendingFor(ctx, ar, token, csrf, store.PendingEnroll)
	if err != nil {
		return nil, err
	}
	return i.beginCreate(ctx, ar, kindEnroll, user, p.AMR)
}

// submitPasskeySecondFactor checks a passkey given as the second factor.
// Like a typed code, the assertion takes its place in the login counters
// first (guardCode), and a refused one keeps it.
func (i *Issuer) submitPasskeySecondFactor(w http.ResponseWriter, r *http.Request) {
	if i.passkeys == nil {
		i.message(w, http.StatusNotFound, "Sign in", msgPasskeyUnavailable)
		return
	}
	f, ok := i.readMFAForm(w, r, store.PendingVerify)
	if !ok {
		return
	}
	f.page.Passkeys = true
	ctx := r.Context()
	att, done, res, ok := i.guardCode(w, r, f, "mfa.html")
	if !ok {
		return
	}
	defer done()
	_, pk, _, err := i.verifyAssertion(ctx, f.ar, kindSecondFactor, f.user, r.PostForm.Get("credential"))
	var refused *passkeyRefusal
	if errors.As(err, &refused) {
		i.cfg.Observer.login(LoginWrongCredentials)
		if i.passkeyFailure(ctx, refused.reason, f.user, f.ar.ClientID) != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		msg := msgPasskeyRefused
		if refused.reason == "expired" {
			msg = msgPasskeyExpired
		}
		if res.Remaining == 0 {
			i.cfg.Observer.lockout()
			if i.recordLockout(ctx, f.user, f.ar.ClientID, res) != nil {
				i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
				return
			}
			msg += " " + fmt.Sprintf(msgTooManyAttempts, i.retryAfter(w, res.RetryAt))
		}
		i.renderMFAError(w, http.StatusUnauthorized, "mfa.html", f, msg)
		return
	}
	if err != nil {
		i.log.ErrorContext(ctx, "checking a passkey failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	if err := i.record(ctx, audit.Event{Type: audit.PasskeyUsed, Subject: f.user.ID, Username: f.user.Username, ClientID: f.ar.ClientID,
		Reason: kindSecondFactor, Target: pk.Name}); err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	i.finishSecondFactor(w, r, f, att, []string{passkeyMethod(pk)}, "passkey")
}

// submitPasskeyEnroll stores the passkey registered on the enrolment page
// and completes the login: the new passkey, created with the user's
// verification right after their password, is the second factor. A user
// without recovery codes gets ten first, shown once, as after an
// authenticator app.
func (i *Issuer) submitPasskeyEnroll(w http.ResponseWriter, r *http.Request) {
	if i.passkeys == nil {
		i.message(w, http.StatusNotFound, "Sign in", msgPasskeyUnavailable)
		return
	}
	f, ok := i.readMFAForm(w, r, store.PendingEnroll)
	if !ok {
		return
	}
	f.page.Passkeys = true
	ctx := r.Context()
	_, st, err := i.takeCeremony(ctx, f.ar, kindEnroll)
	switch {
	case errors.Is(err, store.ErrNotFound):
		i.renderMFAError(w, http.StatusBadRequest, "mfa_enroll.html", f, msgPasskeyExpired)
		return
	case err != nil:
		i.log.ErrorContext(ctx, "reading a passkey ceremony failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	pk, refused, err := i.createPasskey(ctx, f.ar, f.user, st, r.PostForm.Get("name"), r.PostForm.Get("credential"))
	if err != nil {
		i.log.ErrorContext(ctx, "storing a passkey failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	if refused != nil {
		if refused.reason != "" && i.passkeyFailure(ctx, refused.reason, f.user, f.ar.ClientID) != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		i.renderMFAError(w, refused.status, "mfa_enroll.html", f, refused.msg)
		return
	}
	p, ok := i.takePending(w, ctx, f)
	if !ok {
		return
	}
	if err := i.record(ctx, audit.Event{Type: audit.SecondFactorEnrolled, Subject: f.user.ID, Username: f.user.Username,
		ClientID: f.ar.ClientID, Reason: "passkey"}); err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	amr := mfaAMR(p.AMR, []string{passkeyMethod(pk)})
	if f.page.Factors.RecoveryCodes == 0 {
		// As after an authenticator app: the codes, then submitContinue
		// completes the login. Its state comes first: codes are never
		// stored without the page that shows them.
		next := &store.PendingMFA{AuthRequestID: f.ar.ID, UserID: f.user.ID, AMR: amr, Kind: pendingEnrolled, ExpiresAt: i.pendingExpiry(f.ar)}
		token, err := i.newPending(ctx, next, f.csrf)
		if err != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		codes, err := i.newRecoveryCodesIfNone(ctx, f.user.ID)
		if err != nil {
			i.log.ErrorContext(ctx, "storing recovery codes failed", "error", err)
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		if codes != nil {
			page := f.page
			page.Token = token
			i.showRecoveryCodes(w, f.ar, page, "passkey", mfaContinuePath, codes)
			return
		}
		// Codes were given meanwhile (another login): nothing to show.
		if _, err := i.st.TakePendingMFA(ctx, pendingKey(token, f.csrf)); err != nil && !errors.Is(err, store.ErrNotFound) {
			i.log.WarnContext(ctx, "removing a pending second factor failed", "error", err)
		}
	}
	att := i.guard.newAttempt(r, f.user.Username, clientaddr.Label(clientaddr.Key(i.cfg.Clients.FromRequest(r))))
	i.cfg.Observer.login(LoginSucceeded)
	i.loginSucceeded(w, ctx, att)
	i.completeLogin(w, r, f.ar, f.user, amr, f.csrf)
}
