package issuer

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/devicepages"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// Passkeys (WebAuthn, github.com/go-webauthn/webauthn).
//
//   - The relying party id is the issuer's host name and the only origin
//     accepted is the issuer's. Browsers refuse an IP address as a relying
//     party id, so on an issuer such as http://127.0.0.1:8080 passkeys are
//     unavailable (said once at start, and the pages do not offer them):
//     use http://localhost:8080 for local use.
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
//     before (its known-browser cookie, attempts.go) draws on a pool of
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
//     login counters of attempts.go before it is checked, and a refused one
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
	// passkeyCeremonyTTL is how long a ceremony may take, at most (and no
	// longer than its auth request).
	passkeyCeremonyTTL = 5 * time.Minute
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

// newPasskeys returns the WebAuthn relying party of the issuer u, or nil
// and the reason when browsers cannot use passkeys there.
func newPasskeys(u *url.URL, origin string) (*webauthn.WebAuthn, error) {
	host := u.Hostname()
	if net.ParseIP(host) != nil {
		return nil, fmt.Errorf("the issuer's host %s is an IP address, which browsers refuse as a WebAuthn relying party id: "+
			"use a host name (http://localhost:PORT for local use)", host)
	}
	return webauthn.New(&webauthn.Config{
		RPID:                  host,
		RPDisplayName:         "nsauth",
		RPOrigins:             []string{origin},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementRequired,
			UserVerification: protocol.VerificationPreferred,
		},
	})
}

// passkeyUser is a store user as the WebAuthn library sees it. The user
// handle is the user's id: random, stable, and no personal information.
type passkeyUser struct {
	u     *store.User
	creds []webauthn.Credential
}

func (p passkeyUser) WebAuthnID() []byte   { return []byte(p.u.ID) }
func (p passkeyUser) WebAuthnName() string { return p.u.Username }
func (p passkeyUser) WebAuthnDisplayName() string {
	if p.u.Name != "" {
		return p.u.Name
	}
	return p.u.Username
}
func (p passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

func toCredential(p *store.Passkey) webauthn.Credential {
	transports := make([]protocol.AuthenticatorTransport, len(p.Transports))
	for j, t := range p.Transports {
		transports[j] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID:              p.CredentialID,
		PublicKey:       p.PublicKey,
		AttestationType: p.AttestationType,
		Transport:       transports,
		Flags: webauthn.CredentialFlags{UserPresent: true, UserVerified: p.UserVerified,
			BackupEligible: p.BackupEligible, BackupState: p.BackupState},
		Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
	}
}

// ceremonyState is what a passwordless ceremony keeps server-side.
type ceremonyState struct {
	// Session is the library's state: the challenge and what it expects.
	Session *webauthn.SessionData `json:"session,omitempty"`
}

// Ceremony pools (store.CeremonyQuota).
const (
	// poolUnknown holds the passwordless ceremonies of browsers the
	// provider does not know, counted per client address.
	poolUnknown = "unknown"
	// poolKnown holds those of browsers that logged in before, counted per
	// account.
	poolKnown = "known"
)

// putCeremony stores a passwordless ceremony for ar, bound to browser
// (ceremonyBrowser), counted against q.
func (i *Issuer) putCeremony(ctx context.Context, ar *store.AuthRequest, browser string, st ceremonyState, q store.CeremonyQuota) error {
	if st.Session != nil {
		// The store's expiry, on the injected clock, is the one that
		// counts; the library's would use the wall clock.
		st.Session.Expires = time.Time{}
	}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding a passkey ceremony: %w", err)
	}
	expires := i.cfg.Now().Add(passkeyCeremonyTTL)
	if ar.ExpiresAt.Before(expires) {
		expires = ar.ExpiresAt
	}
	return i.st.PutPasskeyCeremony(ctx, &store.PasskeyCeremony{AuthRequestID: ar.ID, Kind: kindPasswordless, Browser: browser,
		Session: data, ExpiresAt: expires}, q)
}

// takeCeremony takes ar's passwordless ceremony bound to browser; anything
// else (none, expired, another kind) is store.ErrNotFound. A ceremony
// bound to another browser is not taken: it stays as it was.
func (i *Issuer) takeCeremony(ctx context.Context, ar *store.AuthRequest, browser string) (ceremonyState, error) {
	var st ceremonyState
	c, err := i.st.TakePasskeyCeremony(ctx, ar.ID, browser)
	if err != nil {
		return st, err
	}
	if c.Kind != kindPasswordless {
		return st, fmt.Errorf("passkey ceremony of kind %s: %w", c.Kind, store.ErrNotFound)
	}
	if err := json.Unmarshal(c.Session, &st); err != nil {
		return st, fmt.Errorf("decoding a passkey ceremony: %w", err)
	}
	return st, nil
}

