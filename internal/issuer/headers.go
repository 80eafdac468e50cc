package issuer

import (
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// postOnly makes the endpoints that take credentials accept POST with a
// form body only: no GET, and no query string, where secrets would end up
// in logs and histories.
func postOnly(next http.Handler, e op.Endpoints) http.Handler {
	strict := map[string]bool{}
	for _, ep := range []*op.Endpoint{e.Token, e.Introspection, e.Revocation, e.DeviceAuthorization} {
		strict[ep.Relative()] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strict[r.URL.Path] {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			if r.URL.RawQuery != "" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":"invalid_request","error_description":"parameters must be sent in the request body"}`))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
