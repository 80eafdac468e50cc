package connectorflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/connector"
	"github.com/nsauth/nsauth/internal/issuer/authflow"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/connectors"
)

// Messages of the connectors' pages.
const (
	msgUnavailable = "This sign-in method is not available. Go back and choose another."
	msgUnreachable = "%s is unreachable; try again later."
	msgBusy        = "Too many sign-ins are waiting at other sites. Try again in a moment."
	msgBadState    = "This sign-in took too long, was already used, or was started in another browser. Start again from the app."
	msgRedirecting = "Taking you to %s…"
)

// redirectPage is the data of connector_redirect.html.
type redirectPage struct{ Title, Message, URL string }

// start is POST /login/connector: the browser is sent to the upstream,
// its sign-in bound to the browser's CSRF token.
func (f *Flow) start(w http.ResponseWriter, r *http.Request) {
	ctx, csrf := r.Context(), web.Token(r)
	id, link, name := r.PostForm.Get("authRequestID"), r.PostForm.Get("link"), r.PostForm.Get("connector")
	pending := &store.PendingLogin{AuthRequest: id, ExpiresAt: f.cfg.Now().Add(PendingTTL)}
	switch {
	case id == "" && link != "":
		// An enrolment link's page, for a user without a password.
		if f.linkUser(w, ctx, link) == nil {
			return
		}
		pending.EnrolLink = true
	case id == "" || len(id) > authflow.MaxAuthRequestIDLen:
		f.cfg.Pages.Message(w, http.StatusBadRequest, title, msgBadState)
		return
	default:
		ar, ok := f.login.OpenRequest(w, ctx, id)
		if !ok {
			return
		}
		if !ar.ExpiresAt.IsZero() && ar.ExpiresAt.Before(pending.ExpiresAt) {
			pending.ExpiresAt = ar.ExpiresAt
		}
	}
	rc, c, err := build[connector.Redirecting](ctx, f, name)
	if err != nil {
		f.unavailable(w, r, name, c, err)
		return
	}
	state := store.RandomToken(32)
	nonce, verifier := derive(state, csrf)
	pending.Connector = c.Name
	if err := f.cfg.Store.CreatePendingLogin(ctx, pendingKey(state, csrf), pending); err != nil {
		if errors.Is(err, connectors.ErrFull) {
			w.Header().Set("Retry-After", "5")
			f.cfg.Pages.Message(w, http.StatusServiceUnavailable, title, msgBusy)
			return
		}
		f.cfg.Log.ErrorContext(ctx, "storing a pending connector sign-in failed", "connector", c.Name, "error", err)
		f.cfg.Pages.Message(w, http.StatusInternalServerError, title, web.MsgInternal)
		return
	}
	target, err := rc.AuthCodeURL(ctx, state, nonce, verifier)
	if err != nil {
		f.unreachable(w, r, c, err)
		return
	}
	if pending.EnrolLink {
		f.holdLink(w, link)
	}
	// A page, not a redirect: CSP form-action would hold a form's redirect
	// to the upstream's origin. The refresh is no script.
	f.cfg.Pages.Render(w, http.StatusOK, "connector_redirect.html",
		redirectPage{Title: title, Message: fmt.Sprintf(msgRedirecting, displayName(c)), URL: target}, "")
}

