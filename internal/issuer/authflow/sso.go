package authflow

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/browsersession"
	"github.com/nsauth/nsauth/internal/issuer/devicepages"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// Single sign-on. A completed browser login starts a browser session
// (package browsersession), replacing the browser's previous one, which
// ends then (its grants are kept: the apps signed in within it stay
// signed in, as they would had it idled out). Within
// it, the login page of any app's authorization completes without the
// password, with the session's amr and auth_time (never upgraded by
// reuse):
//   - a first-party app gets its code at once, without a page;
//   - the broker's app (nsauth-cli) gets one "Continue as NAME" page with
//     one button: a terminal login stays a deliberate act;
//   - a third-party app gets its consent page until the user allowed it
//     the scopes it asks for (after a password login too), remembered per
//     user and app.
//
// The session is not used (the password page is shown) under prompt=login
// or when it is older than max_age, unless the user proved who they are
// after the request was made: the login that request led to. Under
// prompt=none no page is ever shown: without a usable session the app
// gets login_required, and interaction_required or consent_required when
// a page would be needed.

// Paths of the single sign-on forms.
const (
	continuePath = "/login/continue"
	consentPath  = "/login/consent"
)

// Page titles and messages of single sign-on.
const (
	titleContinue  = "Continue"
	titleConsent   = "Allow access"
	msgSessionGone = "Your sign-in session has ended. Start the login again from the application."
)

// errConsentRequired is the authorization error of OpenID Connect Core
// §3.1.2.6 the library has no constructor for.
func errConsentRequired() *oidc.Error { return &oidc.Error{ErrorType: "consent_required"} }

// stepSession marks a flow whose login started its browser session.
const stepSession = "session"

type continuePage struct {
	Title         string
	Client        string
	Username      string
	Name          string
	AuthRequestID string
	CSRF          string
}

type consentPage struct {
	Title         string
	Client        string
	Username      string
	Scopes        []scopeLine
	AuthRequestID string
	CSRF          string
}

type scopeLine struct{ Name, Description string }

// ssoStep completes logins from the browser session, and asks consent.
type ssoStep struct{ *deps }

// showLogin is the login page's GET: completed from the browser session
// when it can be, else the password page.
func (f *Flow) showLogin(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	if id == "" || len(id) > maxAuthRequestIDLen {
		f.message(w, http.StatusBadRequest, "Sign in", msgIncomplete)
		return
	}
	ar, ok := f.OpenRequest(w, r.Context(), id)
	if !ok {
		return
	}
	if f.sso.fromSession(w, r, id, ar) {
		return
	}
	f.password.showLoginPage(w, r, id, ar)
}

// fromSession answers the login page from the browser's session, and
// reports whether it did; false means: show the password page.
func (i *ssoStep) fromSession(w http.ResponseWriter, r *http.Request, id string, ar *store.AuthRequest) bool {
	none := slices.Contains(ar.Prompt, oidc.PromptNone)
	if i.sessions == nil || devicepages.IsDeviceLogin(ar) {
		if none {
			i.errorRedirect(w, r, ar, oidc.ErrLoginRequired().WithDescription("there is no session; the user must log in"))
			return true
		}
		return false
	}
	ctx := r.Context()
	s, user, err := i.sessions.CurrentUser(r)
	if err != nil && !errors.Is(err, browsersession.ErrNoSession) {
		i.log.ErrorContext(ctx, "reading a browser session failed", "error", err)
		if none {
			i.errorRedirect(w, r, ar, oidc.ErrServerError().WithDescription("the session could not be read"))
		} else {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		}
		return true
	}
	if s == nil || !i.usable(ar, s, user) {
		if none {
			i.errorRedirect(w, r, ar, oidc.ErrLoginRequired().WithDescription("the user must log in"))
			return true
		}
		return false
	}
	fl := &loginFlow{id: id, ar: ar, csrf: i.csrf.Cookie(w, r), user: user, amr: s.AMR, session: s, authTime: s.AuthTime}
	if ar.ClientID == i.cfg.BrokerClientID {
		if none {
			i.errorRedirect(w, r, ar, oidc.ErrInteractionRequired().WithDescription("a terminal login needs the user's click"))
			return true
		}
		i.render(w, http.StatusOK, "continue.html", continuePage{Title: titleContinue, Client: i.clientTitle(ctx, ar.ClientID),
			Username: user.Username, Name: user.Name, AuthRequestID: id, CSRF: fl.csrf}, fl.formTarget())
		return true
	}
	i.finish(w, r, fl)
	return true
}

