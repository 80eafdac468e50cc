// Package endsession serves OpenID Connect RP-Initiated Logout: the
// end-session endpoint and the page where a user confirms a sign-out that
// proved nothing.
package endsession

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/backchannel"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/storage"
	"github.com/nsauth/nsauth/internal/redirect"
	"github.com/nsauth/nsauth/internal/store"
)

// Pages is the issuer's web layer, which end-session's pages are
// written with.
type Pages interface {
	// Message writes a page with a title and a message.
	Message(w http.ResponseWriter, status int, title, msg string)
	// Internal writes the page of a server error.
	Internal(w http.ResponseWriter, status int, title string)
	// Render writes the template name with data; its form may send the
	// browser on to the origin of redirect.
	Render(w http.ResponseWriter, status int, name string, data any, redirect string)
	// CSRFCookie gives the browser its CSRF cookie and returns the form's
	// token.
	CSRFCookie(w http.ResponseWriter, r *http.Request) string
}

// Storage is what end-session needs of the store: the browser sessions
// and their grants, the grants themselves, and the apps (their
// back-channel logout URIs). *store.Store satisfies it.
type Storage interface {
	SessionOfGrant(ctx context.Context, grantID string) (*store.Session, error)
	SessionGrants(ctx context.Context, sessionID string) ([]store.SessionGrant, error)
	EndSession(ctx context.Context, id string, keep func(store.SessionGrant) bool) ([]store.SessionGrant, error)
	RevokeGrant(ctx context.Context, grantID, userID, clientID string) (int64, error)
	ClientByID(ctx context.Context, id string) (*store.Client, error)
}

// Sessions is the browser's session cookie
// (browsersession.Manager).
type Sessions interface {
	// Current returns the live session the request's cookies name.
	Current(r *http.Request) (*store.Session, bool)
	// Clear removes the session cookie.
	Clear(w http.ResponseWriter)
}

// Notifier tells apps that a session at them ended, in the background
// (backchannel.Sender).
type Notifier interface {
	Send(ctx context.Context, l backchannel.Logout)
}

// Config is what a Handler depends on; every field is required.
type Config struct {
	// Issuer is the issuer URL.
	Issuer string
	// Now is the clock.
	Now func() time.Time
	// Store ends sessions and revokes grants.
	Store Storage
	// Sessions reads and clears the browser's session cookie.
	Sessions Sessions
	// Backchannel tells the other apps of an ended session.
	Backchannel Notifier
	// Provider verifies hints and finds clients.
	Provider op.OpenIDProvider
	Events   *events.Recorder
	Pages    Pages
	Log      *slog.Logger
}

// Handler serves the end-session endpoint (EndSession) and the
// confirmation form (ConfirmLogout).
type Handler struct {
	cfg Config
}

// New returns the Handler of cfg.
func New(cfg Config) *Handler { return &Handler{cfg: cfg} }

// MaxIDTokenHint bounds an id_token_hint, here and at authorize.
const MaxIDTokenHint = 16 << 10

// End-session (OpenID Connect RP-Initiated Logout 1.0). An ID token names
// its grant (the tokens issued from one login to one app) in `sid`, and
// a grant made in a browser session is recorded with it. The logout rule:
//
//   - An authentic id_token_hint (past its `exp` too) ends the browser
//     session its grant belongs to, and revokes every grant of that
//     session except the grants of other apps with offline access
//     (offline_access: the terminal client's, say). The app that signs
//     out loses its own grants, offline or not. When the grant is in no
//     live browser session, that grant alone is revoked.
//   - Every other app of the session with a back-channel logout URI is
//     sent a logout token for its grant's sid, kept offline grants' apps
//     too (package backchannel), without delaying the sign-out.
//   - A fresh hint proves the request comes from the app holding the
//     session: no page. An expired hint, or none, proves nothing (any site
//     can send the request): the user confirms on one page of ours, whose
//     form (CSRF token, same origin) then acts. Confirmed without a hint,
//     it ends this browser's session.
//   - The browser goes on to the post_logout_redirect_uri only when it is
//     one the app registered (exactly), with the state; otherwise, to the
//     signed-out page: an unregistered URI is never redirected to.
//
// The library's handler is not used: on an expired hint it would revoke
// every token the user holds at the client, without asking.

