package issuer

import (
	"context"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/store"
)

// DeviceCookieTTL is how long a device cookie proves that a browser logged
// in to an account (package attempts).
const DeviceCookieTTL = attempts.DeviceCookieTTL

// deviceKeyName is the instance value holding the device cookies' MAC key.
const deviceKeyName = "device_cookie_key"

// recordLockout records the audit.LoginLockedOut event of the attempt that
// took the last place in one of its counters (res.Full): from now until
// res.RetryAt, that account's unknown browsers, that browser or that
// address is kept out. The account is named only when user says it exists.
func (i *Issuer) recordLockout(ctx context.Context, user *store.User, clientID string, res store.Reservation) error {
	e := audit.Event{Type: audit.LoginLockedOut, Outcome: audit.Failure, ClientID: clientID,
		Reason: "too_many_failures", Target: attempts.CounterKind(res.Full)}
	if user != nil {
		e.Subject, e.Username = user.ID, user.Username
	}
	return i.events.Refusal(ctx, e)
}
