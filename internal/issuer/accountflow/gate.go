package accountflow

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/browsersession"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// The session gate. GET /account without a usable browser session is sent
// through the provider's login for the account page's app (AppID) and
// comes back through CallbackPath; a post without one is refused.

// Messages of the gate.
const (
	msgSessionGone  = "Your sign-in session has ended. Open your account page again to sign in."
	msgLoginUnknown = "This sign-in could not be verified. Open your account page again."
	msgLoginRefused = "You did not sign in. Open your account page again to try once more."
)

// stateTTL is how long the account page's login may take: the auth
// request's own limit (issuer.AuthRequestTTL).
const stateTTL = 10 * time.Minute

// stateCookie names the cookie that holds the state of the account page's
// login: a random value the callback must be given back, so that only the
// browser that began the login is sent on by its end.
func (d *deps) stateCookie() string { return web.CookieName("nsauth_account_state", d.cfg.Secure) }

// account returns the signed-in request's account, or answers: a GET
// without a session goes to the login, a post without one is refused
// (its form is of a session that ended, or of none). A post's CSRF token
// is the one the form guard checked; a page's is the browser's cookie.
func (d *deps) account(w http.ResponseWriter, r *http.Request) (*account, bool) {
	s, u, err := d.cfg.Sessions.CurrentUser(r)
	switch {
	case errors.Is(err, browsersession.ErrNoSession) && r.Method == http.MethodGet:
		d.toLogin(w, r)
		return nil, false
	case errors.Is(err, browsersession.ErrNoSession):
		d.message(w, http.StatusBadRequest, msgSessionGone)
		return nil, false
	case err != nil:
		d.fail(w, r, "reading the browser session", err)
		return nil, false
	}
	a := &account{session: s, user: u}
	if r.Method == http.MethodGet {
		a.csrf = d.cfg.CSRF.Cookie(w, r)
	} else {
		a.csrf = web.Token(r)
	}
	return a, true
}

// showAccount is GET /account.
func (g *gate) showAccount(w http.ResponseWriter, r *http.Request) {
	a, ok := g.account(w, r)
	if !ok {
		return
	}
	g.show(w, r, a, view{})
}

// toLogin sends the browser to the authorize endpoint for the account
// page's app, with a fresh state in a cookie of its own.
func (d *deps) toLogin(w http.ResponseWriter, r *http.Request) { d.toLoginWith(w, r, nil) }

// signInAgain is GET /account/login: the other way to confirm it's you,
// for every user (one whose only factor is a passkey, one who signs in
// through a connector): the login again, whatever the session
// (prompt=login), for the session's user (login_hint). The login starts
// a new session, with its own proof, which replaces this one.
func (g *gate) signInAgain(w http.ResponseWriter, r *http.Request) {
	extra := url.Values{"prompt": {"login"}}
	if _, u, err := g.cfg.Sessions.CurrentUser(r); err == nil {
		extra.Set("login_hint", u.Username)
	}
	g.toLoginWith(w, r, extra)
}

// toLoginWith is toLogin with extra authorization parameters.
func (d *deps) toLoginWith(w http.ResponseWriter, r *http.Request, extra url.Values) {
	if err := d.ensureApp(r); err != nil {
		d.fail(w, r, "registering the account page's app", err)
		return
	}
	state := store.RandomToken(32)
	http.SetCookie(w, &http.Cookie{Name: d.stateCookie(), Value: state, Path: "/", MaxAge: int(stateTTL / time.Second),
		HttpOnly: true, Secure: d.cfg.Secure, SameSite: http.SameSiteLaxMode})
	// The code the login ends with is never redeemed: its verifier is
	// thrown away, so nobody can.
	challenge := sha256.Sum256([]byte(store.RandomToken(32)))
	q := url.Values{
		"client_id":             {AppID},
		"response_type":         {"code"},
		"scope":                 {"openid"},
		"redirect_uri":          {d.cfg.Issuer + CallbackPath},
		"state":                 {state},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(challenge[:])},
		"code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		q[k] = v
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, d.cfg.Issuer+d.cfg.AuthorizePath+"?"+q.Encode(), http.StatusSeeOther)
}

// appCheckEvery is how often ensureApp looks again: an administrator may
// have deleted the app (nsauth apps delete), and a flood of logins begun
// must not cost a write each.
const appCheckEvery = time.Minute

// ensureApp registers the account page's app unless it exists: a
// confidential, first-party app whose only redirect URI is the callback
// and whose secret nobody knows. An existing one is left as it is.
func (d *deps) ensureApp(r *http.Request) error {
	now := d.cfg.Now()
	if last := d.appChecked.Load(); last != 0 && now.Sub(time.Unix(0, last)) < appCheckEvery {
		return nil
	}
	created, err := d.st.EnsureClient(r.Context(), &store.Client{ID: AppID, DisplayName: "Your account",
		SecretHash: store.HashSecret(store.RandomToken(32)), RedirectURIs: []string{d.cfg.Issuer + CallbackPath},
		Scopes: []string{"openid"}, GrantTypes: []string{"authorization_code"}})
	if err != nil {
		return err
	}
	// An app appears in `nsauth apps list`: the trail says where it came
	// from. A failure to record it is the recorder's to log.
	if created {
		_ = d.cfg.Events.Record(r.Context(), audit.Event{Type: audit.AppAdded, ClientID: AppID, Reason: "account_page"})
	}
	d.appChecked.Store(now.UnixNano())
	return nil
}

// callback is where the account page's login ends: with the state this
// browser holds, it goes on to the account page (the login started the
// session); otherwise it stops.
func (g *gate) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, err := r.Cookie(g.stateCookie())
	sent := q.Get("state")
	if err != nil || !web.IsRandomToken(c.Value, 32) || subtle.ConstantTimeCompare([]byte(c.Value), []byte(sent)) != 1 {
		g.message(w, http.StatusBadRequest, msgLoginUnknown)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: g.stateCookie(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: g.cfg.Secure,
		SameSite: http.SameSiteLaxMode})
	if q.Get("code") == "" {
		g.message(w, http.StatusForbidden, msgLoginRefused)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, Path, http.StatusSeeOther)
}