// passkeyMethod is the amr value of the passkey p (see the package
// comment above): "swk" for a passkey that may be synced, "hwk" otherwise.
func passkeyMethod(p *store.Passkey) string {
	if p.BackupEligible {
		return amrSoftwareKey
	}
	return amrHardwareKey
}

// amr values of passkeys (RFC 8176).
const (
	amrHardwareKey = "hwk"
	amrSoftwareKey = "swk"
	amrUser        = "user"
)

// passwordlessAMR describes a login with the passkey p alone. Passwordless
// ceremonies require user verification, so userVerified is true for every
// login that gets here; it is checked again all the same.
func passwordlessAMR(p *store.Passkey, userVerified bool) []string {
	if userVerified {
		return []string{passkeyMethod(p), amrUser, amrMFA}
	}
	return []string{passkeyMethod(p)}
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
func (i *Issuer) beginPasskey(w http.ResponseWriter, r *http.Request) {
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
		// passkeyCeremonyTTL.
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
func (i *Issuer) openPending(ctx context.Context, id string) (*store.AuthRequest, int, string) {
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
func (i *Issuer) beginPasswordless(ctx context.Context, r *http.Request, ar *store.AuthRequest, csrf string) (any, error) {
	options, session, err := i.passkeys.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, err
	}
	return options, i.putCeremony(ctx, ar, ceremonyBrowser(csrf), ceremonyState{Session: session}, i.ceremonyQuota(r))
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
func (i *Issuer) ceremonyQuota(r *http.Request) store.CeremonyQuota {
	if tag, ok := i.guard.KnownAccountOf(r); ok {
		return store.CeremonyQuota{Pool: poolKnown, PoolLimit: maxPasskeyCeremonies,
			Holder: "account:" + tag, HolderLimit: maxCeremoniesPerKnownAccount}
	}
	return store.CeremonyQuota{Pool: poolUnknown, PoolLimit: maxPasskeyCeremonies,
		Holder: "addr:" + clientaddr.Label(clientaddr.Key(i.cfg.Clients.FromRequest(r))), HolderLimit: maxCeremoniesPerAddress}
}

// ceremonyBrowser is what a passwordless ceremony is bound to: a digest of
// the CSRF token of the browser that began it, a secret of that browser's
// (an HttpOnly cookie) that the finish form carries too. The token itself
// is not stored.
func ceremonyBrowser(csrf string) string {
	sum := sha256.Sum256([]byte("nsauth passkey ceremony browser\x00" + csrf))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// finishPasskey takes the browser's answer to a ceremony, posted as a
// form: the credential's JSON in the field credential.
func (i *Issuer) finishPasskey(w http.ResponseWriter, r *http.Request) {
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
func (i *Issuer) passkeyFailure(ctx context.Context, reason string, user *store.User, clientID string) error {
	e := audit.Event{Type: audit.PasskeyFailed, Outcome: audit.Failure, ClientID: clientID, Reason: reason}
	account := "(unknown)"
	if user != nil {
		e.Subject, e.Username, account = user.ID, user.Username, user.Username
	}
	i.log.InfoContext(ctx, "passkey refused", "reason", reason, "username", account)
	return i.events.Refusal(ctx, e)
}

// passkeyRefusal is why an assertion was refused, for the audit trail.
type passkeyRefusal struct {
	reason string
	user   *store.User
}

func (p *passkeyRefusal) Error() string { return "passkey refused: " + p.reason }

// verifyAssertion checks a passkey assertion against the ceremony
// session (nil when none was begun, or it was answered). user is the
// account the ceremony is for (second factor), nil for a passwordless
// login, where the credential names the account. It returns the user and
// the passkey, updated with the counter and flags of this use; a
// *passkeyRefusal when the assertion is refused.
func (i *Issuer) verifyAssertion(ctx context.Context, session *webauthn.SessionData, user *store.User, credential string) (*store.User, *store.Passkey, bool, error) {
	if session == nil {
		return nil, nil, false, &passkeyRefusal{reason: "expired", user: user}
	}
	passwordless := user == nil
	if len(credential) == 0 {
		return nil, nil, false, &passkeyRefusal{reason: "bad_assertion", user: user}
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(credential))
	if err != nil {
		return nil, nil, false, &passkeyRefusal{reason: "bad_assertion", user: user}
	}
	var pk *store.Passkey
	var lookupErr error
	lookup := func(rawID, userHandle []byte) (webauthn.User, error) {
		p, err := i.st.PasskeyByCredentialID(ctx, rawID)
		if err != nil {
			lookupErr = err
			return nil, err
		}
		if string(userHandle) != p.UserID && len(userHandle) > 0 {
			lookupErr = store.ErrNotFound
			return nil, lookupErr
		}
		u := user
		if u == nil {
			if u, err = i.st.UserByID(ctx, p.UserID); err != nil {
				lookupErr = err
				return nil, err
			}
		} else if u.ID != p.UserID {
			lookupErr = store.ErrNotFound
			return nil, lookupErr
		}
		pk, user = p, u
		return passkeyUser{u: u, creds: []webauthn.Credential{toCredential(p)}}, nil
	}
	var cred *webauthn.Credential
	if passwordless {
		_, cred, err = i.passkeys.ValidatePasskeyLogin(lookup, *session, parsed)
	} else {
		// The ceremony allowed every passkey of the user, and the library
		// wants the user to own each of them: give it them all.
		if _, err = lookup(parsed.RawID, parsed.Response.UserHandle); err == nil {
			var all []store.Passkey
			if all, lookupErr = i.st.PasskeysByUser(ctx, user.ID); lookupErr == nil {
				creds := make([]webauthn.Credential, len(all))
				for j := range all {
					creds[j] = toCredential(&all[j])
				}
				cred, err = i.passkeys.ValidateLogin(passkeyUser{u: user, creds: creds}, *session, parsed)
			}
		}
	}
	switch {
	case lookupErr != nil && !errors.Is(lookupErr, store.ErrNotFound):
		return nil, nil, false, lookupErr
	case lookupErr != nil:
		return nil, nil, false, &passkeyRefusal{reason: "unknown_credential", user: user}
	case err != nil:
		return nil, nil, false, &passkeyRefusal{reason: "bad_assertion", user: user}
	}
	if cred.Authenticator.CloneWarning {
		// The counter went backwards: two copies of the key may be in use.
		// The passkey is marked and refused; the user still has their
		// password, and an administrator can remove it.
		if err := i.st.RecordPasskeyUse(ctx, pk.ID, pk.SignCount, pk.BackupState, true); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, nil, false, err
		}
		return nil, nil, false, &passkeyRefusal{reason: "clone_warning", user: user}
	}
	if user.Disabled() {
		return nil, nil, false, &passkeyRefusal{reason: reasonUserDisabled, user: user}
	}
	pk.SignCount, pk.BackupState = cred.Authenticator.SignCount, cred.Flags.BackupState
	if err := i.st.RecordPasskeyUse(ctx, pk.ID, pk.SignCount, pk.BackupState, false); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, false, &passkeyRefusal{reason: "unknown_credential", user: user}
		}
		return nil, nil, false, err
	}
	return user, pk, parsed.Response.AuthenticatorData.Flags.HasUserVerified(), nil
}

// passwordlessLogin runs a passkey assertion as a login attempt: it takes
// its place in the login counters (of the client address: the account is
// unknown until the passkey is checked), is checked, and on success
// completes the login. fail writes the page of a refusal.
func (i *Issuer) passwordlessLogin(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, id, credential, csrf string,
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
	switch st, err := i.takeCeremony(ctx, ar, ceremonyBrowser(csrf)); {
	case err == nil:
		session = st.Session
	case !errors.Is(err, store.ErrNotFound):
		i.log.ErrorContext(ctx, "reading a passkey ceremony failed", "error", err)
		fail(http.StatusInternalServerError, msgInternal)
		return
	}
	user, pk, uv, err := i.verifyAssertion(ctx, session, nil, credential)
	var refused *passkeyRefusal
	if errors.As(err, &refused) {
		if i.passkeyFailure(ctx, refused.reason, refused.user, ar.ClientID) != nil {
			fail(http.StatusInternalServerError, msgInternal)
			return
		}
		msg := msgPasskeyRefused
		if refused.reason == "expired" {
			msg = msgPasskeyExpired
		}
		if res.Remaining == 0 {
			if i.recordLockout(ctx, refused.user, ar.ClientID, res) != nil {
				fail(http.StatusInternalServerError, msgInternal)
				return
			}
			msg += " " + fmt.Sprintf(msgTooManyAttempts, i.retryAfter(w, res.RetryAt))
		}
		fail(http.StatusUnauthorized, msg)
		return
	}
	if err != nil {
		i.log.ErrorContext(ctx, "checking a passkey failed", "error", err)
		i.events.Note(ctx, audit.Event{Type: events.LoginErrored, ClientID: ar.ClientID, Reason: "passkey"})
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
func (i *Issuer) finishPasswordless(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, id, csrf, credential string) {
	page := loginPage{Title: "Sign in", Client: ar.ClientID, Device: devicepages.IsDeviceLogin(ar), AuthRequestID: id, CSRF: csrf, Passkeys: true}
	i.passwordlessLogin(w, r, ar, id, credential, csrf, func(status int, msg string) {
		page.Error = msg
		i.render(w, status, "login.html", page, web.Origin(ar.RedirectURI))
	})
}
