package events

// Login outcomes told to [Observer.Login]: a small fixed set, fit for a
// metric label.
const (
	LoginSucceeded        = "success"
	LoginWrongCredentials = "wrong_credentials"
	LoginLockedOut        = "locked_out" // refused by the attempt limits
	LoginBusy             = "busy"       // password checks at capacity
	LoginError            = "error"      // the store or a check failed
)

// Replays told to [Observer.Replay].
const (
	ReplayRefreshToken = "refresh_token"
	ReplayCode         = "authorization_code"
	ReplayDeviceCode   = "device_code"
)

// Observer is told of the provider's security events, for metrics, by a
// [Recorder] that derives them from the events it records. Its methods
// are called on the request's goroutine and must be fast and safe for
// concurrent use. Nil fields are not called.
type Observer struct {
	// Login is told the outcome of each password login (one of the
	// Login* constants).
	Login func(outcome string)
	// Lockout is told when a failed login used the last attempt its
	// limits allowed: the account or address is locked out from now on.
	Lockout func()
	// Replay is told when a one-time credential is presented again (one
	// of the Replay* constants) and what it produced was revoked:
	// refresh-token reuse, a replayed code.
	Replay func(kind string)
}

func (o *Observer) login(outcome string) {
	if o != nil && o.Login != nil {
		o.Login(outcome)
	}
}

func (o *Observer) lockout() {
	if o != nil && o.Lockout != nil {
		o.Lockout()
	}
}

func (o *Observer) replay(kind string) {
	if o != nil && o.Replay != nil {
		o.Replay(kind)
	}
}
