package oidcdiscovery

import (
	"errors"
	"fmt"
)

// ErrUnavailable is matched by the errors of a provider that could not
// answer now: it could not be reached, answered HTTP 5xx or 429, or broke
// off its answer. A caller starting up may retry; other errors are
// configuration to fix.
var ErrUnavailable = errors.New("the provider is unavailable")

// ErrIssuerMismatch is matched by [*IssuerMismatchError].
var ErrIssuerMismatch = errors.New("the discovery document names another issuer")

// ErrInsecureEndpoint is wrapped by the error for a document whose issuer
// is https and that names an http endpoint. The document is refused whole:
// it is the provider's configuration that is wrong, and an endpoint over
// http would hand codes, tokens and client secrets to anyone on the path.
var ErrInsecureEndpoint = errors.New("not https, as the issuer is")

// IssuerMismatchError is returned by [Discover] when the document names
// another issuer than it was given. The document is not used: it must not
// send tokens to another provider's endpoints. A caller given the URL of a
// server rather than of a provider may run Discover again on Named, whose
// own document must then name Named.
type IssuerMismatchError struct {
	// URL is the issuer Discover was given, Named the `issuer` the
	// document names instead (empty when it names none), and DocumentURL
	// where the document was read.
	URL, Named, DocumentURL string
}

func (e *IssuerMismatchError) Error() string {
	at := e.DocumentURL
	if at == "" {
		at = URL(e.URL)
	}
	if e.Named == "" {
		return fmt.Sprintf("the discovery document at %s names no issuer; is %s the issuer URL?", at, e.URL)
	}
	return fmt.Sprintf("the discovery document at %s names the issuer %q, not %q; the issuer URL must be given exactly as the provider spells it",
		at, e.Named, e.URL)
}

// Is makes IssuerMismatchError match [ErrIssuerMismatch].
func (e *IssuerMismatchError) Is(target error) bool { return target == ErrIssuerMismatch }

// unavailableError matches [ErrUnavailable] and keeps its cause's text.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string        { return e.err.Error() }
func (e *unavailableError) Unwrap() error        { return e.err }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }
