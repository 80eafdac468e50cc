// Package audit is nsauth's audit trail: one typed [Event] for each thing
// an operator may have to account for (logins, codes, refresh tokens,
// logouts and revocations, device approvals, machine grants, the changes
// made with nsauth users, clients, apps, sessions and federation, browser
// sessions and consents, back-channel logouts, signing-key rotation),
// and a [Recorder] that writes them to the store and, optionally, to a
// JSON-lines stream for log shippers.
//
// No secret is ever recorded. An event that concerns a token, a code or a
// client secret carries a keyed HMAC of it ([Recorder.Ref]) under
// [Refs]: the key is an instance secret kept sealed like the others
// ([KeyName]), and `nsauth audit hash` computes the same HMAC for a value
// an operator holds, so its events can be found without the trail holding
// anything that can be replayed.
//
// The package is a leaf: it imports nothing of nsauth's, so every layer
// (the store, the issuer, the RPC handlers, the commands) can use it.
package audit

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Type is the kind of an event. Its text is stable: it is stored, streamed
// and filtered on.
type Type string

// The event types.
const (
	// LoginSucceeded: a password was accepted on the login page.
	LoginSucceeded Type = "login.succeeded"
	// LoginFailed: a login was refused; Reason says why (a category such
	// as "bad_credentials", never the password).
	LoginFailed Type = "login.failed"
	// LoginLockedOut: a failed-login limit was reached, and the account,
	// browser or address is kept out for a while.
	LoginLockedOut Type = "login.locked_out"
	// SecondFactorSucceeded: a second factor was accepted after the
	// password; Reason is the method ("totp", "recovery_code").
	SecondFactorSucceeded Type = "login.second_factor_succeeded"
	// SecondFactorFailed: a second factor was refused; Reason says why (a
	// category such as "wrong_code" or "replayed", never the code).
	SecondFactorFailed Type = "login.second_factor_failed"
	// SecondFactorEnrolled: a user enrolled a second factor; Reason is
	// the method ("totp"), Actor who ran nsauth users when it was not the
	// user at the login page.
	SecondFactorEnrolled Type = "mfa.enrolled"
	// SecondFactorReset: nsauth users removed second factors of an account;
	// Reason is the action ("mfa_reset", "totp_removed"), Actor who ran it.
	SecondFactorReset Type = "mfa.reset"
	// CodeIssued: an authorization code was issued after a login.
	CodeIssued Type = "code.issued"
	// CodeExchanged: a code was exchanged for tokens.
	CodeExchanged Type = "code.exchanged"
	// CodeReplayed: a used code was presented again, and what it produced
	// was revoked.
	CodeReplayed Type = "code.replayed"
	// RefreshRotated: a refresh token was used and replaced.
	RefreshRotated Type = "refresh.rotated"
	// RefreshReuseDetected: a rotated refresh token was presented again
	// outside its grace, and its whole family was revoked.
	RefreshReuseDetected Type = "refresh.reuse_detected"
	// Logout: a session ended at the end-session endpoint.
	Logout Type = "session.logout"
	// TokenRevoked: a token was revoked (the revocation endpoint or RPC).
	TokenRevoked Type = "token.revoked"
	// DeviceApproved: a user approved a device authorization.
	DeviceApproved Type = "device.approved"
	// DeviceDenied: a user denied a device authorization.
	DeviceDenied Type = "device.denied"
	// DeviceCodeRefused: a user code entered on the device page was
	// refused; Reason says why ("wrong_code", "locked", "rate_limited",
	// "csrf"), never the code.
	DeviceCodeRefused Type = "device.code_refused"
	// ClientAuthFailed: a client did not authenticate at the token,
	// revocation or introspection endpoint; Reason is "unknown_client" or
	// "bad_secret", and ClientID names the client only when one exists by
	// that id. Machine clients' client-credentials requests are
	// ClientCredentialsGrant events.
	ClientAuthFailed Type = "client.auth_failed"
	// ClientCredentialsGrant: a machine client asked for a token with the
	// client-credentials grant (Outcome says whether it got one).
	ClientCredentialsGrant Type = "grant.client_credentials"
	// TokenExchangeGrant: a workload exchanged a federated ID token.
	TokenExchangeGrant Type = "grant.token_exchange"
	// UserChanged: nsauth users changed an account; Reason is the action
	// ("added", "password_changed", "disabled", "enabled", "deleted",
	// "unlocked") and Actor the operating-system user who ran it.
	UserChanged Type = "admin.user"
	// ClientChanged: nsauth clients changed a machine client; Reason is
	// the action, Actor who ran it.
	ClientChanged Type = "admin.client"
	// FederationChanged: nsauth federation changed a policy; Reason is the
	// action, Actor who ran it, Target the policy.
	FederationChanged Type = "admin.federation"
	// GroupChanged: an administrator changed a group nsauth keeps; Target
	// is the group, Actor who, Reason the action: "added", "deleted", or
	// for one user's membership (Subject, Username) "member_added",
	// "member_removed".
	GroupChanged Type = "admin.group"
	// SigningKeyRotated: a new signing key was introduced.
	SigningKeyRotated Type = "key.rotated"
	// PasskeyRegistered: a user registered a passkey after logging in;
	// Target is its name.
	PasskeyRegistered Type = "passkey.registered"
	// PasskeyRemoved: nsauth users passkeys --remove deleted a passkey;
	// Target is its name, Actor who ran it.
	PasskeyRemoved Type = "passkey.removed"
	// EnrolLinkUsed: a user opened their enrolment link and gave their
	// password, which allows them to add a second factor (the factor
	// itself is mfa.enrolled). Links are made and revoked by admin.user
	// events (Reason "enrol_link_created", "enrol_link_revoked").
	EnrolLinkUsed Type = "mfa.enrol_link_used"
	// PasskeyUsed: a passkey logged a user in (Reason "second_factor" or
	// "passwordless"); Target is its name.
	PasskeyUsed Type = "passkey.used"
	// PasskeyFailed: a passkey ceremony was refused; Reason says why
	// ("unknown_credential", "bad_assertion", "disabled", "expired",
	// "clone_warning"...), never the credential.
	PasskeyFailed Type = "passkey.failed"
	// RefusalsDropped: refusals that found no place among a minute's
	// aggregated rows ([Config.RefusalRowsPerMinute]) and are counted here
	// instead: one row per minute, refused type (Target) and Reason, whose
	// Count says how many.
	RefusalsDropped Type = "audit.refusals_dropped"
)

