package issuer

import "github.com/nsauth/nsauth/internal/issuer/storage"

// The device authorization grant (RFC 8628): its protocol part (the
// device authorization endpoint, the polls, the storage) is in package
// storage; the pages where users enter the code and decide are
// package devicepages.

// Device flow settings.
const (
	// DeviceCodeTTL is how long a device authorization waits for the user.
	DeviceCodeTTL = storage.DeviceCodeTTL
	// DefaultDevicePollInterval is the default of Config.DevicePollInterval.
	DefaultDevicePollInterval = storage.DefaultDevicePollInterval
	// userCodeLen is the user code's length without its dash.
	userCodeLen = storage.UserCodeLen
)

// normalizeUserCode is storage.NormalizeUserCode, for the device pages.
func normalizeUserCode(typed string) (string, bool) { return storage.NormalizeUserCode(typed) }