// Messages of the end-session pages.
const (
	// TitleSignOut is the title of every end-session page.
	TitleSignOut      = "Sign out"
	msgSignOutInvalid = "This sign-out request is not valid. Sign out again from the application."
	// MsgSignOutForged answers a confirmation form that failed its
	// origin or CSRF check.
	MsgSignOutForged = "This form could not be verified. Go back, reload the page and try again."
)

// MaxFormBytes bounds an end-session or sign-out form body: a hint and a
// few short fields.
const MaxFormBytes = MaxIDTokenHint + 8<<10

// endSessionParams are the end-session parameters we act on; logout_hint
// and ui_locales are ignored.
type endSessionParams struct {
	IDTokenHint           string
	ClientID              string
	PostLogoutRedirectURI string
	State                 string
}

// readEndSessionParams takes the parameters from form, or reports that one
// is too long or not UTF-8.
func readEndSessionParams(form url.Values) (endSessionParams, bool) {
	p := endSessionParams{
		IDTokenHint:           form.Get("id_token_hint"),
		ClientID:              form.Get("client_id"),
		PostLogoutRedirectURI: form.Get("post_logout_redirect_uri"),
		State:                 form.Get("state"),
	}
	ok := len(p.IDTokenHint) <= MaxIDTokenHint && len(p.ClientID) <= storage.MaxClientIDLen &&
		len(p.PostLogoutRedirectURI) <= redirect.MaxURILen && len(p.State) <= redirect.MaxStateLen &&
		utf8.ValidString(p.IDTokenHint+p.ClientID+p.PostLogoutRedirectURI+p.State)
	return p, ok
}

// endSession is what an end-session request proved.
type endSession struct {
	// hint holds the claims of the id_token_hint, whose signature and
	// issuer were verified; nil without a hint.
	hint *oidc.IDTokenClaims
	// fresh is whether the hint has not expired.
	fresh bool
	// clientID is the app the session is at: the hint's azp, or the
	// client_id parameter without a hint. Empty when neither was sent.
	clientID string
	// redirect is where the browser goes afterwards: the
	// post_logout_redirect_uri when the app registered it, or the
	// signed-out page, with the state parameter.
	redirect string
}

// grantID is the grant the hint names, or "".
func (e *endSession) grantID() string {
	if e.hint == nil {
		return ""
	}
	return e.hint.SessionID
}

var errBadHint = errors.New("the id_token_hint is not a valid ID token of this provider")

// validateEndSession verifies the hint (an expired one is accepted; the
// callers decide what it may do), finds the app, and decides where the
// browser goes afterwards.
func (s *Handler) validateEndSession(ctx context.Context, p endSessionParams) (*endSession, error) {
	ctx = op.ContextWithIssuer(ctx, s.cfg.Issuer)
	provider := s.cfg.Provider
	es := &endSession{clientID: p.ClientID, redirect: provider.DefaultLogoutRedirectURI()}
	if p.IDTokenHint != "" {
		claims, err := op.VerifyIDTokenHint[*oidc.IDTokenClaims](ctx, p.IDTokenHint, provider.IDTokenHintVerifier(ctx))
		if err != nil && !errors.As(err, &op.IDTokenHintExpiredError{}) {
			return nil, errBadHint
		}
		// Our ID tokens always name their client in azp; access tokens,
		// signed with the same keys, do not, and are no hints.
		azp := claims.GetAuthorizedParty()
		if azp == "" || (p.ClientID != "" && p.ClientID != azp) {
			return nil, errBadHint
		}
		es.clientID = azp
		es.hint = claims
		// The library judges expiry by the wall clock, the issuer by its
		// own; a hint is fresh only when both agree.
		es.fresh = err == nil && s.cfg.Now().Before(claims.GetExpiration())
	}
	if es.clientID != "" {
		client, err := provider.Storage().GetClientByClientID(ctx, es.clientID)
		if err != nil {
			return nil, oidc.DefaultToServerError(err, "")
		}
		es.clientID = client.GetID()
		if p.PostLogoutRedirectURI != "" && slices.Contains(client.PostLogoutRedirectURIs(), p.PostLogoutRedirectURI) {
			es.redirect = p.PostLogoutRedirectURI
		}
	}
	if p.PostLogoutRedirectURI != "" && es.redirect != p.PostLogoutRedirectURI {
		s.cfg.Log.InfoContext(ctx, "end-session: post_logout_redirect_uri not registered; the browser goes to the signed-out page",
			"client_id", es.clientID)
	}
	if p.State != "" {
		u, err := url.Parse(es.redirect)
		if err != nil {
			return nil, oidc.ErrServerError().WithParent(err)
		}
		q := u.Query()
		q.Set("state", p.State)
		u.RawQuery = q.Encode()
		es.redirect = u.String()
	}
	return es, nil
}

