package issuer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
)

// The passkey pages: after a login in which no passkey was used (the
// password alone, or with a code or a recovery code), the user is offered
// to add a passkey for this device ("Add a passkey" / "Not now"), unless
// they have as many as allowed or said "Not now" on this browser lately.
// The offer is state of the auth request, kept server-side like a
// ceremony: "Not now" and a registered passkey both finish the login as
// it was, with its amr (adding a passkey is not a factor of this login).
// A user who has no recovery codes gets ten with the passkey, shown once
// (mfa.go) before the login goes on.

// Paths of the passkey endpoints.
const (
	passkeyBeginPath  = "/login/passkey/begin"
	passkeyFinishPath = "/login/passkey/finish"
	passkeySkipPath   = "/login/passkey/skip"
	// passkeyContinuePath goes on with the login after the recovery codes
	// that came with a passkey added from the offer.
	passkeyContinuePath = "/login/passkey/continue"
)

// scripted reports whether the page runs our passkey script: its CSP then
// allows scripts and fetches from our own origin, nothing else.
func (p loginPage) scripted() bool { return p.Passkeys }

type passkeyOfferPage struct {
	Title         string
	Client        string
	Error         string
	AuthRequestID string
	CSRF          string
	Name          string
	// Existing is how many passkeys the user has already: the page then
	// offers one more, for this device.
	Existing int
}

func (passkeyOfferPage) scripted() bool { return true }

// routePasskeys adds the passkey endpoints to mux.
func (i *Issuer) routePasskeys(mux *http.ServeMux) {
	mux.Handle("POST "+passkeyBeginPath, http.HandlerFunc(i.beginPasskey))
	mux.Handle("POST "+passkeyFinishPath, http.HandlerFunc(i.finishPasskey))
	mux.Handle("POST "+passkeySkipPath, http.HandlerFunc(i.skipPasskey))
	mux.Handle("POST "+passkeyContinuePath, http.HandlerFunc(i.continueAfterPasskey))
	mux.Handle("POST "+mfaPasskeyPath, http.HandlerFunc(i.submitPasskeySecondFactor))
	mux.Handle("POST "+mfaPasskeyEnrollPath, http.HandlerFunc(i.submitPasskeyEnroll))
}

// offerPasskey shows the offer to add a passkey to a user who just logged
// in with amr, and reports whether it did. When it did not, the caller
// completes the login. No offer after a login that used a passkey (the
// device has one), to a user at store.MaxPasskeysPerUser, or to a browser
// that said "Not now" lately.
func (i *Issuer) offerPasskey(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, id string, user *store.User, amr []string, csrf string) bool {
	if i.passkeys == nil || slices.Contains(amr, amrHardwareKey) || slices.Contains(amr, amrSoftwareKey) {
		return false
	}
	if _, err := r.Cookie(i.passkeyLaterCookie()); err == nil {
		return false // "Not now", said on this browser lately
	}
	ctx := r.Context()
	n, err := i.st.CountPasskeys(ctx, user.ID)
	if err != nil {
		i.log.WarnContext(ctx, "counting passkeys failed; not offering one", "error", err)
		return false
	}
	if n >= store.MaxPasskeysPerUser {
		return false
	}
	if err := i.putCeremony(ctx, ar, kindOffer, user.ID, ceremonyState{AMR: amr}); err != nil {
		if !errors.Is(err, store.ErrCeremoniesFull) {
			i.log.WarnContext(ctx, "storing a passkey offer failed; not offering one", "error", err)
		}
		return false
	}
	i.showOffer(w, r, ar, id, user, http.StatusOK, csrf, "")
	return true
}

func (i *Issuer) showOffer(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, id string, user *store.User, status int, csrf, msg string) {
	page := passkeyOfferPage{Title: "Add a passkey", Client: ar.ClientID, Error: msg, AuthRequestID: id, CSRF: csrf,
		Name: "Passkey " + i.cfg.Now().UTC().Format("2006-01-02")}
	existing, err := i.st.PasskeysByUser(r.Context(), user.ID)
	if err != nil {
		i.log.WarnContext(r.Context(), "reading passkeys failed", "error", err)
	}
	if page.Existing = len(existing); page.Existing > 0 {
		page.Title = "Add a passkey for this device"
		names := make([]string, len(existing))
		for j := range existing {
			names[j] = existing[j].Name
		}
		page.Name = newPasskeyName(r.UserAgent(), page.Name, names)
	}
	i.render(w, status, "passkey_offer.html", page, origin(ar.RedirectURI))
}

// newPasskeyName suggests a name for one more passkey that tells it from
// the user's others (taken): the browser and system the user agent
// names ("Firefox on Linux"), else fallback, numbered when taken.
func newPasskeyName(userAgent, fallback string, taken []string) string {
	base := fallback
	if device := deviceOf(userAgent); device != "" {
		base = device
	}
	name := base
	for n := 2; slices.Contains(taken, name) && n <= store.MaxPasskeysPerUser+1; n++ {
		name = fmt.Sprintf("%s (%d)", base, n)
	}
	return name
}

