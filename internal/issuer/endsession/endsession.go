// Package endsession serves OpenID Connect RP-Initiated Logout: the
// end-session endpoint and the page where a user confirms a sign-out that
// proved nothing.
package endsession

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
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

// Config is what a Handler depends on; every field is required.
type Config struct {
	// Issuer is the issuer URL.
	Issuer string
	// Now is the clock.
	Now func() time.Time
	// Store revokes the grants.
	Store *store.Store
	// Provider verifies hints and checks clients and redirect URIs.
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

// End-session (OpenID Connect RP-Initiated Logout 1.0). The provider keeps
// no browser sessions: a session is a grant, the tokens issued from one
// login to one client, and an ID token names its grant in `sid`. Ending a
// session revokes that grant's refresh and access tokens, and nothing
// else: end-session ends only what the request proves.
//
//   - A valid, unexpired id_token_hint proves the request comes from the
//     client holding that session: its grant is revoked at once.
//   - Without a hint, or with an expired one (or one without `sid`), the
//     request proves nothing: any site can send it. The user is asked to
//     confirm on our own page, whose form (CSRF token, same origin) revokes
//     at most the grant the hint names, expired or not.
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
	// clientID is the client the session is at: the hint's azp, or the
	// client_id parameter without a hint. Empty when neither was sent.
	clientID string
	// redirect is where the browser goes afterwards: the
	// post_logout_redirect_uri when the client registered it, or the
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
// callers decide what it may do) and has the library check the client and
// the post_logout_redirect_uri.
func (s *Handler) validateEndSession(ctx context.Context, p endSessionParams) (*endSession, error) {
	ctx = op.ContextWithIssuer(ctx, s.cfg.Issuer)
	provider := s.cfg.Provider
	req := &oidc.EndSessionRequest{ClientID: p.ClientID, PostLogoutRedirectURI: p.PostLogoutRedirectURI, State: p.State}
	es := &endSession{}
	if p.IDTokenHint != "" {
		claims, err := op.VerifyIDTokenHint[*oidc.IDTokenClaims](ctx, p.IDTokenHint, provider.IDTokenHintVerifier(ctx))
		if err != nil && !errors.As(err, &op.IDTokenHintExpiredError{}) {
			return nil, errBadHint
		}
		// Our ID tokens always name their client in azp; access tokens,
		// signed with the same keys, do not, and are no hints.
		azp := claims.GetAuthorizedParty()
		if azp == "" || (req.ClientID != "" && req.ClientID != azp) {
			return nil, errBadHint
		}
		req.ClientID = azp
		es.hint = claims
		// The library judges expiry by the wall clock, the issuer by its
		// own; a hint is fresh only when both agree.
		es.fresh = err == nil && s.cfg.Now().Before(claims.GetExpiration())
	}
	session, err := op.ValidateEndSessionRequest(ctx, req, provider)
	if err != nil {
		return nil, err
	}
	es.clientID, es.redirect = session.ClientID, session.RedirectURI
	return es, nil
}

// EndSession serves the end-session endpoint, which the client's site
// sends the browser to (GET, or a POST form).
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
		if !s.revokeSession(r.Context(), w, es) {
			return
		}
		http.Redirect(w, r, es.redirect, http.StatusFound)
		return
	}
	s.cfg.Pages.Render(w, http.StatusOK, "logout.html", LogoutPage{
		Title:                 TitleSignOut,
		Client:                es.clientID,
		IDTokenHint:           p.IDTokenHint,
		ClientID:              p.ClientID,
		PostLogoutRedirectURI: p.PostLogoutRedirectURI,
		State:                 p.State,
		CSRF:                  s.cfg.Pages.CSRFCookie(w, r),
	}, es.redirect)
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

// ConfirmLogout serves the confirmation form: it revokes the grant the
// hint names (an expired hint is enough, now that the user confirmed on
// our page), or nothing without a hint, and sends the browser on.
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
	if es.grantID() != "" && !s.revokeSession(r.Context(), w, es) {
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

// revokeSession revokes the grant the verified hint names, when it is the
// hint's subject's at the hint's client, or writes the error page.
func (s *Handler) revokeSession(ctx context.Context, w http.ResponseWriter, es *endSession) bool {
	_, err := s.cfg.Store.RevokeGrant(ctx, es.grantID(), es.hint.Subject, es.clientID)
	if err != nil {
		s.cfg.Log.ErrorContext(ctx, "ending a session failed", "error", err)
		s.cfg.Pages.Internal(w, http.StatusInternalServerError, TitleSignOut)
		return false
	}
	if err := s.cfg.Events.Record(ctx, audit.Event{Type: audit.Logout, Subject: es.hint.Subject, ClientID: es.clientID,
		Refs: s.cfg.Events.Refs(audit.RefGrant, es.grantID())}); err != nil {
		s.cfg.Pages.Internal(w, http.StatusInternalServerError, TitleSignOut)
		return false
	}
	return true
}