// EndSession serves the end-session endpoint, which the app's site sends
// the browser to (GET, or a POST form).
func (s *Handler) EndSession(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.cfg.Pages.Message(w, http.StatusBadRequest, TitleSignOut, msgSignOutInvalid)
		return
	}
	p, ok := readEndSessionParams(r.Form)
	if !ok {
		s.cfg.Pages.Message(w, http.StatusBadRequest, TitleSignOut, msgSignOutInvalid)
		return
	}
	es, ok := s.checkEndSession(r.Context(), w, p)
	if !ok {
		return
	}
	if es.fresh && es.grantID() != "" {
		if !s.signOut(w, r, es) {
			return
		}
		http.Redirect(w, r, es.redirect, http.StatusFound)
		return
	}
	s.cfg.Pages.Render(w, http.StatusOK, "logout.html", LogoutPage{
		Title:                 TitleSignOut,
		Client:                s.title(r.Context(), es.clientID),
		IDTokenHint:           p.IDTokenHint,
		ClientID:              p.ClientID,
		PostLogoutRedirectURI: p.PostLogoutRedirectURI,
		State:                 p.State,
		CSRF:                  s.cfg.Pages.CSRFCookie(w, r),
	}, es.redirect)
}

// title is what the confirmation page calls the app: its display name,
// or its id.
func (s *Handler) title(ctx context.Context, clientID string) string {
	if clientID == "" {
		return ""
	}
	c, err := s.cfg.Store.ClientByID(ctx, clientID)
	if err != nil {
		return clientID
	}
	return c.Title()
}

// LogoutPage is what the confirmation page (logout.html) shows.
type LogoutPage struct {
	Title                 string
	Client                string
	IDTokenHint           string
	ClientID              string
	PostLogoutRedirectURI string
	State                 string
	CSRF                  string
}

// ConfirmLogout serves the confirmation form: it signs out as the hint
// says (an expired hint is enough, now that the user confirmed on our
// page), or ends this browser's session without a hint, and sends the
// browser on.
func (s *Handler) ConfirmLogout(w http.ResponseWriter, r *http.Request) {
	// The form guard (web.Guard, at the route) checked the origin, the
	// size and the CSRF token, and parsed the form.
	p, ok := readEndSessionParams(r.PostForm)
	if !ok {
		s.cfg.Pages.Message(w, http.StatusBadRequest, TitleSignOut, msgSignOutInvalid)
		return
	}
	es, ok := s.checkEndSession(r.Context(), w, p)
	if !ok {
		return
	}
	if !s.signOut(w, r, es) {
		return
	}
	http.Redirect(w, r, es.redirect, http.StatusSeeOther)
}

// checkEndSession validates p, or writes the page saying why not. The hint
// is never logged, nor why it failed verification (the library's reasons
// quote its claims).
func (s *Handler) checkEndSession(ctx context.Context, w http.ResponseWriter, p endSessionParams) (*endSession, bool) {
	es, err := s.validateEndSession(ctx, p)
	if err == nil {
		return es, true
	}
	var oe *oidc.Error
	if errors.As(err, &oe) && oe.ErrorType == oidc.ServerError {
		s.cfg.Log.ErrorContext(ctx, "validating an end-session request failed", "error", oe.Parent)
		s.cfg.Pages.Internal(w, http.StatusInternalServerError, TitleSignOut)
		return nil, false
	}
	reason := "invalid id_token_hint"
	if oe != nil {
		reason = oe.Description
	}
	s.cfg.Log.InfoContext(ctx, "end-session refused", "reason", reason)
	s.cfg.Pages.Message(w, http.StatusBadRequest, TitleSignOut, msgSignOutInvalid)
	return nil, false
}