// Apps, browser sessions, consents and back-channel logout (issue 24).
const (
	// AppAdded: nsauth apps add registered an app; ClientID is the app,
	// Actor who ran it.
	AppAdded Type = "app.added"
	// AppUpdated: nsauth apps update changed an app's settings.
	AppUpdated Type = "app.updated"
	// AppSecretRotated: nsauth apps rotate-secret replaced an app's secret
	// (and revoked its tokens).
	AppSecretRotated Type = "app.secret_rotated"
	// AppDisabled: nsauth apps disable disabled an app (and revoked its
	// tokens).
	AppDisabled Type = "app.disabled"
	// AppEnabled: nsauth apps enable enabled a disabled app.
	AppEnabled Type = "app.enabled"
	// AppDeleted: nsauth apps delete deleted an app (and revoked its
	// tokens).
	AppDeleted Type = "app.deleted"
	// SessionStarted: a login started a browser session; Subject is the
	// user, Target the session id.
	SessionStarted Type = "session.started"
	// SessionEnded: a browser session ended at the end-session endpoint
	// (Target is the session id, ClientID the app that signed out), or
	// because a login in its browser replaced it (Reason "replaced",
	// Subject and Username its user, Target the session id).
	SessionEnded Type = "session.ended"
	// SessionRevoked: nsauth sessions revoke ended a browser session;
	// Target is the session id, Actor who ran it.
	SessionRevoked Type = "session.revoked"
	// ConsentGranted: a user allowed a third-party app the scopes on the
	// consent page.
	ConsentGranted Type = "consent.granted"
	// ConsentRevoked: nsauth apps consents revoke forgot what a user
	// allowed an app; Actor is who ran it.
	ConsentRevoked Type = "consent.revoked"
	// BackchannelSent: an app's back-channel logout URI accepted a logout
	// token (never recorded: the token).
	BackchannelSent Type = "backchannel.sent"
	// BackchannelFailed: an app's back-channel logout URI did not accept
	// a logout token after every try; Reason says why ("timeout",
	// "status", "unreachable"...).
	BackchannelFailed Type = "backchannel.failed"
)