// deviceOf names the browser and system of a User-Agent header, or "".
// Order matters: Edge's and Chrome's headers name Safari too, Edge's
// names Chrome, Android's names Linux, iOS's names Mac OS X.
func deviceOf(ua string) string {
	if len(ua) > 512 {
		ua = ua[:512]
	}
	first := func(pairs ...string) string {
		for j := 0; j+1 < len(pairs); j += 2 {
			if strings.Contains(ua, pairs[j]) {
				return pairs[j+1]
			}
		}
		return ""
	}
	browser := first("Edg/", "Edge", "Firefox/", "Firefox", "Chrome/", "Chrome", "Chromium/", "Chromium", "Safari/", "Safari")
	system := first("iPhone", "iPhone", "iPad", "iPad", "Android", "Android", "Windows", "Windows", "Mac OS X", "macOS",
		"CrOS", "ChromeOS", "Linux", "Linux")
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case system != "":
		return system
	default:
		return browser
	}
}

// skipPasskey is "Not now": the login finishes as the password left it.
func (i *Issuer) skipPasskey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, _, csrf, ok := i.passkeyForm(w, r, maxLoginFormBytes)
	if !ok {
		return
	}
	user, st, ok := i.takeCeremonyOfUser(w, ctx, ar, kindOffer, kindRegister)
	if !ok {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: i.passkeyLaterCookie(), Value: "1", Path: "/", MaxAge: int(passkeyOfferPause / time.Second),
		HttpOnly: true, Secure: i.secure, SameSite: http.SameSiteStrictMode})
	i.completeLogin(w, r, ar, user, st.AMR, csrf)
}

// passkeyOfferPause is how long "Not now" keeps the offer away from the
// browser that said it.
const passkeyOfferPause = 30 * 24 * time.Hour

// passkeyLaterCookie names the cookie of "Not now". It proves nothing and
// guards nothing: it only spares the browser the offer.
func (i *Issuer) passkeyLaterCookie() string {
	if i.secure {
		return "__Host-nsauth_passkey_later"
	}
	return "nsauth_passkey_later"
}

// passkeyForm checks a passkey page's form post (origin, a body of at most
// limit bytes, answered 413 beyond, CSRF) and opens its auth request, or
// writes the page saying why not.
func (i *Issuer) passkeyForm(w http.ResponseWriter, r *http.Request, limit int64) (ar *store.AuthRequest, id, csrf string, ok bool) {
	ctx := r.Context()
	if !i.sameOrigin(r) {
		i.refuseLogin(w, ctx, loginFailure{reason: reasonCSRF}, http.StatusForbidden, msgForged)
		return nil, "", "", false
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if err := r.ParseForm(); err != nil {
		status := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			status = http.StatusRequestEntityTooLarge
		}
		i.message(w, status, "Sign in", msgForged)
		return nil, "", "", false
	}
	id = r.PostForm.Get("authRequestID")
	if id == "" || len(id) > maxAuthRequestIDLen {
		i.message(w, http.StatusBadRequest, "Sign in", msgIncomplete)
		return nil, "", "", false
	}
	csrf, ok = i.checkCSRF(r, r.PostForm.Get("csrf"))
	if !ok {
		i.refuseLogin(w, ctx, loginFailure{reason: reasonCSRF}, http.StatusForbidden, msgForged)
		return nil, "", "", false
	}
	ar, ok = i.pendingRequest(w, ctx, id)
	if !ok {
		return nil, "", "", false
	}
	return ar, id, csrf, true
}

// passkeyStateGone answers a post whose server-side state is gone (used,
// expired, never there): the login must start again.
func (i *Issuer) passkeyStateGone(w http.ResponseWriter, ctx context.Context, err error) {
	if errors.Is(err, store.ErrNotFound) {
		i.message(w, http.StatusBadRequest, "Sign in", msgExpired)
		return
	}
	i.log.ErrorContext(ctx, "reading a passkey ceremony failed", "error", err)
	i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
}

