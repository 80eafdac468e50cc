package web

import (
	"net/http"
	"strings"
)

// SecurityHeaders sets the headers every provider response carries. Pages
// replace the Content-Security-Policy with their own.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		if !strings.HasPrefix(r.URL.Path, AssetsPath) {
			// Token responses must not be cached (RFC 6749 §5.1); nothing
			// else here benefits from caching enough to be worth an
			// exception.
			h.Set("Cache-Control", "no-store")
			h.Set("Pragma", "no-cache")
		}
		next.ServeHTTP(w, r)
	})
}