// signOut applies the logout rule to what es proved, or writes the error
// page. With a hint naming a grant: the live browser session of the
// hint's user holding that grant at the hint's app ends; without one,
// the grant alone is revoked. Without a grant (no hint, or one without
// sid; only after the user confirmed): this browser's session ends, when
// it is the hint's user's.
func (s *Handler) signOut(w http.ResponseWriter, r *http.Request, es *endSession) bool {
	ctx := r.Context()
	current, hasCurrent := s.cfg.Sessions.Current(r)
	var sess *store.Session
	if grant := es.grantID(); grant != "" {
		found, err := s.sessionOfGrant(ctx, es.hint.Subject, grant, es.clientID)
		if err != nil {
			return s.failed(ctx, w, err)
		}
		if found == nil {
			return s.revokeGrant(ctx, w, es)
		}
		sess = found
	} else {
		if !hasCurrent || (es.hint != nil && es.hint.Subject != current.UserID) {
			return true // nothing proven to end
		}
		sess = current
	}
	if hasCurrent && current.ID == sess.ID {
		s.cfg.Sessions.Clear(w)
	}
	return s.endBrowserSession(ctx, w, sess, es)
}

// sessionOfGrant returns the live browser session of userID within
// which grantID was issued to clientID, or nil.
func (s *Handler) sessionOfGrant(ctx context.Context, userID, grantID, clientID string) (*store.Session, error) {
	sess, err := s.cfg.Store.SessionOfGrant(ctx, grantID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("finding a grant's session: %w", err)
	}
	// An ended session's kept grants are revoked one by one: ending it
	// again would revoke nothing.
	if sess.UserID != userID || !sess.Live(s.cfg.Now()) {
		return nil, nil
	}
	grants, err := s.cfg.Store.SessionGrants(ctx, sess.ID)
	if err != nil {
		return nil, fmt.Errorf("listing a session's grants: %w", err)
	}
	for _, g := range grants {
		if g.GrantID == grantID && g.ClientID == clientID {
			return sess, nil
		}
	}
	return nil, nil
}

// endBrowserSession ends sess by the logout rule (es.clientID is the app
// signing out, "" for none), records it, and queues the other apps'
// logout tokens.
func (s *Handler) endBrowserSession(ctx context.Context, w http.ResponseWriter, sess *store.Session, es *endSession) bool {
	leaving := es.clientID
	grants, err := s.cfg.Store.EndSession(ctx, sess.ID, func(g store.SessionGrant) bool {
		return g.ClientID != leaving && g.Offline
	})
	if err != nil {
		return s.failed(ctx, w, fmt.Errorf("ending a browser session: %w", err))
	}
	if err := s.cfg.Events.Record(ctx, audit.Event{Type: audit.SessionEnded, Subject: sess.UserID, ClientID: leaving,
		Target: sess.ID, Refs: s.cfg.Events.Refs(audit.RefGrant, es.grantID())}); err != nil {
		s.cfg.Pages.Internal(w, http.StatusInternalServerError, TitleSignOut)
		return false
	}
	told := map[string]bool{}
	for _, g := range grants {
		if g.ClientID == leaving || told[g.GrantID] {
			continue
		}
		told[g.GrantID] = true
		app, err := s.cfg.Store.ClientByID(ctx, g.ClientID)
		if err != nil {
			// Deleted since: nobody to tell.
			s.cfg.Log.DebugContext(ctx, "no back-channel logout for an app not found", "client_id", g.ClientID, "error", err)
			continue
		}
		if app.BackchannelLogoutURI == "" || app.Disabled() {
			continue
		}
		s.cfg.Backchannel.Send(ctx, backchannel.Logout{ClientID: app.ID, URI: app.BackchannelLogoutURI,
			Subject: sess.UserID, SessionID: g.GrantID})
	}
	return true
}

// revokeGrant revokes the grant the verified hint names, when it is the
// hint's subject's at the hint's app, or writes the error page.
func (s *Handler) revokeGrant(ctx context.Context, w http.ResponseWriter, es *endSession) bool {
	if _, err := s.cfg.Store.RevokeGrant(ctx, es.grantID(), es.hint.Subject, es.clientID); err != nil {
		return s.failed(ctx, w, fmt.Errorf("revoking a grant: %w", err))
	}
	if err := s.cfg.Events.Record(ctx, audit.Event{Type: audit.Logout, Subject: es.hint.Subject, ClientID: es.clientID,
		Refs: s.cfg.Events.Refs(audit.RefGrant, es.grantID())}); err != nil {
		s.cfg.Pages.Internal(w, http.StatusInternalServerError, TitleSignOut)
		return false
	}
	return true
}

// failed logs err and writes the page of a server error.
func (s *Handler) failed(ctx context.Context, w http.ResponseWriter, err error) bool {
	s.cfg.Log.ErrorContext(ctx, "ending a session failed", "error", err)
	s.cfg.Pages.Internal(w, http.StatusInternalServerError, TitleSignOut)
	return false
}