// Connectors and the identities bound through them (issue 28).
const (
	// ConnectorAdded: nsauth connectors add added a connector; Target is
	// its name, Reason its type, Actor who ran it. Never its secret.
	ConnectorAdded Type = "connector.added"
	// ConnectorUpdated: nsauth connectors update changed a connector's
	// settings (Reason "secret_replaced" when its secret was among them).
	ConnectorUpdated Type = "connector.updated"
	// ConnectorDisabled: nsauth connectors disable disabled a connector.
	ConnectorDisabled Type = "connector.disabled"
	// ConnectorEnabled: nsauth connectors enable enabled a connector.
	ConnectorEnabled Type = "connector.enabled"
	// ConnectorDeleted: nsauth connectors delete deleted a connector and
	// the identities bound through it.
	ConnectorDeleted Type = "connector.deleted"
	// UserLinked: an nsauth user was bound to an upstream identity;
	// Subject and Username are the user, Target the connector.
	UserLinked Type = "user.linked"
	// UserUnlinked: an nsauth user's binding to a connector's identity was
	// removed; Target is the connector.
	UserUnlinked Type = "user.unlinked"
)

// One-time links: invite and password reset (issue 25). Target is the
// link's reference (its id), never its secret.
const (
	// LinkCreated: an administrator made a one-time link for a user
	// (Reason "invite" or "reset"); Actor is who.
	LinkCreated Type = "link.created"
	// LinkRevoked: a one-time link was revoked: by an administrator, or
	// replaced by a newer one of the same user (Reason "replaced").
	LinkRevoked Type = "link.revoked"
	// LinkUsed: a user set their password with a one-time link, which is
	// used up.
	LinkUsed Type = "link.used"
	// LinkExpired: an expired one-time link was opened, and deleted.
	LinkExpired Type = "link.expired"
)

// Types lists every event type, in the order of the documentation.
func Types() []Type {
	return []Type{
		LoginSucceeded, LoginFailed, LoginLockedOut,
		SecondFactorSucceeded, SecondFactorFailed, SecondFactorEnrolled, SecondFactorReset, EnrolLinkUsed,
		CodeIssued, CodeExchanged, CodeReplayed,
		RefreshRotated, RefreshReuseDetected,
		Logout, TokenRevoked,
		DeviceApproved, DeviceDenied, DeviceCodeRefused,
		ClientAuthFailed, ClientCredentialsGrant, TokenExchangeGrant,
		UserChanged, ClientChanged, FederationChanged, GroupChanged,
		SigningKeyRotated,
		PasskeyRegistered, PasskeyRemoved, PasskeyUsed, PasskeyFailed,
		RefusalsDropped,
		AppAdded, AppUpdated, AppSecretRotated, AppDisabled, AppEnabled, AppDeleted,
		SessionStarted, SessionEnded, SessionRevoked,
		ConsentGranted, ConsentRevoked,
		BackchannelSent, BackchannelFailed,
		ConnectorAdded, ConnectorUpdated, ConnectorDisabled, ConnectorEnabled, ConnectorDeleted,
		UserLinked, UserUnlinked,
		LinkCreated, LinkRevoked, LinkUsed, LinkExpired,
	}
}

// Valid reports whether t is one of [Types].
func (t Type) Valid() bool {
	for _, k := range Types() {
		if k == t {
			return true
		}
	}
	return false
}

// Outcome says whether what the event records succeeded.
type Outcome string

// The outcomes.
const (
	Success Outcome = "success"
	Failure Outcome = "failure"
)

