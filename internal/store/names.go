package store

import (
	"github.com/nsauth/nsauth/internal/store/accountlinks"
	"github.com/nsauth/nsauth/internal/store/attempts"
	"github.com/nsauth/nsauth/internal/store/auditlog"
	"github.com/nsauth/nsauth/internal/store/authrequests"
	"github.com/nsauth/nsauth/internal/store/clients"
	"github.com/nsauth/nsauth/internal/store/connectors"
	"github.com/nsauth/nsauth/internal/store/consents"
	"github.com/nsauth/nsauth/internal/store/devices"
	"github.com/nsauth/nsauth/internal/store/groups"
	"github.com/nsauth/nsauth/internal/store/passkeys"
	"github.com/nsauth/nsauth/internal/store/revocations"
	"github.com/nsauth/nsauth/internal/store/secondfactors"
	"github.com/nsauth/nsauth/internal/store/secrets"
	"github.com/nsauth/nsauth/internal/store/sessions"
	"github.com/nsauth/nsauth/internal/store/signingkeys"
	"github.com/nsauth/nsauth/internal/store/tokens"
	"github.com/nsauth/nsauth/internal/store/users"
)

// The names below are the sub-stores' own, kept here under the names
// package store has always given them, so that callers need not know
// which sub-store holds what.

// Users (package users).
type (
	// User is [users.User].
	User = users.User
)

// MaxUsernameLen bounds usernames.
const MaxUsernameLen = users.MaxUsernameLen

// NormalizeUsername is [users.NormalizeUsername].
func NormalizeUsername(name string) (string, error) { return users.NormalizeUsername(name) }

// Clients and federation policies (package clients).
type (
	// Client is [clients.Client].
	Client = clients.Client
	// MachineClient is [clients.MachineClient].
	MachineClient = clients.MachineClient
	// FederationPolicy is [clients.FederationPolicy].
	FederationPolicy = clients.FederationPolicy
)

const (
	// MachineClientIDPrefix starts every machine client's id.
	MachineClientIDPrefix = clients.MachineClientIDPrefix
	// MaxClientNameLen bounds machine client names.
	MaxClientNameLen = clients.MaxClientNameLen
)

// NewMachineClientID is [clients.NewMachineClientID].
func NewMachineClientID() string { return clients.NewMachineClientID() }

// NewMachineClientSecret is [clients.NewMachineClientSecret].
func NewMachineClientSecret() string { return clients.NewMachineClientSecret() }

// NormalizeClientName is [clients.NormalizeClientName].
func NormalizeClientName(name string) (string, error) { return clients.NormalizeClientName(name) }

// Authorization requests and codes (package authrequests).
type (
	// AuthRequest is [authrequests.AuthRequest].
	AuthRequest = authrequests.AuthRequest
)

// Tokens (package tokens).
type (
	// Grant is [tokens.Grant].
	Grant = tokens.Grant
	// RefreshToken is [tokens.RefreshToken].
	RefreshToken = tokens.RefreshToken
	// ExpiredError is [tokens.ExpiredError].
	ExpiredError = tokens.ExpiredError
	// AccessToken is [tokens.AccessToken].
	AccessToken = tokens.AccessToken
	// Grace is [tokens.Grace].
	Grace = tokens.Grace
	// Rotation is [tokens.Rotation].
	Rotation = tokens.Rotation
	// Rotated is [tokens.Rotated].
	Rotated = tokens.Rotated
)

// Revocations (package revocations).
type (
	// Revocation is [revocations.Revocation].
	Revocation = revocations.Revocation
	// FollowConfig is [revocations.FollowConfig].
	FollowConfig = revocations.FollowConfig
)

// Defaults for [FollowConfig].
const (
	// DefaultResyncInterval is [revocations.DefaultResyncInterval].
	DefaultResyncInterval = revocations.DefaultResyncInterval
	// DefaultPollInterval is [revocations.DefaultPollInterval].
	DefaultPollInterval = revocations.DefaultPollInterval
	// RevocationRetention is [revocations.Retention].
	RevocationRetention = revocations.Retention
)

// Device authorizations (package devices).
type (
	// DeviceAuthorization is [devices.DeviceAuthorization].
	DeviceAuthorization = devices.DeviceAuthorization
	// DevicePoll is [devices.DevicePoll].
	DevicePoll = devices.DevicePoll
)

// States of a device authorization.
const (
	// DevicePending waits for the user to enter the code and decide.
	DevicePending = devices.DevicePending
	// DeviceApproved was approved by the user; tokens may be issued once.
	DeviceApproved = devices.DeviceApproved
	// DeviceDenied was refused by the user; it ends the login.
	DeviceDenied = devices.DeviceDenied
)

// Passkeys (package passkeys).
type (
	// Passkey is [passkeys.Passkey].
	Passkey = passkeys.Passkey
	// PasskeyCeremony is [passkeys.PasskeyCeremony].
	PasskeyCeremony = passkeys.PasskeyCeremony
	// CeremonyQuota is [passkeys.CeremonyQuota].
	CeremonyQuota = passkeys.CeremonyQuota
)

// Limits on passkeys.
const (
	// MaxPasskeyNameLen bounds a passkey's name.
	MaxPasskeyNameLen = passkeys.MaxPasskeyNameLen
	// MaxPasskeysPerUser bounds how many passkeys one user may register.
	MaxPasskeysPerUser = passkeys.MaxPasskeysPerUser
	// MaxPasskeyCeremonySession bounds a ceremony's stored session data.
	MaxPasskeyCeremonySession = passkeys.MaxPasskeyCeremonySession
)

