package authn

import (
	"net/http"
	"time"

	"github.com/nsauth/nsauth/pkg/noredirect"
)

// defaultHTTPTimeout bounds every request of the default HTTP client.
const defaultHTTPTimeout = 10 * time.Second

// newHTTPClient returns the client used when a configuration names none.
// It does not follow redirects: the introspection request carries the
// token and the client's credentials, and a 307 or 308 would post both to
// wherever the Location header points; a JWKS or discovery document that
// moved is a configuration to fix, not something to chase. The redirect
// answer itself is returned, and treated as any other non-200 answer.
func newHTTPClient() *http.Client {
	return noredirect.NewClient(nil, defaultHTTPTimeout)
}
