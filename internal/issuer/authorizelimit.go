package issuer

import (
	"net/http"
	"strconv"

	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/ratelimit"
)

// limitAuthorize answers 429 to a client address over its authorize
// budget, before the request is parsed or anything is looked up: any web
// page can make its visitors' browsers call the endpoint.
func (i *Issuer) limitAuthorize(next http.Handler) http.Handler {
	if i.authorizeLimit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := i.authorizeLimit.Allow(clientaddr.Key(i.cfg.Clients.FromRequest(r)))
		if !ok {
			secs := strconv.Itoa(ratelimit.RetryAfterSeconds(wait))
			w.Header().Set("Retry-After", secs)
			http.Error(w, "Too many sign-in requests from your address. Try again in "+secs+" seconds.", http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}
