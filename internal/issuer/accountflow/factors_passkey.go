package accountflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/browsersession"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
	"github.com/nsauth/nsauth/internal/issuer/passkey"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// Passkeys on the account page. The page's script (web/assets/passkey.js,
// the login's, pointed here by the form's data-begin) posts JSON to
// PasskeyBeginPath with the mode: "register" adds a passkey (the rule for
// adding a factor holds at begin and again at finish), "reauth" proves it
// is the user with one of their passkeys (user verification required: a
// passkey that logs in alone proves as much as the login). The ceremony
// is kept in the ceremonies table under the session (ceremonyID) and
// bound to the browser (passkey.CeremonyBrowser of its CSRF token), one
// per session at a time, answered once: a finish from another browser, or
// another session, finds none and is refused as expired.

// Ceremony modes, as the page's script names them, and the kinds the
// ceremonies are stored as.
const (
	modeRegister = "register"
	modeReauth   = "reauth"
	kindRegister = "account_register"
	kindReauth   = "account_reauth"
)

// Limits of the account page's ceremonies: one per session (a new one
// replaces the old), and at most maxCeremoniesPerUser across a user's
// sessions; only signed-in users begin them.
const (
	maxCeremonies        = 10000
	maxCeremoniesPerUser = 8
	ceremonyPool         = "account"
)

// Messages of the passkey sections.
const (
	msgPasskeyUnavailable = "Passkeys are not available on this server."
	msgPasskeyExpired     = "The passkey request expired. Try again."
	msgPasskeyRefused     = "That passkey was not accepted. Try again."
	msgPasskeyNotSaved    = "The passkey could not be added. Try again."
	msgPasskeyName        = "The name of a passkey must be 1 to 64 characters on one line, without invisible formatting characters."
	msgPasskeyTaken       = "You already have a passkey of that name, or this passkey is registered already."
	msgPasskeyTooMany     = "You have as many passkeys as allowed. Remove one first."
	msgBusyCeremonies     = "The server is busy. Try again in a moment."
)

// ceremonyID is where a session's ceremony is kept: the ceremonies table
// is keyed by auth request ids, which are never of this form.
func ceremonyID(sessionID string) string { return "account:" + sessionID }

type passkeyBeginRequest struct {
	// AuthRequestID and Token are what the login's pages send; unused
	// here, accepted empty.
	AuthRequestID string `json:"authRequestID"`
	Mode          string `json:"mode"`
	Token         string `json:"token,omitempty"`
}

