package authflow

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
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/passkey"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// Passkeys (WebAuthn, github.com/go-webauthn/webauthn).
//
//   - The relying party id is the issuer's host name and the only origin
//     accepted is the issuer's. Browsers refuse an IP address as a relying
//     party id, so on an issuer such as http://127.0.0.1:8080 passkeys are
//     unavailable (said once at start, and the pages do not offer them);
//     the issuer derived on loopback, http://localhost:PORT, has them.
//   - A passwordless ceremony belongs to a pending auth request: its state
//     (the challenge) is kept server-side in the store, one per auth
//     request (a new one replaces the old), answered once, expiring with
//     the auth request at the latest. A begin request therefore needs a
//     sealed auth request id, which only the authorize endpoint
//     (rate-limited) hands out, and the CSRF cookie. The ceremonies of the
//     steps after the first factor are kept on their step (passkeymfa.go).
//   - Passwordless ceremonies are begun by browsers nobody has
//     authenticated, and are bounded so that no flood of them can switch
//     passkey sign-in off (see ceremonyQuota): a browser that logged in
//     before (its known-browser cookie, package attempts) draws on a pool of
//     its own, counted per account, that the others cannot reach; any
//     other browser draws on a shared pool in which one client address
//     holds at most maxCeremoniesPerAddress. A passwordless ceremony is
//     bound to the browser that began it: only a finish carrying that
//     browser's CSRF cookie takes it, and another browser's finish is
//     refused and leaves it as it was.
//   - Begin endpoints take JSON (POST, CSRF token in X-CSRF-Token, bodies
//     bounded) and answer the options JSON; the browser's answer is posted
//     as a form (field credential), so that the result is a page or the
//     redirect to the client, as with the password.
//   - A passkey assertion is a login attempt: it takes its place in the
//     login counters (package attempts) before it is checked, and a refused one
//     keeps it.
//
// How the login is described in the tokens' amr (RFC 8176): a passkey is
// "hwk" (a key bound to hardware) unless the authenticator says it may be
// synced between devices (backup eligible), then "swk". Passwordless
// logins require user verification (the authenticator's PIN or
// biometric), which adds "user" and makes the login multi-factor ("mfa").
// After a password, a passkey is the second factor: pwd, hwk|swk, mfa.

// Ceremony modes, as the pages' script names them. A passwordless
// ceremony comes before any factor and is kept in the ceremony table, one
// per auth request; the others belong to a step after the first factor and
// are kept on that step, bound to its browser (passkeymfa.go).
const (
	kindPasswordless = "passwordless"
	// kindRegister adds a passkey from the offer (passkeypages.go).
	kindRegister     = "register"
	kindSecondFactor = "second_factor"
	// kindEnroll registers a passkey on the enrolment page of a flow that
	// may add a factor (an enrolment link's).
	kindEnroll = "enroll"
)

// Limits of the passkey endpoints.
const (
	// maxPasskeyCeremonies bounds the ceremonies in progress in each pool
	// across the whole provider.
	maxPasskeyCeremonies = 10000
	// maxCeremoniesPerAddress bounds the passwordless ceremonies in
	// progress of the browsers of one client address (grouped by
	// clientaddr.Key) that the provider does not know. A person needs one;
	// an office behind one address needs a few at a time.
	maxCeremoniesPerAddress = 16
	// maxCeremoniesPerKnownAccount bounds the passwordless ceremonies in
	// progress of the known browsers of one account (several devices and
	// tabs): a thief of one browser's cookies, or an insider with an
	// account, holds no more of the known browsers' pool than that.
	maxCeremoniesPerKnownAccount = 8
	// maxPasskeyBeginBytes bounds a begin request's body.
	maxPasskeyBeginBytes = maxAuthRequestIDLen + 1<<10
	// maxPasskeyFormBytes bounds a finish form: the auth request, the CSRF
	// token and the authenticator's answer (attestation objects with
	// certificates run to a few KiB).
	maxPasskeyFormBytes = maxAuthRequestIDLen + 64<<10
)

