package authflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
	"github.com/nsauth/nsauth/internal/issuer/passkey"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// The offer of a passkey: after a login that proved a second factor and
// used no passkey, the user is offered to add one for this device ("Add a
// passkey" / "Not now"), unless they have as many as allowed or said "Not
// now" on this browser lately. The offer is a step of the login
// (store.PendingOffer, bound to the browser like every step);
// "Not now" and a registered passkey both finish the login as it was,
// with its amr (adding a passkey is not a factor of this login). A
// password alone is never offered one: see the rule for lasting factors
// in the package doc.

// Paths of the passkey endpoints.
const (
	passkeyBeginPath  = "/login/passkey/begin"
	passkeyFinishPath = "/login/passkey/finish"
	// passkeyRegisterPath takes the passkey created from the offer.
	passkeyRegisterPath = "/login/passkey/register"
	passkeySkipPath     = "/login/passkey/skip"
)

// passkeyOffer offers one more passkey after a login that proved a second
// factor.
type passkeyOffer struct {
	*deps
	*stepForms
}

// Scripted reports whether the page runs our passkey script: its CSP then
// allows scripts and fetches from our own origin, nothing else.
func (p loginPage) Scripted() bool { return p.Passkeys }

type passkeyOfferPage struct {
	Title         string
	Client        string
	Error         string
	AuthRequestID string
	CSRF          string
	// Token is the offer step's token.
	Token string
	Name  string
	// Existing is how many passkeys the user has already: the page then
	// offers one more, for this device.
	Existing int
}

func (passkeyOfferPage) Scripted() bool { return true }

// offersPasskey reports whether a login is offered a passkey: it proved a
// second factor (a password alone never adds a factor), used no passkey
// (this device has one), was not offered one already, and its user has
// room for one more, on a browser that did not say "Not now" lately. An
// enrolment link's flow has its own page.
func (i *passkeyOffer) offersPasskey(r *http.Request, fl *loginFlow, f mfa.Factors) bool {
	if i.passkeys == nil || fl.viaLink() || fl.did(store.StepOffered) || !slices.Contains(fl.amr, amrMFA) ||
		slices.Contains(fl.amr, passkey.AMRHardwareKey) || slices.Contains(fl.amr, passkey.AMRSoftwareKey) || f.Passkeys >= store.MaxPasskeysPerUser {
		return false
	}
	_, err := r.Cookie(i.passkeyLaterCookie())
	return err != nil // a cookie: "Not now", said on this browser lately
}

// offerPasskey shows the offer, and reports whether it did: when the step
// cannot be stored, nothing is written and the login goes on without it.
func (i *passkeyOffer) offerPasskey(w http.ResponseWriter, r *http.Request, fl *loginFlow) bool {
	token, err := i.pause(r.Context(), fl, store.PendingOffer, "")
	if err != nil {
		return false
	}
	i.showOffer(w, r, fl, token, http.StatusOK, "")
	return true
}

func (i *passkeyOffer) showOffer(w http.ResponseWriter, r *http.Request, fl *loginFlow, token string, status int, msg string) {
	page := passkeyOfferPage{Title: "Add a passkey", Client: fl.clientID(), Error: msg, AuthRequestID: fl.id, CSRF: fl.csrf, Token: token,
		Name: "Passkey " + i.cfg.Now().UTC().Format("2006-01-02")}
	existing, err := i.st.PasskeysByUser(r.Context(), fl.user.ID)
	if err != nil {
		i.log.WarnContext(r.Context(), "reading passkeys failed", "error", err)
	}
	if page.Existing = len(existing); page.Existing > 0 {
		page.Title = "Add a passkey for this device"
		names := make([]string, len(existing))
		for j := range existing {
			names[j] = existing[j].Name
		}
		page.Name = passkey.NewName(r.UserAgent(), page.Name, names)
	}
	i.render(w, status, "passkey_offer.html", page, fl.formTarget())
}

// skipPasskey is "Not now": the login finishes as it was.
func (i *passkeyOffer) skipPasskey(w http.ResponseWriter, r *http.Request) {
	f, ok := i.readStepForm(w, r, store.PendingOffer)
	if !ok {
		return
	}
	if _, ok := i.takePending(w, r.Context(), f); !ok {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: i.passkeyLaterCookie(), Value: "1", Path: "/", MaxAge: int(passkeyOfferPause / time.Second),
		HttpOnly: true, Secure: i.secure, SameSite: http.SameSiteStrictMode})
	f.fl.done(store.StepOffered)
	i.next(w, r, f.fl)
}

// passkeyOfferPause is how long "Not now" keeps the offer away from the
// browser that said it.
const passkeyOfferPause = 30 * 24 * time.Hour

// passkeyLaterCookie names the cookie of "Not now". It proves nothing and
// guards nothing: it only spares the browser the offer.
func (i *deps) passkeyLaterCookie() string { return web.CookieName("nsauth_passkey_later", i.secure) }

