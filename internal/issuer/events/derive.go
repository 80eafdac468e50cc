package events

import (
	"log/slog"

	"github.com/nsauth/nsauth/internal/audit"
)

// derived is what an event is counted and logged as.
type derived struct {
	login   string // an outcome told to Observer.Login, or none
	lockout bool   // told to Observer.Lockout
	replay  string // a kind told to Observer.Replay, or none
	level   slog.Level
	msg     string // the log line; none logs nothing
}

// derive is the one mapping from an event to its metric and log line.
// Refusals log at debug: a flood of them is counted and aggregated in
// the trail, and must not flood the log too.
func derive(e audit.Event) derived {
	switch e.Type {
	case LoginCompleted:
		return derived{login: LoginSucceeded, level: slog.LevelInfo, msg: "login completed"}
	case LoginErrored:
		return derived{login: LoginError, level: slog.LevelError, msg: "checking a login failed"}
	case audit.LoginFailed:
		return derived{login: loginFailure(e.Reason), level: slog.LevelDebug, msg: "login refused"}
	case audit.SecondFactorFailed:
		return derived{login: secondFactorFailure(e.Reason), level: slog.LevelDebug, msg: "second factor refused"}
	case audit.PasskeyFailed:
		// At info, as the login page logged it before its line was
		// derived from the event.
		return derived{login: passkeyFailure(e.Reason), level: slog.LevelInfo, msg: "passkey refused"}
	case audit.PasskeyRegistered:
		return derived{level: slog.LevelInfo, msg: "passkey registered"}
	case audit.EnrolLinkUsed:
		return derived{level: slog.LevelInfo, msg: "enrolment link used"}
	case audit.SessionStarted:
		return derived{level: slog.LevelInfo, msg: "browser session started"}
	case audit.ConsentGranted:
		return derived{level: slog.LevelInfo, msg: "consent granted"}
	case audit.LoginLockedOut:
		return derived{lockout: true, level: slog.LevelWarn, msg: "locked out after too many failures"}
	case audit.CodeReplayed:
		return derived{replay: ReplayCode, level: slog.LevelWarn, msg: "authorization code replayed; revoked the tokens issued from it"}
	case audit.RefreshReuseDetected:
		return derived{replay: ReplayRefreshToken, level: slog.LevelWarn, msg: "refresh token reused; revoked its family"}
	case DeviceCodeReplayed:
		return derived{replay: ReplayDeviceCode, level: slog.LevelWarn, msg: "device code presented again after its tokens were issued; revoked them"}
	case audit.ClientAuthFailed, audit.DeviceCodeRefused:
		return derived{level: slog.LevelDebug, msg: "request refused"}
	case audit.ClientCredentialsGrant, audit.TokenExchangeGrant:
		if e.Outcome == audit.Failure {
			return derived{level: slog.LevelDebug, msg: "grant refused"}
		}
		// The token exchange's line keeps the words it had before the
		// events were derived: operators' alerts look for them.
		if e.Type == audit.TokenExchangeGrant {
			return derived{level: slog.LevelInfo, msg: "token exchanged"}
		}
		return derived{level: slog.LevelInfo, msg: "grant issued a token"}
	case audit.Logout, audit.SessionEnded:
		return derived{level: slog.LevelInfo, msg: "session ended"}
	case audit.BackchannelSent:
		return derived{level: slog.LevelInfo, msg: "back-channel logout delivered"}
	case audit.BackchannelFailed:
		return derived{level: slog.LevelWarn, msg: "back-channel logout given up"}
	case audit.SigningKeyRotated:
		// Logged once the key is stored, by the replica that added it
		// (target: its kid; reason: scheduled or first_key).
		return derived{level: slog.LevelInfo, msg: "added a signing key"}
	case audit.TokenRevoked:
		return derived{level: slog.LevelInfo, msg: "token revoked"}
	case audit.CodeExchanged:
		return derived{level: slog.LevelDebug, msg: "code exchanged"}
	case audit.RefreshRotated:
		return derived{level: slog.LevelDebug, msg: "refresh token rotated"}
	}
	return derived{level: slog.LevelDebug, msg: "event"}
}

// loginFailure is the outcome a refused first factor counts as: the
// refusals of a form that failed its origin or CSRF check proved nothing
// and count as no login.
func loginFailure(reason string) string {
	switch reason {
	case "unknown_user", "bad_password", "disabled", "wrong_credentials", "not_allowed", "user_gone", "not_linked":
		return LoginWrongCredentials
	case "locked":
		return LoginLockedOut
	case "rate_limited", "busy":
		return LoginBusy
	}
	return ""
}

// secondFactorFailure is the outcome a refused second factor counts as;
// a login stopped for want of an enrolled factor ("enrolment_needed") or
// by a forged form counts as none.
func secondFactorFailure(reason string) string {
	switch reason {
	case "wrong_code", "wrong_recovery_code", "replayed":
		return LoginWrongCredentials
	case "locked":
		return LoginLockedOut
	case "rate_limited":
		return LoginBusy
	}
	return ""
}

// passkeyFailure is the outcome a refused passkey counts as. A passkey
// refused at registration ("bad_attestation") was no login.
func passkeyFailure(reason string) string {
	switch reason {
	case "expired", "bad_assertion", "unknown_credential", "clone_warning", "disabled":
		return LoginWrongCredentials
	}
	return ""
}
