package upstream

import (
	"errors"
	"fmt"

	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

var (
	// ErrNotReady means the discovery document has not been fetched yet.
	ErrNotReady = errors.New("provider discovery has not completed")
	// ErrUnavailable means the provider could not be reached, timed out,
	// failed with a 5xx status or answered with something unusable.
	ErrUnavailable = errors.New("provider unavailable")
	// ErrRejected means the provider refused the request (RFC 6749 §5.2).
	ErrRejected = errors.New("provider rejected the request")
	// ErrIssuerMismatch means the discovery document names another issuer
	// than the one configured. It is a configuration error: the document is
	// never used.
	ErrIssuerMismatch = errors.New("discovered issuer does not match the expected issuer")
	// ErrInsecureEndpoint means the discovery document of an https issuer
	// names an endpoint that is not https. It is a configuration error of
	// the provider: the document is never used.
	// It is [oidcdiscovery.ErrInsecureEndpoint], the one rule for every
	// reader of a discovery document.
	ErrInsecureEndpoint = oidcdiscovery.ErrInsecureEndpoint
)

// RejectedError is returned when the provider answers with an OAuth error
// response. It matches [ErrRejected].
type RejectedError struct {
	// Code is the RFC 6749 `error` value, such as "invalid_grant". It is
	// sanitized: anything not made of the characters the RFC allows is
	// replaced by "invalid_response".
	Code string
	// Status is the HTTP status of the response.
	Status int
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("provider rejected the request: %s (HTTP %d)", e.Code, e.Status)
}

// Is makes RejectedError match [ErrRejected].
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// unavailable wraps a cause as ErrUnavailable. The cause must not hold a
// response body or secret.
func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnavailable, fmt.Sprintf(format, args...))
}

// sanitizeErrorCode keeps an RFC 6749 error code only when it is made of the
// characters the RFC allows (%x20-21 / %x23-5B / %x5D-7E) and is short, so a
// hostile provider cannot smuggle text into our logs through it.
func sanitizeErrorCode(code string) string {
	if code == "" || len(code) > 64 {
		return "invalid_response"
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return "invalid_response"
		}
	}
	return code
}
