package issuer

import "github.com/nsauth/nsauth/internal/issuer/events"

// Login outcomes told to [Observer.Login]: a small fixed set, fit for a
// metric label.
const (
	LoginSucceeded        = events.LoginSucceeded
	LoginWrongCredentials = events.LoginWrongCredentials
	LoginLockedOut        = events.LoginLockedOut // refused by the attempt limits
	LoginBusy             = events.LoginBusy      // password checks at capacity
	LoginError            = events.LoginError     // the store or a check failed
)

// Replays told to [Observer.Replay].
const (
	ReplayRefreshToken = events.ReplayRefreshToken
	ReplayCode         = events.ReplayCode
	ReplayDeviceCode   = events.ReplayDeviceCode
)

// Observer is told of the provider's security events, for metrics
// (events.Observer): the issuer's events.Recorder derives them from the
// events it records. Nil fields of [Config.Observer] are not called.
type Observer events.Observer