// Messages of the passkey pages.
const (
	msgPasskeyRefused     = "That passkey was not accepted. Try again, or sign in with your password."
	msgPasskeyExpired     = "The passkey request expired. Try again."
	msgPasskeyUnavailable = "Passkeys are not available on this server."
	msgPasskeyBusy        = "The server is busy. Try again in a moment."
	msgPasskeyAddressBusy = "Too many passkey sign-ins are in progress from your network. Try again in a few minutes, or sign in with your password."
	msgPasskeyNotSaved    = "The passkey could not be added. Try again, or continue without it."
)

// passkeyStep begins every passkey ceremony and finishes a passwordless
// login.
type passkeyStep struct{ *deps }

// passwordlessAMR describes a login with the passkey p alone. Passwordless
// ceremonies require user verification, so userVerified is true for every
// login that gets here; it is checked again all the same.
func passwordlessAMR(p *store.Passkey, userVerified bool) []string {
	if userVerified {
		return []string{passkey.Method(p), passkey.AMRUser, amrMFA}
	}
	return []string{passkey.Method(p)}
}

// jsonError answers a begin request.
var jsonError = web.JSONError

type passkeyBeginRequest struct {
	AuthRequestID string `json:"authRequestID"`
	Mode          string `json:"mode"`
	// Token is the second-factor step's pending state (mfa.go), for the
	// modes second_factor and enroll.
	Token string `json:"token,omitempty"`
}

// beginPasskey starts a ceremony for a pending auth request and answers
// the options for navigator.credentials.get or .create.
func (i *passkeyStep) beginPasskey(w http.ResponseWriter, r *http.Request) {
	if i.passkeys == nil {
		jsonError(w, http.StatusNotFound, msgPasskeyUnavailable)
		return
	}
	ctx, csrf := r.Context(), web.Token(r)
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		jsonError(w, http.StatusUnsupportedMediaType, "Send JSON.")
		return
	}
	// The form guard read the body, at most maxPasskeyBeginBytes.
	var req passkeyBeginRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, "The request is not valid JSON.")
		return
	}
	var (
		options any
		err     error
	)
	switch req.Mode {
	case kindPasswordless:
		if req.AuthRequestID == "" || len(req.AuthRequestID) > maxAuthRequestIDLen {
			jsonError(w, http.StatusBadRequest, msgIncomplete)
			return
		}
		ar, status, msg := i.openPending(ctx, req.AuthRequestID)
		if ar == nil {
			jsonError(w, status, msg)
			return
		}
		options, err = i.beginPasswordless(ctx, r, ar, csrf)
	case kindRegister, kindSecondFactor, kindEnroll:
		options, err = i.beginStepCeremony(ctx, req.Mode, req.AuthRequestID, req.Token, csrf)
	default:
		jsonError(w, http.StatusBadRequest, "Unknown passkey mode.")
		return
	}
	switch {
	case errors.Is(err, store.ErrCeremonyHolderFull):
		// Its ceremonies end as they are answered, or after
		// passkey.CeremonyTTL.
		w.Header().Set("Retry-After", "60")
		jsonError(w, http.StatusTooManyRequests, msgPasskeyAddressBusy)
		return
	case errors.Is(err, store.ErrCeremoniesFull):
		w.Header().Set("Retry-After", "5")
		jsonError(w, http.StatusServiceUnavailable, msgPasskeyBusy)
		return
	case errors.Is(err, errStepIncomplete):
		jsonError(w, http.StatusBadRequest, msgIncomplete)
		return
	case errors.Is(err, store.ErrNotFound), errors.Is(err, errStepGone), errors.Is(err, errRequestExpired):
		jsonError(w, http.StatusBadRequest, msgExpired)
		return
	case err != nil:
		i.log.ErrorContext(ctx, "beginning a passkey ceremony failed", "error", err)
		jsonError(w, http.StatusInternalServerError, msgInternal)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(options)
}

// openPending opens a sealed auth request a user may still log in for;
// on failure it returns nil and the status and message to answer.
func (i *deps) openPending(ctx context.Context, id string) (*store.AuthRequest, int, string) {
	ar, err := i.openUnfinished(ctx, id)
	switch {
	case errors.Is(err, errRequestExpired):
		return nil, http.StatusBadRequest, msgExpired
	case errors.Is(err, errStepIncomplete):
		return nil, http.StatusBadRequest, msgIncomplete
	case err != nil:
		i.log.ErrorContext(ctx, "reading an auth request failed", "error", err)
		return nil, http.StatusInternalServerError, msgInternal
	}
	return ar, 0, ""
}

