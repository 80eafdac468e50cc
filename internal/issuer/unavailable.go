package issuer

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// The answer of every endpoint and page when the database could not be
// reached: the same request succeeds once it can, so the client is told
// to retry (HTTP 503, Retry-After) rather than that the server is broken.
const (
	// unavailableRetryAfter is the Retry-After of that answer, in seconds:
	// about as long as a database restart or a lost connection lasts.
	unavailableRetryAfter = 5
	// msgUnavailable is what the page and the OAuth error_description
	// say. It names no cause: that is in the server's log.
	msgUnavailable = "The server cannot reach its database right now. Nothing was changed; try again in a few seconds."
	// titleUnavailable is the page's title.
	titleUnavailable = "Try again shortly"
)

// unavailableAs503 is the one place where a database that cannot be
// reached becomes what a browser or an OAuth client reads: when next
// answers with a server error (5xx) after a store call under the request
// failed for it (store.IsUnavailable, seen through store.WatchOutage),
// the answer is replaced by HTTP 503 with Retry-After: for a JSON answer
// (the token, introspection, revocation, userinfo and device endpoints,
// the passkey scripts' posts) an RFC 6749 §5.2 body whose error is
// temporarily_unavailable, for anything else the page saying to try again
// shortly. The handlers keep logging the cause; other answers, and server
// errors with another cause, pass unchanged.
func (i *Issuer) unavailableAs503(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, outage := store.WatchOutage(r.Context())
		uw := &outageWriter{ResponseWriter: w, outage: outage, pages: i.pages}
		next.ServeHTTP(uw, r.WithContext(ctx))
	})
}

// outageWriter replaces a 5xx answer by the 503 of unavailableAs503 when
// its outage saw the database unreachable; the handler's own body is then
// discarded.
type outageWriter struct {
	http.ResponseWriter
	outage   *store.Outage
	pages    web.Renderer
	wrote    bool
	replaced bool
}

func (w *outageWriter) WriteHeader(status int) {
	if w.wrote {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.wrote = true
	if status < 500 || w.outage.Err() == nil {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.replaced = true
	h := w.Header()
	isJSON := strings.HasPrefix(h.Get("Content-Type"), "application/json")
	for _, k := range []string{"Content-Length", "Content-Type", "Content-Encoding"} {
		h.Del(k)
	}
	h.Set("Retry-After", strconv.Itoa(unavailableRetryAfter))
	if isJSON {
		writeUnavailableJSON(w.ResponseWriter)
		return
	}
	w.pages.Message(w.ResponseWriter, http.StatusServiceUnavailable, titleUnavailable, msgUnavailable)
}

func (w *outageWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *outageWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeUnavailableJSON(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{"temporarily_unavailable", msgUnavailable})
}
