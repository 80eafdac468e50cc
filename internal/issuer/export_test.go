package issuer

import "github.com/zitadel/oidc/v3/pkg/op"

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
var NewPasskeyName = newPasskeyName
