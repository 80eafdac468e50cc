package issuer

import "github.com/nsauth/nsauth/internal/issuer/attempts"

// DeviceCookieTTL is how long a device cookie proves that a browser logged
// in to an account (package attempts).
const DeviceCookieTTL = attempts.DeviceCookieTTL

// deviceKeyName is the instance value holding the device cookies' MAC key.
const deviceKeyName = "device_cookie_key"