// passkeyForm opens the auth request of a passkey page's form post that
// the form guard let through (web.Guard), or writes the page saying why
// not.
func (i *passkeyStep) passkeyForm(w http.ResponseWriter, r *http.Request) (ar *store.AuthRequest, id, csrf string, ok bool) {
	ctx := r.Context()
	id, csrf = r.PostForm.Get("authRequestID"), web.Token(r)
	if id == "" || len(id) > maxAuthRequestIDLen {
		i.message(w, http.StatusBadRequest, "Sign in", msgIncomplete)
		return nil, "", "", false
	}
	ar, ok = i.OpenRequest(w, ctx, id)
	if !ok {
		return nil, "", "", false
	}
	return ar, id, csrf, true
}

// submitPasskeyRegistration stores the passkey the browser created from
// the offer and finishes the login. A refused answer leaves the offer on
// screen: the user may try again or decline.
func (i *passkeyOffer) submitPasskeyRegistration(w http.ResponseWriter, r *http.Request) {
	if i.passkeys == nil {
		i.message(w, http.StatusNotFound, "Sign in", msgPasskeyUnavailable)
		return
	}
	f, ok := i.readStepForm(w, r, store.PendingOffer)
	if !ok {
		return
	}
	ctx, fl := r.Context(), f.fl
	session, err := i.takeStepCeremony(ctx, f)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			i.log.ErrorContext(ctx, "reading a passkey ceremony failed", "error", err)
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		session = nil // answered as a refusal below
	}
	_, refused, err := i.createPasskey(ctx, fl, session, r.PostForm.Get("name"), r.PostForm.Get("credential"))
	switch {
	case err != nil:
		i.log.ErrorContext(ctx, "storing a passkey failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	case refused != nil:
		if refused.reason != "" && i.passkeyFailure(ctx, refused.reason, fl.user, fl.clientID()) != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		i.showOffer(w, r, fl, f.token, refused.status, refused.msg)
		return
	}
	if _, ok := i.takePending(w, ctx, f); !ok {
		return
	}
	fl.done(store.StepOffered)
	i.recoveryCodesWithPasskey(w, r, fl, f.page)
}

// recoveryCodesWithPasskey shows ten recovery codes to a user who just
// added a passkey and has none, then goes on with the login; a user who
// has some goes on at once.
func (i *stepForms) recoveryCodesWithPasskey(w http.ResponseWriter, r *http.Request, fl *loginFlow, page mfaPage) {
	if page.Factors.RecoveryCodes > 0 {
		i.next(w, r, fl)
		return
	}
	codes := secondfactor.NewRecoveryCodes()
	i.showRecoveryCodes(w, r, fl, page, "passkey", codes, func() error {
		if err := i.st.AddRecoveryCodesIfNone(r.Context(), fl.user.ID, codes); errors.Is(err, store.ErrConflict) {
			return errNoCodesToShow
		} else if err != nil {
			return fmt.Errorf("storing recovery codes: %w", err)
		}
		return nil
	})
}

// registrationRefusal is why a new passkey was not stored: the status and
// message of the page, and the audit reason when the browser's answer was
// refused ("" for a name the user can fix).
type registrationRefusal struct {
	status      int
	msg, reason string
}

// createPasskey checks the browser's answer to a registration ceremony
// (session, nil when there was none) of the flow's user and stores the
// passkey under name.
func (i *stepForms) createPasskey(ctx context.Context, fl *loginFlow, session *webauthn.SessionData, name, credential string) (*store.Passkey, *registrationRefusal, error) {
	if err := store.CheckPasskeyName(name); err != nil {
		return nil, &registrationRefusal{http.StatusBadRequest, "The name of a passkey must be 1 to 64 characters on one line, without invisible formatting characters.", ""}, nil
	}
	notSaved := &registrationRefusal{http.StatusBadRequest, msgPasskeyNotSaved, "bad_attestation"}
	if session == nil || credential == "" {
		return nil, notSaved, nil
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(credential))
	if err != nil {
		return nil, notSaved, nil
	}
	user := fl.user
	cred, err := i.passkeys.CreateCredential(passkey.User{U: user}, *session, parsed)
	if err != nil {
		return nil, notSaved, nil
	}
	transports := make([]string, len(cred.Transport))
	for j, t := range cred.Transport {
		transports[j] = string(t)
	}
	pk := &store.Passkey{UserID: user.ID, Name: name, CredentialID: cred.ID, PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount,
		UserVerified: cred.Flags.UserVerified, BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		Transports: transports, AAGUID: cred.Authenticator.AAGUID, AttestationType: cred.AttestationType}
	switch err := i.st.AddPasskey(ctx, pk); {
	case errors.Is(err, store.ErrConflict):
		return nil, &registrationRefusal{http.StatusConflict, "You already have a passkey of that name, or this passkey is registered already.", ""}, nil
	case errors.Is(err, store.ErrTooManyPasskeys):
		return nil, &registrationRefusal{http.StatusConflict, "You have as many passkeys as allowed. Ask an administrator to remove one.", ""}, nil
	case err != nil:
		return nil, nil, err
	}
	if err := i.events.Record(ctx, audit.Event{Type: audit.PasskeyRegistered, Subject: user.ID, Username: user.Username, ClientID: fl.clientID(),
		Target: pk.Name}); err != nil {
		return nil, nil, err
	}
	return pk, nil, nil
}
