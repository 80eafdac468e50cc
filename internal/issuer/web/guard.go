package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// Every post to a page of ours goes through one Guard before its handler
// runs. In this order it refuses:
//
//  1. a cross-origin post: an Origin header that is not the issuer's own
//     (Origin: null included, which a page with no-referrer would make
//     browsers send), or one that http.CrossOriginProtection refuses by
//     its Sec-Fetch-Site;
//  2. a body over the route's limit, read whole here (413), or a form that
//     does not parse (400);
//  3. a CSRF token (the form field csrf, or the header X-CSRF-Token of a
//     JSON post) that is not the browser's CSRF cookie.
//
// Every refusal takes one path (Guard.Refused): it is logged, recorded in
// the audit trail and counted there, and answered with the same status on
// every route: 403 for the first and third, 413 or 400 for the second.
// Handlers read the parsed form (r.PostForm) or the buffered body, and the
// browser's checked CSRF token with [Token]; none parses a form itself.

// Refusal reasons, as the audit trail records them (a fixed vocabulary).
const (
	// ReasonCSRF: the post came from another origin or without the
	// browser's CSRF token.
	ReasonCSRF = "csrf"
	// ReasonTooLarge: the body was over the route's limit.
	ReasonTooLarge = "too_large"
	// ReasonBadForm: the form body did not parse.
	ReasonBadForm = "bad_form"
)

// MsgForged is what a refused form post is told.
const MsgForged = "This form could not be verified. Go back, reload the page and sign in again."

// Kind is how a guarded route takes its input.
type Kind int

const (
	// FormPost is an HTML form (application/x-www-form-urlencoded) with
	// the CSRF token in the field csrf; refusals are pages.
	FormPost Kind = iota
	// JSONPost is a script's JSON post with the CSRF token in the header
	// X-CSRF-Token; refusals are JSON ({"error": message}).
	JSONPost
)

// Form describes one guarded route.
type Form struct {
	Kind Kind
	// Limit is the most bytes its body may have. Required.
	Limit int64
	// Title is the title of its refusal pages.
	Title string
	// Forged is what a cross-origin or CSRF refusal says. Default
	// MsgForged.
	Forged string
}

// Refusal is a post the guard refused, as its refusal path sees it.
type Refusal struct {
	Reason string // one of the Reason constants
	Status int    // the status answered
}

// Guard checks every post to a page of ours; see the package's rules
// above. Its fields are set once, before first use.
type Guard struct {
	// Origin is the issuer's scheme://host. Required.
	Origin string
	CSRF   CSRF
	Pages  Renderer
	// Refused logs, records and counts a refusal before it is answered.
	// A non-nil error means the refusal's audit event was required and
	// not recorded: the answer is then the server error's.
	Refused func(r *http.Request, f Refusal) error

	cop *http.CrossOriginProtection
}

// NewGuard returns a guard for the issuer at origin (scheme://host).
func NewGuard(origin string, csrf CSRF, pages Renderer, refused func(*http.Request, Refusal) error) *Guard {
	return &Guard{Origin: origin, CSRF: csrf, Pages: pages, Refused: refused, cop: http.NewCrossOriginProtection()}
}

type tokenKey struct{}

// Token is the browser's CSRF token of a post the guard let through.
func Token(r *http.Request) string {
	t, _ := r.Context().Value(tokenKey{}).(string)
	return t
}

// Wrap returns next behind the guard, for the route f describes.
func (g *Guard) Wrap(f Form, next http.Handler) http.Handler {
	if f.Limit <= 0 {
		panic("web: a guarded route needs a body limit")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.sameOrigin(r) {
			g.refuse(w, r, f, Refusal{Reason: ReasonCSRF, Status: http.StatusForbidden})
			return
		}
		var sent string
		switch f.Kind {
		case JSONPost:
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, f.Limit))
			if err != nil {
				g.refuse(w, r, f, bodyRefusal(err))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			sent = r.Header.Get("X-CSRF-Token")
		default:
			r.Body = http.MaxBytesReader(w, r.Body, f.Limit)
			if err := r.ParseForm(); err != nil {
				g.refuse(w, r, f, bodyRefusal(err))
				return
			}
			sent = r.PostForm.Get("csrf")
		}
		token, ok := g.CSRF.Check(r, sent)
		if !ok {
			g.refuse(w, r, f, Refusal{Reason: ReasonCSRF, Status: http.StatusForbidden})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, token)))
	})
}

// sameOrigin: an Origin header, when sent, must be exactly the issuer's;
// then a browser that sends Sec-Fetch-Site is judged by Go's cross-origin
// protection. One that does not was judged by its Origin alone: the
// protection would compare it with Host, which a proxy in front of the
// issuer may rewrite (the issuer URL is configuration, never Host).
func (g *Guard) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != g.Origin {
		return false
	}
	if r.Header.Get("Sec-Fetch-Site") == "" {
		return true
	}
	return g.cop.Check(r) == nil
}

func bodyRefusal(err error) Refusal {
	if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
		return Refusal{Reason: ReasonTooLarge, Status: http.StatusRequestEntityTooLarge}
	}
	return Refusal{Reason: ReasonBadForm, Status: http.StatusBadRequest}
}

// refuse is the one refusal path: Refused, then the answer.
func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, f Form, x Refusal) {
	status, msg := x.Status, f.Forged
	if msg == "" {
		msg = MsgForged
	}
	if x.Reason == ReasonTooLarge && f.Kind == JSONPost {
		msg = "The request is too large."
	}
	if g.Refused != nil && g.Refused(r, x) != nil {
		status, msg = http.StatusInternalServerError, MsgInternal
	}
	if f.Kind == JSONPost {
		JSONError(w, status, msg)
		return
	}
	g.Pages.Message(w, status, f.Title, msg)
}

// JSONError answers a script's post with {"error": msg}.
func JSONError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
