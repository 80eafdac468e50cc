package authflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
	"github.com/nsauth/nsauth/internal/issuer/passkey"
	"github.com/nsauth/nsauth/internal/store"
)

// Passkeys in the steps after the first factor: a user who has a passkey
// may prove the second factor with it, a flow that may add a factor (an
// enrolment link's) may register one, and the offer after a login that
// proved two factors may add one for this device (passkeypages.go). The
// WebAuthn ceremony of such a step is kept on the step itself
// (store.SetPendingCeremony): bound to the browser like the step, one at a
// time, answered once.

// Paths of the second-factor step's passkey posts.
const (
	mfaPasskeyPath       = "/login/mfa/passkey"
	mfaPasskeyEnrollPath = "/login/mfa/passkey/enroll"
)

// Scripted: the second-factor pages run the passkey script when passkeys
// are offered on them.
func (p mfaPage) Scripted() bool { return p.Passkeys }

// stepKinds are the kinds of step a passkey begin mode belongs to.
var stepKinds = map[string]string{
	kindSecondFactor: store.PendingVerify,
	kindEnroll:       store.PendingEnroll,
	kindRegister:     store.PendingOffer,
}

// beginStepCeremony starts the WebAuthn ceremony of a step (mode: one of
// stepKinds) and keeps it on the step: an assertion of one of the user's
// passkeys for the second factor, a registration otherwise.
func (i *passkeyStep) beginStepCeremony(ctx context.Context, mode, id, token, csrf string) (any, error) {
	fl, _, err := i.openStep(ctx, id, token, csrf, stepKinds[mode])
	if err != nil {
		return nil, err
	}
	pks, err := i.st.PasskeysByUser(ctx, fl.user.ID)
	if err != nil {
		return nil, err
	}
	creds := make([]webauthn.Credential, len(pks))
	for j := range pks {
		creds[j] = passkey.Credential(&pks[j])
	}
	var (
		options any
		session *webauthn.SessionData
	)
	if mode == kindSecondFactor {
		if len(pks) == 0 {
			return nil, errStepGone
		}
		options, session, err = i.passkeys.BeginLogin(passkey.User{U: fl.user, Creds: creds},
			webauthn.WithUserVerification(protocol.VerificationPreferred))
	} else {
		exclude := make([]protocol.CredentialDescriptor, len(creds))
		for j := range creds {
			exclude[j] = creds[j].Descriptor()
		}
		options, session, err = i.passkeys.BeginRegistration(passkey.User{U: fl.user},
			webauthn.WithExclusions(exclude), webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired))
	}
	if err != nil {
		return nil, err
	}
	// The step's expiry, on the injected clock, is the one that counts;
	// the library's would use the wall clock.
	session.Expires = time.Time{}
	data, err := json.Marshal(session)
	if err != nil {
		return nil, fmt.Errorf("encoding a passkey ceremony: %w", err)
	}
	if err := i.st.SetPendingCeremony(ctx, pendingKey(token, csrf), data); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errStepGone
		}
		return nil, err
	}
	return options, nil
}

// takeStepCeremony takes the ceremony of a step's form: store.ErrNotFound
// when none was begun, or it was answered already.
func (i *stepForms) takeStepCeremony(ctx context.Context, f *stepForm) (*webauthn.SessionData, error) {
	data, err := i.st.TakePendingCeremony(ctx, pendingKey(f.token, f.fl.csrf))
	if err != nil {
		return nil, err
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(data, &session); err != nil {
		return nil, fmt.Errorf("decoding a passkey ceremony: %w", err)
	}
	return &session, nil
}

// submitPasskeySecondFactor checks a passkey given as the second factor.
// Like a typed code, the assertion takes its place in the login counters
// first (guardCode), and a refused one keeps it.
func (i *secondFactorStep) submitPasskeySecondFactor(w http.ResponseWriter, r *http.Request) {
	if i.passkeys == nil {
		i.message(w, http.StatusNotFound, "Sign in", msgPasskeyUnavailable)
		return
	}
	f, ok := i.readStepForm(w, r, store.PendingVerify)
	if !ok {
		return
	}
	f.page.Passkeys = true
	ctx, user := r.Context(), f.fl.user
	att, done, res, ok := i.guardCode(w, r, f, "mfa.html")
	if !ok {
		return
	}
	defer done()
	session, err := i.takeStepCeremony(ctx, f)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		i.log.ErrorContext(ctx, "reading a passkey ceremony failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	_, pk, _, err := i.verifier().Verify(ctx, session, user, r.PostForm.Get("credential"))
	var refused *passkey.Refusal
	if errors.As(err, &refused) {
		if i.passkeyFailure(ctx, refused.Reason, user, f.fl.clientID()) != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		msg := msgPasskeyRefused
		if refused.Reason == "expired" {
			msg = msgPasskeyExpired
		}
		i.refuseAgain(w, ctx, f, "mfa.html", res, msg)
		return
	}
	if err != nil {
		i.log.ErrorContext(ctx, "checking a passkey failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	if err := i.events.Record(ctx, audit.Event{Type: audit.PasskeyUsed, Subject: user.ID, Username: user.Username, ClientID: f.fl.clientID(),
		Reason: kindSecondFactor, Target: pk.Name}); err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	i.secondFactorProven(w, r, f, att, []string{passkey.Method(pk)}, "passkey")
}

// submitPasskeyEnroll stores the passkey registered on the enrolment page
// and goes on: a user without recovery codes gets ten first, shown once,
// as after an authenticator app.
func (i *enrolStep) submitPasskeyEnroll(w http.ResponseWriter, r *http.Request) {
	if i.passkeys == nil {
		i.message(w, http.StatusNotFound, "Sign in", msgPasskeyUnavailable)
		return
	}
	f, ok := i.readStepForm(w, r, store.PendingEnroll)
	if !ok {
		return
	}
	f.page.Passkeys = true
	ctx, fl := r.Context(), f.fl
	session, err := i.takeStepCeremony(ctx, f)
	switch {
	case errors.Is(err, store.ErrNotFound):
		i.renderMFAError(w, http.StatusBadRequest, "mfa_enroll.html", f, msgPasskeyExpired)
		return
	case err != nil:
		i.log.ErrorContext(ctx, "reading a passkey ceremony failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	pk, refused, err := i.createPasskey(ctx, fl, session, r.PostForm.Get("name"), r.PostForm.Get("credential"))
	if err != nil {
		i.log.ErrorContext(ctx, "storing a passkey failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	if refused != nil {
		if refused.reason != "" && i.passkeyFailure(ctx, refused.reason, fl.user, fl.clientID()) != nil {
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
	if err := i.events.Record(ctx, audit.Event{Type: audit.SecondFactorEnrolled, Subject: fl.user.ID, Username: fl.user.Username,
		ClientID: fl.clientID(), Reason: "passkey"}); err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	fl.amr = mfa.AddAMR(p.AMR, []string{passkey.Method(pk)})
	fl.done(store.StepEnrolled)
	i.recoveryCodesWithPasskey(w, r, fl, f.page)
}
