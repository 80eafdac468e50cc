package cli_test

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestUserLinksThroughTheAdminAPI: from a directory holding only an
// administrator's `nsauth login`, `nsauth users invite` through --api-url
// creates the user and prints a link valid for the server's
// NSAUTH_LINK_TTL, audited with the administrator as actor; the link works
// once against `nsauth serve` (password, then the account page, signed
// in); a non-admin is refused; the link is in no server log line.
func TestUserLinksThroughTheAdminAPI(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		serverEnv := storeEnv(t, b)
		serverEnv["NSAUTH_LINK_TTL"] = "2h"
		serverURL, logs := startServeLogs(t, serverEnv)
		waitReady(t, serverURL)
		st := openServedStore(t, serverEnv)
		admin, err := st.UserByUsername(ctx, "admin")
		if err != nil {
			t.Fatal(err)
		}
		// The first-start administrator is in the group admin already.
		if in, err := st.InGroup(ctx, admin.ID, "admin"); err != nil || !in {
			t.Fatalf("the first administrator in the group admin: %v, %v; want true", in, err)
		}
		e := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), apiURL: serverURL, counts: map[string]int{}}
		loginAs(t, e, "admin", biAdminPassword)
		r := e.run(ctx, nil, "users", "invite", "dave", "--name", "Dave", "--api-url", serverURL)
		if r.code != 0 || !strings.Contains(r.errOut, `Created user "dave" without a password.`) || !strings.Contains(r.errOut, `Invite link for "dave" (ref `) {
			t.Fatalf("invite through the API: exit %d\n%s%s", r.code, r.out, r.errOut)
		}
		link := strings.TrimSpace(r.out)
		u, err := url.Parse(link)
		if err != nil || !strings.HasPrefix(link, defaultIssuer(serverURL)+"/link?link=") {
			t.Fatalf("printed %q", r.out)
		}
		secret := u.Query().Get("link")
		l, err := st.LinkBySecret(ctx, secret)
		if err != nil || time.Until(l.ExpiresAt) > 2*time.Hour || time.Until(l.ExpiresAt) < 110*time.Minute {
			t.Fatalf("the link under the server's NSAUTH_LINK_TTL=2h: %+v, %v", l, err)
		}
		events, err := st.AuditEvents(ctx, store.AuditFilter{Types: []audit.Type{audit.LinkCreated}})
		if err != nil || len(events) != 1 || events[0].Actor != "admin" || events[0].Target != l.ID {
			t.Fatalf("link.created events %+v, %v", events, err)
		}

		// The invited user uses it in a browser.
		br := issuertest.NewBrowser(t)
		first := br.Open(t, link)
		if loc, err := issuertest.RedirectOf(first); err != nil || loc.String() != "/link" {
			t.Fatalf("opening the link: %v %v", loc, err)
		}
		page := br.Open(t, defaultIssuer(serverURL)+"/link") // where the link led, with its cookie
		if page.Response.StatusCode != http.StatusOK || !strings.Contains(page.Body, `action="/link"`) {
			t.Fatalf("the link's page: HTTP %d\n%s", page.Response.StatusCode, page.Body)
		}
		offer := br.Post(t, page, "/link", url.Values{"password": {"dave-password-1"}, "password2": {"dave-password-1"}})
		if !strings.Contains(offer.Body, `action="/link/later"`) {
			t.Fatalf("after the password: HTTP %d\n%s", offer.Response.StatusCode, offer.Body)
		}
		done := br.Post(t, offer, "/link/later", nil)
		if loc, err := issuertest.RedirectOf(done); err != nil || loc.Path != "/account" {
			t.Fatalf("the end of the link: %v %v", loc, err)
		}
		if again := issuertest.NewBrowser(t).Open(t, link); again.Response.StatusCode != http.StatusBadRequest {
			t.Fatalf("the used link again: HTTP %d", again.Response.StatusCode)
		}

		// dave is no administrator.
		dave := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), apiURL: serverURL, counts: map[string]int{}}
		loginAs(t, dave, "dave", "dave-password-1")
		if r := dave.run(ctx, nil, "users", "reset-link", "admin", "--api-url", serverURL); r.code != cli.ExitFailure || r.out != "" {
			t.Fatalf("a non-admin's reset-link: exit %d\n%s%s", r.code, r.out, r.errOut)
		}
		if strings.Contains(logs.String(), secret) {
			t.Fatal("the server's log holds the link")
		}
	})
}
