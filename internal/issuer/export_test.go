package issuer

import (
	"github.com/nsauth/nsauth/internal/issuer/passkey"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Names the tests use to forge sealed auth requests.
const (
	AuthRequestKeyName  = authRequestKeyName
	AuthRequestPurpose  = authRequestPurpose
	MaxAuthRequestIDLen = maxAuthRequestIDLen
)

// DeviceStorage is the provider's op.DeviceAuthorizationStorage, which its
// own token endpoint does not use.
func (i *Issuer) DeviceStorage() op.DeviceAuthorizationStorage { return i.storage }

// NewPasskeyName is the name the offer of one more passkey suggests.
var NewPasskeyName = passkey.NewName

// Route is a pattern of the provider's mux and whether the form guard
// wraps it.
type Route struct {
	Pattern string
	Guarded bool
}

// Routes lists every pattern the provider's mux serves, from the table
// it was built from.
func (i *Issuer) Routes() []Route {
	out := make([]Route, len(i.routes))
	for j, r := range i.routes {
		out[j] = Route{Pattern: r.pattern, Guarded: r.guarded}
	}
	return out
}
