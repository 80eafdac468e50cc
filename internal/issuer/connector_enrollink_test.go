package issuer_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/connector/connectortest"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
)

// TestConnectorUserEnrolsByLink: under NSAUTH_MFA=required a user a
// connector created (no password) is sent to an enrolment link, whose page
// asks for the password they do not have. The link's page lets them sign
// in with the connector they are bound to instead: the link and that
// sign-in together lead to enrolment. Someone else's upstream account
// cannot use the link, and a link used up or missing its cookie gives
// nothing.
func TestConnectorUserEnrolsByLink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// subject signs in upstream; "" is the link user's own.
		subject string
		// dropCookie: the link's cookie is gone by the callback.
		dropCookie bool
		wantStatus int
		want       string
	}{
		{name: "the link's user, through their connector: enrolment", wantStatus: http.StatusOK, want: `action="/login/mfa/enroll"`},
		{name: "another upstream account: refused", subject: "someone-else", wantStatus: http.StatusForbidden, want: "not the account the enrolment link is for"},
		{name: "the link's cookie gone: refused", dropCookie: true, wantStatus: http.StatusBadRequest, want: "This enrolment link is not valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newConnectorHarness(t, func(c *issuer.Config) { c.RequireSecondFactor = true })
			fake := h.addOIDC(t, "corp", nil)
			pat := &store.User{Username: "pat"}
			if err := h.st.CreateUserWithIdentity(ctx, pat, &store.Identity{Connector: "corp", Subject: "pat-upstream"}); err != nil {
				t.Fatal(err)
			}
			u := connectortest.DefaultUser()
			u.Subject = "pat-upstream"
			fake.SetUser(u)

			// The sign-in is refused until a second factor is set up.
			if _, p := h.signIn(t, "corp", nil); p.Response.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "nsauth users enrol-link pat") {
				t.Fatalf("HTTP %d, want the enrolment refusal:\n%s", p.Response.StatusCode, p.Body)
			}

			token := store.RandomToken(32)
			if err := h.st.CreateEnrolLink(ctx, pat.ID, token, h.clock.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			b := issuertest.NewBrowser(t)
			page := b.Open(t, h.url+issuer.EnrolLinkPath+"?link="+url.QueryEscape(token))
			if page.Response.StatusCode != http.StatusOK || strings.Contains(page.Body, `name="password"`) ||
				!strings.Contains(page.Body, `value="corp">Continue with`) {
				t.Fatalf("the link's page of a password-less user: HTTP %d, want a Continue with button and no password:\n%s", page.Response.StatusCode, page.Body)
			}
			if tc.subject != "" {
				u.Subject = tc.subject
				fake.SetUser(u)
			}
			up := h.get(t, b, refreshTarget(t, b.Post(t, page, "/login/connector", url.Values{"connector": {"corp"}})))
			back, err := issuertest.RedirectOf(up)
			if err != nil {
				t.Fatalf("the upstream did not send the browser back: %v", err)
			}
			if tc.dropCookie {
				dropCookie(t, b, back, "nsauth_enrol_link")
			}
			got := h.get(t, b, back.String())
			if got.Response.StatusCode != tc.wantStatus || !strings.Contains(got.Body, tc.want) {
				t.Fatalf("callback: HTTP %d, want %d with %q:\n%s", got.Response.StatusCode, tc.wantStatus, tc.want, got.Body)
			}
			used := false
			events, _ := h.trail.records(t)
			for _, e := range events {
				used = used || (e.Type == audit.EnrolLinkUsed && e.Subject == pat.ID)
			}
			if used != (tc.wantStatus == http.StatusOK) {
				t.Fatalf("link used: %v, want %v", used, tc.wantStatus == http.StatusOK)
			}
		})
	}
}

// dropCookie removes the cookie named name from b's jar for u.
func dropCookie(t *testing.T, b *issuertest.Browser, u *url.URL, name string) {
	t.Helper()
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == name {
			b.Client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: "", Path: "/", MaxAge: -1}})
			return
		}
	}
	t.Fatalf("no cookie %s to drop", name)
}

// TestDirectoryUserEnrolsByLink: a password-less user bound to an LDAP
// connector proves themselves on the enrolment link's page with the
// directory's username and password; another directory account's right
// password is as wrong as a wrong one, and leaves the link unused.
func TestDirectoryUserEnrolsByLink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, username, password string
		wantStatus               int
		want                     string
	}{
		{name: "the link's user: enrolment", username: "pat.dir", password: "pat-directory-password", wantStatus: http.StatusOK, want: `action="/login/mfa/enroll"`},
		{name: "the link's user, wrong password", username: "pat.dir", password: "wrong", wantStatus: http.StatusUnauthorized, want: "Wrong username or password."},
		{name: "another account's right password", username: "eve.dir", password: "eve-directory-password", wantStatus: http.StatusUnauthorized, want: "Wrong username or password."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newConnectorHarness(t, func(c *issuer.Config) { c.RequireSecondFactor = true })
			h.addLDAP(t, "dir", nil)
			for _, p := range []struct{ user, dirName, password, subject string }{
				{"pat", "pat.dir", "pat-directory-password", "pat-sub"},
				{"eve", "eve.dir", "eve-directory-password", "eve-sub"},
			} {
				if err := h.st.CreateUserWithIdentity(ctx, &store.User{Username: p.user}, &store.Identity{Connector: "dir", Subject: p.subject}); err != nil {
					t.Fatal(err)
				}
				h.dir.add(p.dirName, p.password, p.subject)
			}
			pat, err := h.st.UserByUsername(ctx, "pat")
			if err != nil {
				t.Fatal(err)
			}
			token := store.RandomToken(32)
			if err := h.st.CreateEnrolLink(ctx, pat.ID, token, h.clock.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			b := issuertest.NewBrowser(t)
			page := b.Open(t, h.url+issuer.EnrolLinkPath+"?link="+url.QueryEscape(token))
			if page.Response.StatusCode != http.StatusOK || !strings.Contains(page.Body, `<option value="dir"`) || !strings.Contains(page.Body, `name="username" type="text"`) {
				t.Fatalf("the link's page of a directory user: HTTP %d, want the directory's form:\n%s", page.Response.StatusCode, page.Body)
			}
			got := b.Post(t, page, issuer.EnrolLinkPath, url.Values{"connector": {"dir"}, "username": {tc.username}, "password": {tc.password}})
			if got.Response.StatusCode != tc.wantStatus || !strings.Contains(got.Body, tc.want) {
				t.Fatalf("HTTP %d, want %d with %q:\n%s", got.Response.StatusCode, tc.wantStatus, tc.want, got.Body)
			}
			if _, err := h.st.EnrolLinkUser(ctx, token); (err == nil) != (tc.wantStatus != http.StatusOK) {
				t.Fatalf("after the post the link is live: %v; want live only when refused", err == nil)
			}
		})
	}
}