// beginPasswordless starts a passkey login for ar in the browser whose
// CSRF token is csrf, bound to that browser and counted by ceremonyQuota.
func (i *passkeyStep) beginPasswordless(ctx context.Context, r *http.Request, ar *store.AuthRequest, csrf string) (any, error) {
	options, session, err := i.passkeys.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, err
	}
	return options, i.ceremonies().Put(ctx, ar, passkey.CeremonyBrowser(csrf), session, i.ceremonyQuota(r))
}

// ceremonyQuota is what a passwordless ceremony begun by r counts against.
// A browser that logged in before (knownAccountOf) draws on the known
// browsers' pool, up to maxCeremoniesPerKnownAccount per account; no flood
// of other browsers can reach that pool, however many addresses it comes
// from. Any other browser draws on the unknown browsers' pool, up to
// maxCeremoniesPerAddress per client address (clientaddr.Key: IPv6 per
// /64, behind trusted proxies the forwarded client). That pool can still
// be filled, by 625 addresses each keeping 16 ceremonies (about 33 begins
// a second, each with an authorize request); new browsers are then
// refused until the flood stops and its ceremonies expire, known browsers
// are not.
func (i *passkeyStep) ceremonyQuota(r *http.Request) store.CeremonyQuota {
	if tag, ok := i.guard.KnownAccountOf(r); ok {
		return store.CeremonyQuota{Pool: passkey.PoolKnown, PoolLimit: maxPasskeyCeremonies,
			Holder: "account:" + tag, HolderLimit: maxCeremoniesPerKnownAccount}
	}
	return store.CeremonyQuota{Pool: passkey.PoolUnknown, PoolLimit: maxPasskeyCeremonies,
		Holder: "addr:" + clientaddr.Label(clientaddr.Key(i.cfg.Clients.FromRequest(r))), HolderLimit: maxCeremoniesPerAddress}
}

// finishPasskey takes the browser's answer to a ceremony, posted as a
// form: the credential's JSON in the field credential.
func (i *passkeyStep) finishPasskey(w http.ResponseWriter, r *http.Request) {
	if i.passkeys == nil {
		i.message(w, http.StatusNotFound, "Sign in", msgPasskeyUnavailable)
		return
	}
	ar, id, csrf, ok := i.passkeyForm(w, r)
	if !ok {
		return
	}
	form := r.PostForm
	switch form.Get("mode") {
	case kindPasswordless:
		i.finishPasswordless(w, r, ar, id, csrf, form.Get("credential"))
	default:
		i.message(w, http.StatusBadRequest, "Sign in", msgIncomplete)
	}
}

// passkeyFailure records a refused passkey: the audit event (a reason
// category, never the credential) and the log line.
func (i *deps) passkeyFailure(ctx context.Context, reason string, user *store.User, clientID string) error {
	e := audit.Event{Type: audit.PasskeyFailed, Outcome: audit.Failure, ClientID: clientID, Reason: reason}
	if user != nil {
		e.Subject, e.Username = user.ID, user.Username
	}
	return i.events.Refusal(ctx, e)
}

