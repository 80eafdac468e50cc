package store

import (
	"context"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store/attempts"
	"github.com/nsauth/nsauth/internal/store/authrequests"
	"github.com/nsauth/nsauth/internal/store/consents"
	"github.com/nsauth/nsauth/internal/store/devices"
	"github.com/nsauth/nsauth/internal/store/passkeys"
	"github.com/nsauth/nsauth/internal/store/secondfactors"
	"github.com/nsauth/nsauth/internal/store/sessions"
	"github.com/nsauth/nsauth/internal/store/signingkeys"
	"github.com/nsauth/nsauth/internal/store/tokens"
	"github.com/nsauth/nsauth/internal/store/users"
)

// Role interfaces: the storage one flow of the provider needs, and no
// more, as a flow's handler can declare it. *Store satisfies every one;
// each is also satisfied by the one sub-store named in its comment, so a
// flow can be given that sub-store alone (s.DeviceStore, say) and a test
// a fake of a few methods. Errors are those documented on each method.

// DeviceFlowStorage is what the device authorization grant (RFC 8628)
// needs: the device endpoint, the pages where the user enters the code
// and decides, and the polls of the token endpoint. [devices.DeviceStore]
// satisfies it.
type DeviceFlowStorage interface {
	CreateDeviceAuthorization(ctx context.Context, d *DeviceAuthorization, deviceCode, userCode string) error
	PendingDeviceAuthorization(ctx context.Context, userCode string) (*DeviceAuthorization, error)
	DeviceAuthorizationByID(ctx context.Context, id string) (*DeviceAuthorization, error)
	DecideDeviceAuthorization(ctx context.Context, id string, approve bool, userID string, authTime time.Time, amr []string) (*DeviceAuthorization, error)
	PollDeviceAuthorization(ctx context.Context, deviceCode, clientID string, step, maxInterval time.Duration) (*DevicePoll, error)
}

// CodeFlowStorage is what the authorization code flow needs between the
// login and the token endpoint: the completed request, and its code.
// [authrequests.RequestStore] satisfies it.
type CodeFlowStorage interface {
	InsertCompletedAuthRequest(ctx context.Context, r *AuthRequest, userID string, amr []string, minRemaining time.Duration) error
	AuthRequestByID(ctx context.Context, id string) (*AuthRequest, error)
	DeleteAuthRequest(ctx context.Context, id string) error
	SaveCode(ctx context.Context, code, authRequestID string, expiresAt time.Time) error
	RedeemCode(ctx context.Context, code string) (*AuthRequest, error)
}

// TokenStorage is what the token, refresh, introspection, revocation and
// end-session endpoints need of token records. [tokens.TokenStore]
// satisfies it.
type TokenStorage interface {
	CreateRefreshToken(ctx context.Context, value string, g Grant, expiresAt time.Time) (string, error)
	CreateRefreshTokenWithAccess(ctx context.Context, value string, g Grant, expiresAt time.Time, at *AccessToken, e *audit.Event) (string, error)
	RefreshTokenByValue(ctx context.Context, value string) (*RefreshToken, error)
	RefreshTokenByValueWithGrace(ctx context.Context, value string, g Grace) (*RefreshToken, error)
	RotateRefreshTokenWithGrace(ctx context.Context, r Rotation) (Rotated, error)
	RevokeRefreshToken(ctx context.Context, id string) error
	RevokeGrant(ctx context.Context, grantID, userID, clientID string) (int64, error)
	RecordAccessToken(ctx context.Context, t *AccessToken) error
	ActiveAccessToken(ctx context.Context, id string) (*AccessToken, error)
	RevokeAccessToken(ctx context.Context, id string) error
}

// LoginAttemptStorage is what the password step needs to bound guessing.
// [attempts.AttemptStore] satisfies it.
type LoginAttemptStorage interface {
	ReserveLoginAttempt(ctx context.Context, counters []AttemptCounter, max int, window time.Duration) (Reservation, error)
	ReleaseLoginAttempt(ctx context.Context, c AttemptCounter) error
	LoginAttempts(ctx context.Context, key string, window time.Duration) (int, error)
	ClearLoginAttempts(ctx context.Context, key string) error
}

// UserLookup is what a flow needs to find the user it is for.
// [users.UserStore] satisfies it.
type UserLookup interface {
	UserByID(ctx context.Context, id string) (*User, error)
	UserByUsername(ctx context.Context, username string) (*User, error)
}