// usable reports whether session s may complete ar for user: prompt=login
// and max_age want a proof more recent than the session's, unless the
// session began after the request was made (the login it led to); a
// login_hint naming someone else wants that user's password.
func (i *ssoStep) usable(ar *store.AuthRequest, s *store.Session, user *store.User) bool {
	if ar.LoginHint != "" {
		if hint, err := store.NormalizeUsername(ar.LoginHint); err == nil && hint != user.Username {
			return false
		}
	}
	// Strictly after: a session as old as the request, to the millisecond,
	// may be the one the request was made to escape.
	fresh := s.AuthTime.After(ar.CreatedAt)
	if slices.Contains(ar.Prompt, oidc.PromptLogin) && !fresh {
		return false
	}
	if ar.HasMaxAge && i.cfg.Now().Sub(s.AuthTime) > ar.MaxAge && !fresh {
		return false
	}
	return true
}

// startSession starts the browser session of a login whose factors are
// all proven, bound to the browser's device cookie for the user (set now
// when it has none), unless the flow started one already. A session that
// cannot be started is logged: the login goes on without one.
func (i *deps) startSession(w http.ResponseWriter, r *http.Request, fl *loginFlow) {
	if i.sessions == nil || fl.ar == nil {
		return
	}
	ctx := r.Context()
	if fl.did(stepSession) {
		// Started by this flow in an earlier request: the cookie is back.
		if s, u, err := i.sessions.CurrentUser(r); err == nil && u.ID == fl.user.ID {
			fl.session = s
		}
		return
	}
	// The session the browser holds, if any, is replaced: its cookie is
	// overwritten below, and the session ends once the new one started.
	// One the browser presents without being its own (a copied cookie)
	// is not this browser's to end.
	replaced, replacedUser, err := i.sessions.CurrentUser(r)
	if err != nil && !errors.Is(err, browsersession.ErrNoSession) {
		i.log.ErrorContext(ctx, "reading the browser session a login replaces failed", "error", err)
	}
	device := fl.device
	if device == "" {
		var ok bool
		if device, ok = i.guard.DeviceOf(r, fl.user.Username); !ok {
			device = i.guard.SetDeviceCookie(w, attempts.Attempt{Account: fl.user.Username})
		}
		fl.device = device
	}
	s, err := i.sessions.Start(w, r, fl.user.ID, fl.amr, i.cfg.Now(), device)
	if err != nil {
		i.log.ErrorContext(ctx, "starting a browser session failed", "error", err)
		return
	}
	if replaced != nil {
		i.endReplaced(ctx, replaced, replacedUser)
	}
	// A session the trail does not know of is not used (the recorder
	// logged why).
	if i.events.Record(ctx, audit.Event{Type: audit.SessionStarted, Subject: fl.user.ID, Username: fl.user.Username,
		ClientID: fl.clientID(), Target: s.ID}) != nil {
		i.sessions.Clear(w)
		return
	}
	fl.session = s
	fl.done(stepSession)
}

// endReplaced ends session s of user u, whose cookie a login in the same
// browser just replaced, and records it (reason "replaced"). Unlike a
// sign-out (package endsession) it revokes nothing and tells no app: the
// apps signed in within it keep their tokens, as they would had the
// session idled out. A failure is logged: the login goes on.
func (i *deps) endReplaced(ctx context.Context, s *store.Session, u *store.User) {
	if _, err := i.st.EndSession(ctx, s.ID, func(store.SessionGrant) bool { return true }); err != nil {
		i.log.ErrorContext(ctx, "ending the browser session a login replaced failed", "error", err)
		return
	}
	// The recorder logs a failure to record.
	_ = i.events.Record(ctx, audit.Event{Type: audit.SessionEnded, Subject: s.UserID, Username: u.Username,
		Target: s.ID, Reason: "replaced"})
}

