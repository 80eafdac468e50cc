package connectorflow

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/connector"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// An enrolment link (nsauth users enrol-link NAME) asks its holder for the
// user's password before a second factor can be added. A user a connector
// created has no password: on the link's page they sign in with a
// connector they are bound to instead, and the link and that sign-in
// together stand where the link and the password stand for others.
//
// The link's secret is never stored: across the upstream it waits in a
// cookie of the browser that opened the link (HttpOnly, SameSite=Lax, as
// long as a pending sign-in), and the pending sign-in only says it is for
// a link. At the callback the connector's identity must be bound to the
// link's user; then the link is used up and the flow goes on to enrolment.

// linkCookie names the cookie that holds an enrolment link's secret while
// its sign-in waits at the upstream.
const linkCookie = "nsauth_enrol_link"

const (
	titleEnrol     = "Set up a second factor"
	msgLinkGone    = "This enrolment link is not valid: it has expired, was already used or was replaced by a newer one. Ask your administrator for a new one."
	msgLinkAccount = "This sign-in is not the account the enrolment link is for. Sign in with the account the link names."
)

func (f *Flow) secure() bool { return strings.HasPrefix(f.cfg.Issuer, "https://") }

// linkUser is the enabled user of the live enrolment link link, or nil
// after writing the page that says it is not valid.
func (f *Flow) linkUser(w http.ResponseWriter, ctx context.Context, link string) *store.User {
	if !web.IsRandomToken(link, 32) {
		f.cfg.Pages.Message(w, http.StatusBadRequest, titleEnrol, msgLinkGone)
		return nil
	}
	u, err := f.cfg.Store.EnrolLinkUser(ctx, link)
	switch {
	case err == nil && !u.Disabled():
		return u
	case err == nil, errors.Is(err, store.ErrNotFound):
		f.cfg.Pages.Message(w, http.StatusBadRequest, titleEnrol, msgLinkGone)
	default:
		f.cfg.Log.ErrorContext(ctx, "reading an enrolment link failed", "error", err)
		f.cfg.Pages.Message(w, http.StatusInternalServerError, titleEnrol, web.MsgInternal)
	}
	return nil
}

// holdLink keeps the link's secret in the browser while its sign-in
// waits upstream.
func (f *Flow) holdLink(w http.ResponseWriter, link string) {
	http.SetCookie(w, &http.Cookie{Name: web.CookieName(linkCookie, f.secure()), Value: link, Path: "/",
		MaxAge: int(PendingTTL.Seconds()), HttpOnly: true, Secure: f.secure(), SameSite: http.SameSiteLaxMode})
}

// takeLink reads the held link and clears the cookie.
func (f *Flow) takeLink(w http.ResponseWriter, r *http.Request) string {
	name := web.CookieName(linkCookie, f.secure())
	ck, err := r.Cookie(name)
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: f.secure(), SameSite: http.SameSiteLaxMode})
	if err != nil {
		return ""
	}
	return ck.Value
}

// useLink ends the upstream sign-in of an enrolment link: the identity
// must be bound to the link's user, who must still hold the link. It
// returns the user, with the link used up, or nil after answering.
func (f *Flow) useLink(w http.ResponseWriter, r *http.Request, c *store.Connector, id connector.Identity) *store.User {
	ctx, link := r.Context(), f.takeLink(w, r)
	user := f.linkUser(w, ctx, link)
	if user == nil {
		return nil
	}
	bound, err := f.cfg.Store.IdentityBySubject(ctx, c.Name, id.Subject)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		f.cfg.Log.ErrorContext(ctx, "reading an identity failed", "connector", c.Name, "error", err)
		f.cfg.Pages.Message(w, http.StatusInternalServerError, titleEnrol, web.MsgInternal)
		return nil
	}
	if err != nil || bound.UserID != user.ID {
		_ = f.recordRefusal(ctx, c.Name, reasonNotLinked, user)
		f.cfg.Pages.Message(w, http.StatusForbidden, titleEnrol, msgLinkAccount)
		return nil
	}
	// Of two browsers at once, one uses the link.
	if err := f.cfg.Store.TakeEnrolLink(ctx, link, user.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			f.cfg.Pages.Message(w, http.StatusBadRequest, titleEnrol, msgLinkGone)
			return nil
		}
		f.cfg.Log.ErrorContext(ctx, "using an enrolment link failed", "error", err)
		f.cfg.Pages.Message(w, http.StatusInternalServerError, titleEnrol, web.MsgInternal)
		return nil
	}
	if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.EnrolLinkUsed, Subject: user.ID, Username: user.Username, Target: c.Name}); err != nil {
		f.cfg.Pages.Message(w, http.StatusInternalServerError, titleEnrol, web.MsgInternal)
		return nil
	}
	return user
}
