// Package noredirect builds the HTTP clients nsauth talks to providers
// with: clients that never follow a redirect.
//
// Requests to a provider carry tokens, codes and client credentials. A 307
// or 308 answer would have Go's default client send them again, body and
// all, to whatever its Location names; and a discovery document or JWKS
// that moved is a configuration to fix, not something to chase. With these
// clients the redirect answer itself is returned, to be treated as any
// other answer that is not the one expected.
package noredirect

import (
	"net/http"
	"time"
)

// CheckRedirect is an [http.Client] CheckRedirect function that follows no
// redirect: the client returns the 3xx answer as it came. Set it on a
// client of your own to give it the property of [NewClient].
func CheckRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NewClient returns a client over rt (nil means [http.DefaultTransport])
// whose every request, body included, must end within timeout (zero means
// none, which a client talking to another server should never have), and
// that follows no redirect (see [CheckRedirect]).
func NewClient(rt http.RoundTripper, timeout time.Duration) *http.Client {
	return &http.Client{Transport: rt, Timeout: timeout, CheckRedirect: CheckRedirect}
}