// SecondFactorStorage is what the second-factor step of a login needs:
// the user's factors, the login waiting between password and second
// factor, and the enrolment links that let a user add one.
// [secondfactors.FactorStore] satisfies it.
type SecondFactorStorage interface {
	SecondFactors(ctx context.Context, userID string) (SecondFactors, error)
	EnrollTOTP(ctx context.Context, userID, secret string, usedStep int64, recoveryCodes []string) error
	TOTPSecret(ctx context.Context, userID string) (secret string, lastStep int64, err error)
	UseTOTPStep(ctx context.Context, userID string, step int64) error
	UseRecoveryCode(ctx context.Context, userID, code string) error
	AddRecoveryCodesIfNone(ctx context.Context, userID string, codes []string) error
	CreatePendingMFA(ctx context.Context, p *PendingMFA, token string) error
	PendingMFA(ctx context.Context, token string) (*PendingMFA, error)
	TakePendingMFA(ctx context.Context, token string) (*PendingMFA, error)
	SetPendingCeremony(ctx context.Context, token string, session []byte) error
	TakePendingCeremony(ctx context.Context, token string) ([]byte, error)
	EnrolLinkUser(ctx context.Context, token string) (*User, error)
	TakeEnrolLink(ctx context.Context, token, userID string) error
}

// PasskeyStorage is what the passkey pages and ceremonies need.
// [passkeys.PasskeyStore] satisfies it.
type PasskeyStorage interface {
	AddPasskey(ctx context.Context, p *Passkey) error
	PasskeysByUser(ctx context.Context, userID string) ([]Passkey, error)
	PasskeyByCredentialID(ctx context.Context, credentialID []byte) (*Passkey, error)
	RecordPasskeyUse(ctx context.Context, id string, signCount uint32, backupState, cloneWarning bool) error
	PutPasskeyCeremony(ctx context.Context, c *PasskeyCeremony, q CeremonyQuota) error
	TakePasskeyCeremony(ctx context.Context, authRequestID, browser string) (*PasskeyCeremony, error)
}

// SigningKeyStorage is what the key manager needs to publish, rotate and
// retire signing keys. [signingkeys.KeyStore] satisfies it.
type SigningKeyStorage interface {
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	UpdateSigningKeys(ctx context.Context, decide func(keys []SigningKey) (KeyChange, error)) error
}

// MachineGrantStorage is what the grants a machine client uses (client
// credentials, token exchange of a federated identity) need: the client,
// the policies that trust an issuer, and the record of the token issued.
// It spans two sub-stores, so only *Store satisfies it.
type MachineGrantStorage interface {
	MachineClientByID(ctx context.Context, id string) (*MachineClient, error)
	FederationPoliciesByIssuer(ctx context.Context, issuer string) ([]FederationPolicy, error)
	RecordAccessToken(ctx context.Context, t *AccessToken) error
	RecordAccessTokenWithEvent(ctx context.Context, t *AccessToken, e *audit.Event) error
}

// SessionStorage is what browser sessions need: the login flow starts
// them and records the grants issued within them, end-session ends them.
// [sessions.SessionStore] satisfies it.
type SessionStorage interface {
	CreateSession(ctx context.Context, sess *Session, token string) error
	SessionByToken(ctx context.Context, token string, idle time.Duration) (*Session, error)
	TouchSession(ctx context.Context, id, browser string, idle time.Duration) (*Session, error)
	SessionByID(ctx context.Context, id string) (*Session, error)
	SessionOfGrant(ctx context.Context, grantID string) (*Session, error)
	AddSessionGrant(ctx context.Context, g SessionGrant) error
	SessionGrants(ctx context.Context, sessionID string) ([]SessionGrant, error)
	EndSession(ctx context.Context, id string, keep func(SessionGrant) bool) ([]SessionGrant, error)
}

// ConsentStorage is what the consent page of third-party apps needs.
// [consents.ConsentStore] satisfies it.
type ConsentStorage interface {
	ConsentedScopes(ctx context.Context, userID, clientID string) ([]string, error)
	GrantConsent(ctx context.Context, userID, clientID string, scopes []string) error
}

// Each role is satisfied by the whole store and by its own sub-store.
var (
	_ DeviceFlowStorage   = (*Store)(nil)
	_ DeviceFlowStorage   = (*devices.DeviceStore)(nil)
	_ CodeFlowStorage     = (*Store)(nil)
	_ CodeFlowStorage     = (*authrequests.RequestStore)(nil)
	_ TokenStorage        = (*Store)(nil)
	_ TokenStorage        = (*tokens.TokenStore)(nil)
	_ LoginAttemptStorage = (*Store)(nil)
	_ LoginAttemptStorage = (*attempts.AttemptStore)(nil)
	_ UserLookup          = (*Store)(nil)
	_ UserLookup          = (*users.UserStore)(nil)
	_ SecondFactorStorage = (*Store)(nil)
	_ SecondFactorStorage = (*secondfactors.FactorStore)(nil)
	_ PasskeyStorage      = (*Store)(nil)
	_ PasskeyStorage      = (*passkeys.PasskeyStore)(nil)
	_ SigningKeyStorage   = (*Store)(nil)
	_ SigningKeyStorage   = (*signingkeys.KeyStore)(nil)
	_ MachineGrantStorage = (*Store)(nil)
	_ SessionStorage      = (*Store)(nil)
	_ SessionStorage      = (*sessions.SessionStore)(nil)
	_ ConsentStorage      = (*Store)(nil)
	_ ConsentStorage      = (*consents.ConsentStore)(nil)
)