// Ref names under [Event.Refs]: the keyed HMAC ([Recorder.Ref]) of the
// secret the event concerns.
const (
	RefToken   = "token_hmac"   // an access token
	RefRefresh = "refresh_hmac" // a refresh token
	RefCode    = "code_hmac"    // an authorization code
	RefDevice  = "device_hmac"  // a device code
	RefGrant   = "grant_hmac"   // a grant (session) id
)

// Event is one audit record. Fields left empty are filled or omitted: the
// Recorder sets Time, Replica and TraceID when they are zero.
type Event struct {
	// ID is the store's sequence number; zero until stored, and absent
	// from the stream.
	ID int64 `json:"id,omitempty"`
	// Time is when it happened, in UTC, to the millisecond.
	Time time.Time `json:"time"`
	// Type is the kind of event. Required.
	Type Type `json:"type"`
	// Outcome is Success or Failure; empty means Success.
	Outcome Outcome `json:"outcome"`
	// Subject is the user's stable id (the tokens' sub), or a machine
	// client's.
	Subject string `json:"subject,omitempty"`
	// Username is the account name, when known.
	Username string `json:"username,omitempty"`
	// ClientID is the OAuth client.
	ClientID string `json:"client_id,omitempty"`
	// ClientAddr is the client address (package clientaddr's rule).
	ClientAddr string `json:"client_addr,omitempty"`
	// UserAgent is the request's User-Agent, truncated.
	UserAgent string `json:"user_agent,omitempty"`
	// TraceID is the OpenTelemetry trace id of the request, when traced.
	TraceID string `json:"trace_id,omitempty"`
	// Replica names the process that recorded it (Config.Replica).
	Replica string `json:"replica,omitempty"`
	// Reason is a category from a fixed vocabulary ("bad_credentials",
	// "locked", "disabled", "added", ...): never text from the network.
	// A reason that is not of the form of one (lowercase letters, digits,
	// "_.-", at most 64) is recorded as "unlisted".
	Reason string `json:"reason,omitempty"`
	// Actor is the operating-system user who ran an administrative
	// command ([OSUser]).
	Actor string `json:"actor,omitempty"`
	// Target names what an administrative command changed when no other
	// field does (a federation policy).
	Target string `json:"target,omitempty"`
	// Refs holds keyed HMACs of the secrets the event concerns, by the
	// Ref* names. Never a secret itself: build values with Recorder.Ref.
	Refs map[string]string `json:"refs,omitempty"`
	// Count is set on an aggregated row ([Recorder.RecordRefusal]): how
	// many refusals it stands for. Its Time is the start of its minute,
	// and it has no UserAgent, TraceID or Replica. Zero (and absent from
	// JSON) on a row that is one event.
	Count int64 `json:"count,omitempty"`
}

// Field limits: what exceeds them is cut, so that a hostile header cannot
// make records large.
const (
	maxUserAgent = 256
	maxField     = 200
)

// normalize bounds the event's fields and defaults its outcome.
func (e *Event) normalize() {
	if e.Outcome == "" {
		e.Outcome = Success
	}
	if !isCategory(e.Reason) {
		e.Reason = "unlisted"
	}
	e.UserAgent = truncate(e.UserAgent, maxUserAgent)
	for _, f := range []*string{&e.Subject, &e.Username, &e.ClientID, &e.ClientAddr, &e.TraceID, &e.Replica, &e.Reason, &e.Actor, &e.Target} {
		*f = truncate(*f, maxField)
	}
}

// truncate cuts s to at most n bytes at a rune boundary, and replaces
// control characters, so one record stays one line wherever it is shown.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	if strings.ContainsFunc(s, isControl) {
		s = strings.Map(func(r rune) rune {
			if isControl(r) {
				return '?'
			}
			return r
		}, s)
	}
	return s
}

// isCategory reports whether a reason has the form of a category: up to
// 64 lowercase letters, digits and "_.-". Anything else (free text, which
// might come from the network) is recorded as "unlisted".
func isCategory(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