// passwordlessLogin runs a passkey assertion as a login attempt: it takes
// its place in the login counters (of the client address: the account is
// unknown until the passkey is checked), is checked, and on success
// completes the login. fail writes the page of a refusal.
func (i *passkeyStep) passwordlessLogin(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, id, credential, csrf string,
	fail func(status int, msg string)) {
	ctx := r.Context()
	att := i.guard.NewAttempt(r, "", clientaddr.Label(clientaddr.Key(i.cfg.Clients.FromRequest(r))))
	done, ok := i.guard.Enter(att)
	if !ok {
		if i.recordLoginFailure(ctx, loginFailure{reason: reasonRateLimited, clientID: ar.ClientID, counter: attempts.CounterKind(att.Counters[0].Key)}) != nil {
			fail(http.StatusInternalServerError, msgInternal)
			return
		}
		w.Header().Set("Retry-After", "1")
		fail(http.StatusTooManyRequests, fmt.Sprintf(msgTooManyAttempts, time.Second))
		return
	}
	defer done()
	res, err := i.guard.Reserve(ctx, att)
	if err != nil {
		i.log.ErrorContext(ctx, "counting a login attempt failed", "error", err)
		fail(http.StatusInternalServerError, msgInternal)
		return
	}
	if !res.OK {
		i.logRefusal(ctx, att, res)
		if i.recordLoginFailure(ctx, loginFailure{reason: reasonLocked, clientID: ar.ClientID, counter: attempts.CounterKind(res.Full)}) != nil {
			fail(http.StatusInternalServerError, msgInternal)
			return
		}
		fail(http.StatusTooManyRequests, fmt.Sprintf(msgTooManyAttempts, i.retryAfter(w, res.RetryAt)))
		return
	}
	// Another browser's answer finds no ceremony: it is refused as
	// expired, and the ceremony stays for the browser that began it.
	var session *webauthn.SessionData
	switch st, err := i.ceremonies().Take(ctx, ar, passkey.CeremonyBrowser(csrf)); {
	case err == nil:
		session = st
	case !errors.Is(err, store.ErrNotFound):
		i.log.ErrorContext(ctx, "reading a passkey ceremony failed", "error", err)
		fail(http.StatusInternalServerError, msgInternal)
		return
	}
	user, pk, uv, err := i.verifier().Verify(ctx, session, nil, credential)
	var refused *passkey.Refusal
	if errors.As(err, &refused) {
		if i.passkeyFailure(ctx, refused.Reason, refused.User, ar.ClientID) != nil {
			fail(http.StatusInternalServerError, msgInternal)
			return
		}
		msg := msgPasskeyRefused
		if refused.Reason == "expired" {
			msg = msgPasskeyExpired
		}
		if res.Remaining == 0 {
			if i.recordLockout(ctx, refused.User, ar.ClientID, res) != nil {
				fail(http.StatusInternalServerError, msgInternal)
				return
			}
			msg += " " + fmt.Sprintf(msgTooManyAttempts, i.retryAfter(w, res.RetryAt))
		}
		fail(http.StatusUnauthorized, msg)
		return
	}
	if err != nil {
		i.events.Failed(ctx, audit.Event{Type: events.LoginErrored, ClientID: ar.ClientID, Reason: "passkey"}, err)
		fail(http.StatusInternalServerError, msgInternal)
		return
	}
	amr := passwordlessAMR(pk, uv)
	if err := i.events.Record(ctx, audit.Event{Type: audit.PasskeyUsed, Subject: user.ID, Username: user.Username, ClientID: ar.ClientID,
		Reason: kindPasswordless, Target: pk.Name}); err != nil {
		fail(http.StatusInternalServerError, msgInternal)
		return
	}
	if err := i.events.Record(ctx, audit.Event{Type: audit.LoginSucceeded, Subject: user.ID, Username: user.Username, ClientID: ar.ClientID,
		Reason: "passkey"}); err != nil {
		fail(http.StatusInternalServerError, msgInternal)
		return
	}
	att.Account = user.Username
	i.next(w, r, &loginFlow{id: id, ar: ar, csrf: csrf, user: user, amr: amr, att: &att})
}

// finishPasswordless completes a login with a discoverable passkey alone.
func (i *passkeyStep) finishPasswordless(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, id, csrf, credential string) {
	page := i.newLoginPage(r.Context(), id, csrf, ar)
	i.passwordlessLogin(w, r, ar, id, credential, csrf, func(status int, msg string) {
		page.Error = msg
		i.render(w, status, "login.html", page, web.Origin(ar.RedirectURI))
	})
}

// verifier checks passkey assertions with the issuer's relying party.
func (i *deps) verifier() *passkey.Verifier { return &passkey.Verifier{RP: i.passkeys, Store: i.st} }

// ceremonies keeps passwordless ceremonies in the issuer's store.
func (i *deps) ceremonies() *passkey.Ceremonies {
	return &passkey.Ceremonies{Store: i.st, Now: i.cfg.Now, Kind: kindPasswordless}
}
