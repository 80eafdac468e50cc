package issuer

import (
	"time"

	"github.com/nsauth/nsauth/internal/issuer/grants"
)

// Token exchange settings (package grants serves the grant).
const (
	// DefaultExchangePerMinute is the default of Config.ExchangePerMinute.
	DefaultExchangePerMinute = grants.DefaultExchangePerMinute
	// DefaultExchangePerPolicyMinute is the default of
	// Config.ExchangePerPolicyMinute.
	DefaultExchangePerPolicyMinute = grants.DefaultExchangePerPolicyMinute
)

// MachineTokenTTL is the lifetime the server gives a machine client's
// token whose own lifetime is ttl (zero: none set): ttl, capped by the
// server's access token lifetime, which is also the default.
func (i *Issuer) MachineTokenTTL(ttl time.Duration) time.Duration {
	return i.grants.MachineTokenTTL(ttl)
}