// finishRegistration stores the passkey the browser created and finishes
// the login.
func (i *Issuer) finishRegistration(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, id, csrf, name, credential string) {
	ctx := r.Context()
	user, st, ok := i.takeCeremonyOfUser(w, ctx, ar, kindRegister)
	if !ok {
		return
	}
	// A refusal puts the offer back: the user may try again or decline.
	again := func(status int, msg, reason string) {
		if reason != "" {
			if i.passkeyFailure(ctx, reason, user, ar.ClientID) != nil {
				status, msg = http.StatusInternalServerError, msgInternal
			}
		}
		if err := i.putCeremony(ctx, ar, kindOffer, user.ID, ceremonyState{AMR: st.AMR}); err != nil {
			i.log.ErrorContext(ctx, "storing a passkey offer failed", "error", err)
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		i.showOffer(w, r, ar, id, user, status, csrf, msg)
	}
	before, err := i.userFactors(ctx, user.ID)
	if err != nil {
		i.log.ErrorContext(ctx, "reading second factors failed", "error", err)
		again(http.StatusInternalServerError, msgInternal, "")
		return
	}
	_, refused, err := i.createPasskey(ctx, ar, user, st, name, credential)
	if err != nil {
		i.log.ErrorContext(ctx, "storing a passkey failed", "error", err)
		again(http.StatusInternalServerError, msgInternal, "")
		return
	}
	if refused != nil {
		again(refused.status, refused.msg, refused.reason)
		return
	}
	if !before.any() {
		// The passkey is the user's second factor from now on, as if
		// enrolled on the enrolment page.
		if err := i.record(ctx, audit.Event{Type: audit.SecondFactorEnrolled, Subject: user.ID, Username: user.Username,
			ClientID: ar.ClientID, Reason: "passkey"}); err != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
	}
	if before.RecoveryCodes == 0 {
		// The state that goes on after the codes comes first: codes are
		// never stored without the page that shows them.
		if err := i.putCeremony(ctx, ar, kindRecoveryCodes, user.ID, ceremonyState{AMR: st.AMR}); err != nil {
			i.log.ErrorContext(ctx, "storing the login after a passkey failed", "error", err)
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		codes, err := i.newRecoveryCodesIfNone(ctx, user.ID)
		if err != nil {
			i.log.ErrorContext(ctx, "storing recovery codes failed", "error", err)
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		if codes != nil {
			i.showRecoveryCodes(w, ar, mfaPage{Client: ar.ClientID, Device: isDeviceLogin(ar), Username: user.Username, AuthRequestID: id, CSRF: csrf},
				"passkey", passkeyContinuePath, codes)
			return
		}
		// Codes were given meanwhile (another login): nothing to show.
		if _, _, err := i.takeCeremony(ctx, ar, kindRecoveryCodes); err != nil && !errors.Is(err, store.ErrNotFound) {
			i.log.WarnContext(ctx, "removing a passkey ceremony failed", "error", err)
		}
	}
	i.completeLogin(w, r, ar, user, st.AMR, csrf)
}

// continueAfterPasskey goes on with a login after the passkey added from
// the offer and the recovery codes that came with it: as the login was.
func (i *Issuer) continueAfterPasskey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, _, csrf, ok := i.passkeyForm(w, r, maxLoginFormBytes)
	if !ok {
		return
	}
	user, st, ok := i.takeCeremonyOfUser(w, ctx, ar, kindRecoveryCodes)
	if !ok {
		return
	}
	i.completeLogin(w, r, ar, user, st.AMR, csrf)
}

// registrationRefusal is why a new passkey was not stored: the status and
// message of the page, and the audit reason when the browser's answer was
// refused ("" for a name the user can fix).
type registrationRefusal struct {
	status      int
	msg, reason string
}

// createPasskey checks the browser's answer to a registration ceremony
// (state st, for user) and stores the passkey under name.
func (i *Issuer) createPasskey(ctx context.Context, ar *store.AuthRequest, user *store.User, st ceremonyState, name, credential string) (*store.Passkey, *registrationRefusal, error) {
	if err := store.CheckPasskeyName(name); err != nil {
		return nil, &registrationRefusal{http.StatusBadRequest, "The name of a passkey must be 1 to 64 characters on one line, without invisible formatting characters.", ""}, nil
	}
	notSaved := &registrationRefusal{http.StatusBadRequest, msgPasskeyNotSaved, "bad_attestation"}
	if st.Session == nil || credential == "" {
		return nil, notSaved, nil
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(credential))
	if err != nil {
		return nil, notSaved, nil
	}
	cred, err := i.passkeys.CreateCredential(passkeyUser{u: user}, *st.Session, parsed)
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
	if err := i.record(ctx, audit.Event{Type: audit.PasskeyRegistered, Subject: user.ID, Username: user.Username, ClientID: ar.ClientID,
		Target: pk.Name}); err != nil {
		return nil, nil, err
	}
	i.log.InfoContext(ctx, "passkey registered", "username", user.Username, "passkey", pk.Name)
	return pk, nil, nil
}

// takeCeremonyOfUser takes ar's ceremony of one of kinds with the user it
// belongs to, or answers that the step is gone.
func (i *Issuer) takeCeremonyOfUser(w http.ResponseWriter, ctx context.Context, ar *store.AuthRequest, kinds ...string) (*store.User, ceremonyState, bool) {
	c, st, err := i.takeCeremony(ctx, ar, kinds...)
	if err != nil {
		i.passkeyStateGone(w, ctx, err)
		return nil, st, false
	}
	user, err := i.st.UserByID(ctx, c.UserID)
	if err != nil {
		i.passkeyStateGone(w, ctx, err)
		return nil, st, false
	}
	return user, st, true
}