// finishLogin ends a login whose factors are proven: a third-party app's
// consent page when the user has not allowed it the scopes, else the
// code (completeLogin).
func (i *Flow) finishLogin(w http.ResponseWriter, r *http.Request, fl *loginFlow) {
	if devicepages.IsDeviceLogin(fl.ar) {
		i.completeLogin(w, r, fl)
		return
	}
	ctx := r.Context()
	need, client, err := i.sso.needsConsent(ctx, fl)
	if err != nil {
		i.log.ErrorContext(ctx, "reading an app's consent failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	if need {
		i.sso.askConsent(w, r, fl, client)
		return
	}
	i.completeLogin(w, r, fl)
}

// needsConsent reports whether fl's app is third-party and its user has
// not allowed it every scope it asks for (or it asks again, prompt=consent).
func (i *ssoStep) needsConsent(ctx context.Context, fl *loginFlow) (bool, *store.Client, error) {
	client, err := i.st.ClientByID(ctx, fl.ar.ClientID)
	if err != nil {
		return false, nil, err
	}
	if !client.ThirdParty || fl.consented {
		return false, client, nil
	}
	if slices.Contains(fl.ar.Prompt, oidc.PromptConsent) {
		return true, client, nil
	}
	allowed, err := i.st.ConsentedScopes(ctx, fl.user.ID, client.ID)
	if err != nil {
		return false, nil, err
	}
	for _, sc := range fl.ar.Scopes {
		if !slices.Contains(allowed, sc) {
			return true, client, nil
		}
	}
	return false, client, nil
}

// askConsent shows the consent page. Its post is answered from the
// browser session (the login just started one), so there is nothing to
// keep: without a session no consent can be given.
func (i *ssoStep) askConsent(w http.ResponseWriter, r *http.Request, fl *loginFlow, client *store.Client) {
	if slices.Contains(fl.ar.Prompt, oidc.PromptNone) {
		i.errorRedirect(w, r, fl.ar, errConsentRequired().WithDescription("the user has not allowed the app these scopes"))
		return
	}
	if fl.session == nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	page := consentPage{Title: titleConsent, Client: client.Title(), Username: fl.user.Username, AuthRequestID: fl.id, CSRF: fl.csrf}
	for _, sc := range fl.ar.Scopes {
		page.Scopes = append(page.Scopes, scopeLine{Name: sc, Description: devicepages.ScopeDescription(sc)})
	}
	i.render(w, http.StatusOK, "consent.html", page, fl.formTarget())
}

// sessionForm opens what the single sign-on forms post: the pending auth
// request and the browser's session, still usable for it. It writes the
// refusal otherwise.
func (i *ssoStep) sessionForm(w http.ResponseWriter, r *http.Request, title string) (*loginFlow, bool) {
	ctx, id := r.Context(), r.PostForm.Get("authRequestID")
	if id == "" || len(id) > maxAuthRequestIDLen {
		i.message(w, http.StatusBadRequest, title, msgIncomplete)
		return nil, false
	}
	ar, err := i.openUnfinished(ctx, id)
	switch {
	case errors.Is(err, errRequestExpired):
		i.message(w, http.StatusBadRequest, title, msgExpired)
		return nil, false
	case errors.Is(err, errStepIncomplete):
		i.message(w, http.StatusBadRequest, title, msgIncomplete)
		return nil, false
	case err != nil:
		i.log.ErrorContext(ctx, "opening an auth request failed", "error", err)
		i.message(w, http.StatusInternalServerError, title, msgInternal)
		return nil, false
	}
	if i.sessions == nil || devicepages.IsDeviceLogin(ar) {
		i.message(w, http.StatusBadRequest, title, msgIncomplete)
		return nil, false
	}
	s, user, err := i.sessions.CurrentUser(r)
	switch {
	case errors.Is(err, browsersession.ErrNoSession):
		i.message(w, http.StatusBadRequest, title, msgSessionGone)
		return nil, false
	case err != nil:
		i.log.ErrorContext(ctx, "reading a browser session failed", "error", err)
		i.message(w, http.StatusInternalServerError, title, msgInternal)
		return nil, false
	case !i.usable(ar, s, user):
		i.message(w, http.StatusBadRequest, title, msgSessionGone)
		return nil, false
	}
	return &loginFlow{id: id, ar: ar, csrf: web.Token(r), user: user, amr: s.AMR, session: s, authTime: s.AuthTime}, true
}

// submitContinue is the "Continue as" page's button.
func (i *ssoStep) submitContinue(w http.ResponseWriter, r *http.Request) {
	fl, ok := i.sessionForm(w, r, titleContinue)
	if !ok {
		return
	}
	i.finish(w, r, fl)
}

// submitConsent is the consent page's answer: allowed, the consent is
// kept and the login completes; denied, the app gets access_denied.
func (i *ssoStep) submitConsent(w http.ResponseWriter, r *http.Request) {
	fl, ok := i.sessionForm(w, r, titleConsent)
	if !ok {
		return
	}
	ctx := r.Context()
	if r.PostForm.Get("decision") != "allow" {
		i.errorRedirect(w, r, fl.ar, oidc.ErrAccessDenied().WithDescription("the user did not allow the app access"))
		return
	}
	if err := i.st.GrantConsent(ctx, fl.user.ID, fl.ar.ClientID, fl.ar.Scopes); err != nil {
		i.log.ErrorContext(ctx, "storing a consent failed", "error", err)
		i.message(w, http.StatusInternalServerError, titleConsent, msgInternal)
		return
	}
	if err := i.events.Record(ctx, audit.Event{Type: audit.ConsentGranted, Subject: fl.user.ID, Username: fl.user.Username,
		ClientID: fl.ar.ClientID}); err != nil {
		i.message(w, http.StatusInternalServerError, titleConsent, msgInternal)
		return
	}
	fl.consented = true
	i.finish(w, r, fl)
}

// clientTitle is what pages call an app: its display name, or its id.
func (i *deps) clientTitle(ctx context.Context, id string) string {
	if c, err := i.st.ClientByID(ctx, id); err == nil {
		return c.Title()
	}
	return id
}

// errorRedirect sends the browser back to the app with an error (RFC 6749
// §4.1.2.1), the request's state and the issuer (RFC 9207).
func (i *deps) errorRedirect(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, e *oidc.Error) {
	i.log.InfoContext(r.Context(), "authorization refused", "client_id", ar.ClientID, "error", string(e.ErrorType))
	e.State = ar.State
	i.authResponse(w, r, ar, e)
}
