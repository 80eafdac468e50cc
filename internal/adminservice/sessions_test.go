package adminservice_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// signedIn stores a live browser session of a user, within which each of
// apps got a grant, and returns its id.
func signedIn(t *testing.T, st *store.Store, u *store.User, apps ...string) string {
	t.Helper()
	now := time.Now()
	s := &store.Session{UserID: u.ID, Browser: "device-" + u.Username, AuthTime: now, AMR: []string{"pwd"}, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateSession(context.Background(), s, store.RandomToken(32)); err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		if err := st.AddSessionGrant(context.Background(), store.SessionGrant{SessionID: s.ID, GrantID: s.ID + "-" + a, ClientID: a}); err != nil {
			t.Fatal(err)
		}
	}
	return s.ID
}

// TestSessionsOverHTTP: sessions listed (every user's, one user's) without
// the browser's device id, one ended with the grants within it, then every
// session of a user; each end audited with the caller as actor; malformed
// requests are InvalidArgument naming the field.
func TestSessionsOverHTTP(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := serveOverHTTP(t, b)
		ctx := context.Background()
		for _, a := range []string{"web", "wiki"} {
			if _, err := h.api.CreateApp(ctx, req(&adminv1.CreateAppRequest{Name: a, Settings: &adminv1.AppSettings{RedirectUris: []string{"https://" + a + ".example.com/cb"}}})); err != nil {
				t.Fatal(err)
			}
		}
		var users []*store.User
		for _, name := range []string{"bob", "carol"} {
			u := &store.User{Username: name, PasswordHash: "x"}
			if err := h.st.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			users = append(users, u)
		}
		bobFirst := signedIn(t, h.st, users[0], "web", "wiki")
		bobSecond := signedIn(t, h.st, users[0])
		carols := signedIn(t, h.st, users[1], "web")

		ids := func(username string) []string {
			t.Helper()
			res, err := h.api.ListSessions(ctx, req(&adminv1.ListSessionsRequest{Username: username}))
			if err != nil {
				t.Fatal(err)
			}
			noSecret(t, "ListSessions", res.Msg, "device-bob", "device-carol")
			var out []string
			for _, s := range res.Msg.GetSessions() {
				out = append(out, s.GetId())
				if s.GetId() == bobFirst && (s.GetUsername() != "bob" || !slices.Equal(s.GetApps(), []string{"web", "wiki"})) {
					t.Errorf("bob's first session: %v", s)
				}
			}
			slices.Sort(out)
			return out
		}
		sorted := func(l ...string) []string { slices.Sort(l); return l }
		if got := ids(""); !slices.Equal(got, sorted(bobFirst, bobSecond, carols)) {
			t.Errorf("every session: %v", got)
		}
		if got := ids("Bob"); !slices.Equal(got, sorted(bobFirst, bobSecond)) {
			t.Errorf("bob's sessions: %v", got)
		}

		refusals := []struct {
			name string
			call func() error
			code connect.Code
			want string
		}{
			{"unknown user listed", func() error {
				_, err := h.api.ListSessions(ctx, req(&adminv1.ListSessionsRequest{Username: "nobody"}))
				return err
			}, connect.CodeNotFound, `no user "nobody"`},
			{"malformed username", func() error {
				_, err := h.api.ListSessions(ctx, req(&adminv1.ListSessionsRequest{Username: "bad name\x00"}))
				return err
			}, connect.CodeInvalidArgument, "username"},
			{"neither id nor username", func() error {
				_, err := h.api.EndSessions(ctx, req(&adminv1.EndSessionsRequest{}))
				return err
			}, connect.CodeInvalidArgument, "id or username"},
			{"both id and username", func() error {
				_, err := h.api.EndSessions(ctx, req(&adminv1.EndSessionsRequest{Id: bobFirst, Username: "bob"}))
				return err
			}, connect.CodeInvalidArgument, "not both"},
			{"unknown session", func() error {
				_, err := h.api.EndSessions(ctx, req(&adminv1.EndSessionsRequest{Id: "no-such-session"}))
				return err
			}, connect.CodeNotFound, `no session "no-such-session"`},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.name, tc.call(), tc.code, tc.want) })
		}

		res, err := h.api.EndSessions(ctx, req(&adminv1.EndSessionsRequest{Id: bobFirst}))
		if err != nil || res.Msg.GetEnded() != 1 || res.Msg.GetAppLoginsRevoked() != 2 || res.Msg.GetUsername() != "bob" {
			t.Fatalf("EndSessions(id) = %v, %v", res, err)
		}
		if grants, _ := h.st.SessionGrants(ctx, bobFirst); len(grants) != 2 || !grants[0].Revoked || !grants[1].Revoked {
			t.Errorf("grants after the end: %+v", grants)
		}
		if res, err := h.api.EndSessions(ctx, req(&adminv1.EndSessionsRequest{Id: bobFirst})); err != nil || res.Msg.GetEnded() != 0 {
			t.Errorf("ended again: %v, %v", res, err)
		}
		if res, err := h.api.EndSessions(ctx, req(&adminv1.EndSessionsRequest{Username: "bob"})); err != nil || res.Msg.GetEnded() != 1 {
			t.Errorf("EndSessions(bob) = %v, %v", res, err)
		}
		if res, err := h.api.EndSessions(ctx, req(&adminv1.EndSessionsRequest{Username: "bob"})); err != nil || res.Msg.GetEnded() != 0 {
			t.Errorf("EndSessions(bob) again = %v, %v", res, err)
		}
		if got := ids(""); !slices.Equal(got, []string{carols}) {
			t.Errorf("after the ends: %v", got)
		}
		trail := h.events(t, "session.revoked")
		if want := []string{"session.revoked " + bobFirst + " ", "session.revoked  all_sessions"}; strings.Join(trail, "|") != strings.Join(want, "|") {
			t.Errorf("events %q, want %q", trail, want)
		}
	})
}