// callback is GET /login/connector/{name}/callback: the upstream's
// answer, taken once by the browser that began the sign-in.
func (f *Flow) callback(w http.ResponseWriter, r *http.Request) {
	ctx, name := r.Context(), r.PathValue("name")
	if !validName.MatchString(name) {
		http.NotFound(w, r)
		return
	}
	ck, err := r.Cookie(f.cfg.CSRF.Name())
	if err != nil || !web.IsRandomToken(ck.Value, 32) {
		// The CSRF cookie is SameSite=Strict: the upstream's redirect, a
		// navigation from another site, comes without it. Once more from
		// our own page, the browser sends it, if it has one.
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			f.cfg.Pages.Render(w, http.StatusOK, "connector_redirect.html", redirectPage{Title: title, Message: "Signing you in…", URL: r.URL.RequestURI()}, "")
			return
		}
		f.refuse(w, r, name, connector.ReasonBadState, msgBadState)
		return
	}
	csrf, state := ck.Value, r.URL.Query().Get("state")
	if !web.IsRandomToken(state, 32) {
		f.refuse(w, r, name, connector.ReasonBadState, msgBadState)
		return
	}
	p, err := f.cfg.Store.TakePendingLogin(ctx, pendingKey(state, csrf))
	if errors.Is(err, store.ErrNotFound) || err == nil && p.Connector != name {
		// Another browser's, used, expired, or begun at another connector
		// (mix-up): used up either way.
		f.refuse(w, r, name, connector.ReasonBadState, msgBadState)
		return
	}
	if err != nil {
		f.cfg.Log.ErrorContext(ctx, "taking a pending connector sign-in failed", "connector", name, "error", err)
		f.cfg.Pages.Message(w, http.StatusInternalServerError, title, web.MsgInternal)
		return
	}
	var ar *store.AuthRequest
	if !p.EnrolLink {
		var ok bool
		if ar, ok = f.login.OpenRequest(w, ctx, p.AuthRequest); !ok {
			return
		}
	}
	rc, c, err := build[connector.Redirecting](ctx, f, name)
	if err != nil {
		f.unavailable(w, r, name, c, err)
		return
	}
	nonce, verifier := derive(state, csrf)
	id, err := rc.Exchange(ctx, r.URL.Query(), nonce, verifier)
	if err != nil {
		var refusal *connector.Refusal
		if errors.As(err, &refusal) {
			f.refuse(w, r, name, refusal.Reason, refusal.Message)
			return
		}
		f.unreachable(w, r, c, err)
		return
	}
	if p.EnrolLink && f.useLink(w, r, c, id) == nil {
		return
	}
	user, amr, err := f.signIn(ctx, c, id)
	if err != nil {
		f.refused(w, r, c, err)
		return
	}
	f.login.SignedIn(w, r, authflow.FirstFactor{AuthRequestID: p.AuthRequest, Request: ar, CSRF: csrf, User: user, AMR: amr, Method: c.Name,
		EnrolLink: p.EnrolLink})
}

// unavailable answers a start or callback for a connector that is not
// there (err is errUnavailable) or cannot be built.
func (f *Flow) unavailable(w http.ResponseWriter, r *http.Request, name string, c *store.Connector, err error) {
	if errors.Is(err, errUnavailable) {
		f.refuse(w, r, name, reasonUnavailable, msgUnavailable)
		return
	}
	if c == nil {
		f.cfg.Log.ErrorContext(r.Context(), "reading a connector failed", "connector", name, "error", err)
		f.cfg.Pages.Message(w, http.StatusInternalServerError, title, web.MsgInternal)
		return
	}
	f.unreachable(w, r, c, err)
}

// unreachable answers an upstream that failed: its error is logged (the
// connectors' errors hold no token), the page names the connector.
func (f *Flow) unreachable(w http.ResponseWriter, r *http.Request, c *store.Connector, err error) {
	f.cfg.Log.ErrorContext(r.Context(), "a connector's upstream failed", "connector", c.Name, "error", err)
	_ = f.cfg.Events.Refusal(r.Context(), audit.Event{Type: audit.LoginFailed, Outcome: audit.Failure, Reason: connector.ReasonUpstreamError, Target: c.Name})
	f.cfg.Pages.Message(w, http.StatusBadGateway, title, fmt.Sprintf(msgUnreachable, displayName(c)))
}

// refused answers a sign-in signIn refused (a *connector.Refusal) or could
// not finish.
func (f *Flow) refused(w http.ResponseWriter, r *http.Request, c *store.Connector, err error) {
	var refusal *connector.Refusal
	if errors.As(err, &refusal) {
		f.refuse(w, r, c.Name, refusal.Reason, refusal.Message)
		return
	}
	f.cfg.Log.ErrorContext(r.Context(), "a connector sign-in failed", "connector", c.Name, "error", err)
	f.cfg.Pages.Message(w, http.StatusInternalServerError, title, web.MsgInternal)
}

// refuse records a refused sign-in (aggregated, bounded) and says why.
func (f *Flow) refuse(w http.ResponseWriter, r *http.Request, name, reason, msg string) {
	if err := f.recordRefusal(r.Context(), name, reason, nil); err != nil {
		f.cfg.Pages.Message(w, http.StatusInternalServerError, title, web.MsgInternal)
		return
	}
	f.cfg.Pages.Message(w, http.StatusForbidden, title, msg)
}

func (f *Flow) recordRefusal(ctx context.Context, name, reason string, u *store.User) error {
	if !validName.MatchString(name) {
		name = "" // what a form said: not a connector's name, not kept
	}
	e := audit.Event{Type: audit.LoginFailed, Outcome: audit.Failure, Reason: reason, Target: name}
	if u != nil {
		e.Subject, e.Username = u.ID, u.Username
	}
	return f.cfg.Events.Refusal(ctx, e)
}

// reasonUnavailable: the connector is unknown, disabled or of another
// kind.
const reasonUnavailable = "connector_unavailable"
