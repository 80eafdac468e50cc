package issuer

// Names the tests use to forge sealed auth requests.
const (
	AuthRequestKeyName  = authRequestKeyName
	AuthRequestPurpose  = authRequestPurpose
	MaxAuthRequestIDLen = maxAuthRequestIDLen
)