// Refusals of passkey registrations and ceremonies.
var (
	// ErrTooManyPasskeys means the user already has MaxPasskeysPerUser.
	ErrTooManyPasskeys = passkeys.ErrTooManyPasskeys
	// ErrCeremoniesFull means the pool holds as many ceremonies as allowed.
	ErrCeremoniesFull = passkeys.ErrCeremoniesFull
	// ErrCeremonyHolderFull means the holder holds as many ceremonies as
	// allowed.
	ErrCeremonyHolderFull = passkeys.ErrCeremonyHolderFull
)

// CheckPasskeyName is [passkeys.CheckPasskeyName].
func CheckPasskeyName(name string) error { return passkeys.CheckPasskeyName(name) }

// Second factors, pending logins and enrolment links (package
// secondfactors).
type (
	// SecondFactors is [secondfactors.SecondFactors].
	SecondFactors = secondfactors.SecondFactors
	// PendingMFA is [secondfactors.PendingMFA].
	PendingMFA = secondfactors.PendingMFA
)

// Kinds of [PendingMFA].
const (
	// PendingVerify waits for a second factor the user has.
	PendingVerify = secondfactors.PendingVerify
	// PendingEnroll waits for the user to enrol a second factor.
	PendingEnroll = secondfactors.PendingEnroll
	// PendingEnrolled waits for the user who just enrolled to go on.
	PendingEnrolled = secondfactors.PendingEnrolled
	// PendingOffer waits for the user's answer to the offer of a passkey.
	PendingOffer = secondfactors.PendingOffer
)

// Steps a [PendingMFA] records as done.
const (
	// StepEnrolLink: the flow began with an enrolment link.
	StepEnrolLink = secondfactors.StepEnrolLink
	// StepOffered: the offer of a passkey was answered.
	StepOffered = secondfactors.StepOffered
	// StepEnrolled: the user set up a factor in this flow.
	StepEnrolled = secondfactors.StepEnrolled
)

const (
	// MaxPendingMFAPerUser bounds the waiting logins kept per user.
	MaxPendingMFAPerUser = secondfactors.MaxPendingMFAPerUser
	// MaxEnrolLinkTTL bounds how long an enrolment link may stay valid.
	MaxEnrolLinkTTL = secondfactors.MaxEnrolLinkTTL
)

// Login attempts (package attempts).
type (
	// AttemptCounter is [attempts.AttemptCounter].
	AttemptCounter = attempts.AttemptCounter
	// Reservation is [attempts.Reservation].
	Reservation = attempts.Reservation
	// Unlocked is [attempts.Unlocked].
	Unlocked = attempts.Unlocked
)

// Audit trail (package auditlog).
type (
	// AuditFilter is [auditlog.AuditFilter].
	AuditFilter = auditlog.AuditFilter
)

// Signing keys (package signingkeys).
type (
	// SigningKey is [signingkeys.SigningKey].
	SigningKey = signingkeys.SigningKey
	// KeyChange is [signingkeys.KeyChange].
	KeyChange = signingkeys.KeyChange
)

// Secrets and key holders (package secrets).
type (
	// SecretCounts is [secrets.SecretCounts].
	SecretCounts = secrets.SecretCounts
	// KeyHolder is [secrets.KeyHolder].
	KeyHolder = secrets.KeyHolder
)

// Browser sessions and consents (issue 24).
type (
	// Session is [sessions.Session].
	Session = sessions.Session
	// SessionGrant is [sessions.Grant].
	SessionGrant = sessions.Grant
	// Consent is [consents.Consent].
	Consent = consents.Consent
)

// DeviceCodeGrantType is [clients.DeviceCodeGrantType].
const DeviceCodeGrantType = clients.DeviceCodeGrantType

// DefaultAppGrantTypes is [clients.DefaultAppGrantTypes].
var DefaultAppGrantTypes = clients.DefaultAppGrantTypes

// BrokerGrantTypes is [clients.BrokerGrantTypes].
var BrokerGrantTypes = clients.BrokerGrantTypes

// Connectors (issue 28).
type (
	// Connector is [connectors.Connector].
	Connector = connectors.Connector
	// Identity is [connectors.Identity].
	Identity = connectors.Identity
	// PendingLogin is [connectors.Pending].
	PendingLogin = connectors.Pending
)

// Connector types ([connectors.TypeOIDC] and the others).
const (
	ConnectorOIDC   = connectors.TypeOIDC
	ConnectorGitHub = connectors.TypeGitHub
	ConnectorLDAP   = connectors.TypeLDAP
)

// Groups (issue 25, package groups).
type (
	// Group is [groups.Group].
	Group = groups.Group
)

// AdminGroup is [users.AdminGroup]: the nsauth group whose members may use
// the admin API, which the first-start administrator is made a member of.
const AdminGroup = users.AdminGroup

// NormalizeGroupName is [groups.NormalizeGroupName].
func NormalizeGroupName(name string) (string, error) { return groups.NormalizeGroupName(name) }

// One-time account links (issue 25, package accountlinks).
type (
	// Link is [accountlinks.Link].
	Link = accountlinks.Link
	// AppUse is [sessions.AppUse].
	AppUse = sessions.AppUse
)

const (
	// LinkInvite is [accountlinks.PurposeInvite].
	LinkInvite = accountlinks.PurposeInvite
	// LinkReset is [accountlinks.PurposeReset].
	LinkReset = accountlinks.PurposeReset
	// MaxLinkTTL bounds how long an account link may stay valid.
	MaxLinkTTL = accountlinks.MaxLinkTTL
)