// beginPasskey is POST /account/passkeys/begin (JSON, CSRF token in
// X-CSRF-Token): it starts a ceremony of the session's user and answers
// the options for navigator.credentials.create or .get.
func (f factorPages) beginPasskey(w http.ResponseWriter, r *http.Request) {
	if f.passkeys == nil {
		web.JSONError(w, http.StatusNotFound, msgPasskeyUnavailable)
		return
	}
	ctx := r.Context()
	s, u, err := f.cfg.Sessions.CurrentUser(r)
	switch {
	case errors.Is(err, browsersession.ErrNoSession):
		web.JSONError(w, http.StatusBadRequest, msgSessionGone)
		return
	case err != nil:
		f.log.ErrorContext(ctx, "account page: reading the browser session failed", "error", err)
		web.JSONError(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	a := &account{session: s, user: u, csrf: web.Token(r)}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		web.JSONError(w, http.StatusUnsupportedMediaType, "Send JSON.")
		return
	}
	var req passkeyBeginRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.AuthRequestID != "" || req.Token != "" {
		web.JSONError(w, http.StatusBadRequest, "The request is not valid.")
		return
	}
	var (
		options any
		session *webauthn.SessionData
		kind    string
	)
	pks, err := f.st.PasskeysByUser(ctx, u.ID)
	if err != nil {
		f.log.ErrorContext(ctx, "account page: listing passkeys failed", "error", err)
		web.JSONError(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	creds := make([]webauthn.Credential, len(pks))
	for j := range pks {
		creds[j] = passkey.Credential(&pks[j])
	}
	switch req.Mode {
	case modeRegister:
		may, err := f.mayAddFactor(ctx, a)
		if err != nil {
			f.log.ErrorContext(ctx, "account page: checking the rule for adding a factor failed", "error", err)
			web.JSONError(w, http.StatusInternalServerError, web.MsgInternal)
			return
		}
		if !may {
			web.JSONError(w, http.StatusForbidden, msgReauthFirst)
			return
		}
		if len(pks) >= store.MaxPasskeysPerUser {
			web.JSONError(w, http.StatusConflict, msgPasskeyTooMany)
			return
		}
		exclude := make([]protocol.CredentialDescriptor, len(creds))
		for j := range creds {
			exclude[j] = creds[j].Descriptor()
		}
		kind = kindRegister
		options, session, err = f.cfg.Passkeys.BeginRegistration(passkey.User{U: u}, webauthn.WithExclusions(exclude),
			webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired))
		if err != nil {
			f.log.ErrorContext(ctx, "account page: beginning a passkey registration failed", "error", err)
			web.JSONError(w, http.StatusInternalServerError, web.MsgInternal)
			return
		}
	case modeReauth:
		if len(pks) == 0 {
			web.JSONError(w, http.StatusBadRequest, "You have no passkey.")
			return
		}
		kind = kindReauth
		options, session, err = f.cfg.Passkeys.BeginLogin(passkey.User{U: u, Creds: creds},
			webauthn.WithUserVerification(protocol.VerificationRequired))
		if err != nil {
			f.log.ErrorContext(ctx, "account page: beginning a passkey assertion failed", "error", err)
			web.JSONError(w, http.StatusInternalServerError, web.MsgInternal)
			return
		}
	default:
		web.JSONError(w, http.StatusBadRequest, "Unknown passkey mode.")
		return
	}
	switch err := f.putCeremony(ctx, a, kind, session); {
	case errors.Is(err, store.ErrCeremonyHolderFull), errors.Is(err, store.ErrCeremoniesFull):
		w.Header().Set("Retry-After", "5")
		web.JSONError(w, http.StatusServiceUnavailable, msgBusyCeremonies)
		return
	case err != nil:
		f.log.ErrorContext(ctx, "account page: storing a passkey ceremony failed", "error", err)
		web.JSONError(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(options)
}

// putCeremony keeps a's ceremony of kind, bound to a's session and
// browser, replacing the session's previous one.
func (f factorPages) putCeremony(ctx context.Context, a *account, kind string, session *webauthn.SessionData) error {
	// The store's expiry, on the injected clock, is the one that counts;
	// the library's would use the wall clock.
	session.Expires = time.Time{}
	data, err := json.Marshal(session)
	if err != nil {
		return fmt.Errorf("encoding a passkey ceremony: %w", err)
	}
	return f.st.PutPasskeyCeremony(ctx, &store.PasskeyCeremony{AuthRequestID: ceremonyID(a.session.ID), Kind: kind, UserID: a.user.ID,
		Browser: passkey.CeremonyBrowser(a.csrf), Session: data, ExpiresAt: f.cfg.Now().Add(passkey.CeremonyTTL)},
		store.CeremonyQuota{Pool: ceremonyPool, PoolLimit: maxCeremonies, Holder: "user:" + a.user.ID, HolderLimit: maxCeremoniesPerUser})
}

// takeCeremony takes a's ceremony of kind: nil when there is none for
// this session and browser (none begun, answered, expired, another
// kind's or another user's).
func (f factorPages) takeCeremony(ctx context.Context, a *account, kind string) (*webauthn.SessionData, error) {
	c, err := f.st.TakePasskeyCeremony(ctx, ceremonyID(a.session.ID), passkey.CeremonyBrowser(a.csrf))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if c.Kind != kind || c.UserID != a.user.ID {
		return nil, nil
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(c.Session, &session); err != nil {
		return nil, fmt.Errorf("decoding a passkey ceremony: %w", err)
	}
	return &session, nil
}

// finishPasskey is POST /account/passkeys/finish: the browser's answer to
// a registration (field credential) and the new passkey's name (name).
func (f factorPages) finishPasskey(w http.ResponseWriter, r *http.Request) {
	if f.passkeys == nil {
		f.message(w, http.StatusNotFound, msgPasskeyUnavailable)
		return
	}
	a, ok := f.account(w, r)
	if !ok || !f.requireAddFactor(w, r, a, "passkeys") {
		return
	}
	ctx, form := r.Context(), r.PostForm
	refuse := func(status int, msg string) {
		f.showFactors(w, r, a, view{Status: status, Section: "passkeys", Error: msg}, func(d *factorsData) { d.NewPasskeyName = form.Get("name") })
	}
	name := form.Get("name")
	if store.CheckPasskeyName(name) != nil {
		refuse(http.StatusBadRequest, msgPasskeyName)
		return
	}
	session, err := f.takeCeremony(ctx, a, kindRegister)
	if err != nil {
		f.fail(w, r, "reading a passkey ceremony", err)
		return
	}
	if session == nil {
		refuse(http.StatusBadRequest, msgPasskeyExpired)
		return
	}
	pk, err := f.createPasskey(a, session, name, form.Get("credential"))
	if err != nil {
		if f.refused(ctx, a, audit.PasskeyFailed, "bad_attestation") != nil {
			f.message(w, http.StatusInternalServerError, web.MsgInternal)
			return
		}
		refuse(http.StatusBadRequest, msgPasskeyNotSaved)
		return
	}
	switch err := f.st.AddPasskey(ctx, pk); {
	case errors.Is(err, store.ErrConflict):
		refuse(http.StatusConflict, msgPasskeyTaken)
		return
	case errors.Is(err, store.ErrTooManyPasskeys):
		refuse(http.StatusConflict, msgPasskeyTooMany)
		return
	case err != nil:
		f.fail(w, r, "storing a passkey", err)
		return
	}
	if err := f.record(ctx, a, audit.Event{Type: audit.PasskeyRegistered, ClientID: AppID, Target: pk.Name}); err != nil {
		f.message(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	// A user without recovery codes gets ten, shown once, as after a
	// passkey added at the login.
	codes := secondfactor.NewRecoveryCodes()
	switch err := f.st.AddRecoveryCodesIfNone(ctx, a.user.ID, codes); {
	case errors.Is(err, store.ErrConflict):
		codes = nil // the user has some
	case err != nil:
		f.fail(w, r, "storing recovery codes", err)
		return
	}
	notice := fmt.Sprintf(msgPasskeyAdded, pk.Name)
	if codes != nil {
		notice = fmt.Sprintf(msgPasskeyAddedCodes, pk.Name)
	}
	f.showFactors(w, r, a, view{Notice: notice, Section: "passkeys"}, func(d *factorsData) { d.NewCodes = codes })
}

// errNotSaved: the browser's answer to a registration does not check out.
var errNotSaved = errors.New("passkey registration refused")

// createPasskey checks the browser's answer to the registration ceremony
// session of a's user and returns the passkey to store under name.
func (f factorPages) createPasskey(a *account, session *webauthn.SessionData, name, credential string) (*store.Passkey, error) {
	if credential == "" {
		return nil, errNotSaved
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(credential))
	if err != nil {
		return nil, errNotSaved
	}
	cred, err := f.cfg.Passkeys.CreateCredential(passkey.User{U: a.user}, *session, parsed)
	if err != nil {
		return nil, errNotSaved
	}
	transports := make([]string, len(cred.Transport))
	for j, t := range cred.Transport {
		transports[j] = string(t)
	}
	return &store.Passkey{UserID: a.user.ID, Name: name, CredentialID: cred.ID, PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount,
		UserVerified: cred.Flags.UserVerified, BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		Transports: transports, AAGUID: cred.Authenticator.AAGUID, AttestationType: cred.AttestationType}, nil
}

// reauthPasskey is POST /account/reauth/passkey: "confirm it's you" with
// one of the user's passkeys (field credential), verified by the
// authenticator (its PIN or biometric). It counts against the login
// limits as a password does.
func (f factorPages) reauthPasskey(w http.ResponseWriter, r *http.Request) {
	if f.passkeys == nil {
		f.message(w, http.StatusNotFound, msgPasskeyUnavailable)
		return
	}
	a, ok := f.account(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	c, ok := f.admit(w, r, a, "reauth")
	if !ok {
		return
	}
	defer c.done()
	session, err := f.takeCeremony(ctx, a, kindReauth)
	if err != nil {
		f.fail(w, r, "reading a passkey ceremony", err)
		return
	}
	_, pk, uv, err := f.passkeys.Verify(ctx, session, a.user, r.PostForm.Get("credential"))
	var refused *passkey.Refusal
	switch {
	case errors.As(err, &refused):
		msg := msgPasskeyRefused
		if refused.Reason == "expired" {
			msg = msgPasskeyExpired
		}
		f.wrongAnswer(w, r, a, c, "reauth", errWrong, audit.PasskeyFailed, refused.Reason, msg)
		return
	case err != nil:
		f.fail(w, r, "checking a passkey", err)
		return
	case !uv:
		// Required at begin; checked again all the same.
		f.wrongAnswer(w, r, a, c, "reauth", errWrong, audit.PasskeyFailed, "not_verified", msgPasskeyRefused)
		return
	}
	if err := f.record(ctx, a, audit.Event{Type: audit.PasskeyUsed, ClientID: AppID, Reason: modeReauth, Target: pk.Name}); err != nil {
		f.message(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	f.passed(ctx, c)
	f.reauthenticated(w, r, a, []string{passkey.Method(pk), passkey.AMRUser, mfa.AMRMFA}, "passkey")
}
