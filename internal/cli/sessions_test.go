package cli_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func runSessions(env map[string]string, args ...string) usersResult {
	return runServerCommand(env, nil, append([]string{"sessions"}, args...)...)
}

// listedSession is a session as `sessions list --json` prints it.
type listedSession struct {
	ID       string   `json:"id"`
	Username string   `json:"username"`
	AMR      []string `json:"amr"`
	Apps     []string `json:"apps"`
}

// signedIn stores a live browser session of user, within which each of
// apps got a grant, and returns the session's id.
func signedIn(t *testing.T, st *store.Store, user *store.User, apps ...string) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	s := &store.Session{UserID: user.ID, Browser: "device-" + user.Username, AuthTime: now, AMR: []string{"pwd"}, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateSession(ctx, s, store.RandomToken(32)); err != nil {
		t.Fatal(err)
	}
	for i, a := range apps {
		if err := st.AddSessionGrant(ctx, store.SessionGrant{SessionID: s.ID, GrantID: s.ID + "-grant-" + a, ClientID: a, Offline: i == 0}); err != nil {
			t.Fatal(err)
		}
	}
	return s.ID
}

func addUser(t *testing.T, st *store.Store, name string) *store.User {
	t.Helper()
	u := &store.User{Username: name, PasswordHash: "x"}
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSessionsCommand: an operator lists browser sessions (all, or one
// user's), ends one, then every session of a user; each end revokes the
// grants within and is audited; no cookie or browser id is shown.
func TestSessionsCommand(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		ctx := context.Background()
		mustApps(t, env, "add", "web", "--redirect-uri", "https://web.example.com/cb")
		mustApps(t, env, "add", "wiki", "--redirect-uri", "https://wiki.example.com/cb")
		alice, bob := addUser(t, st, "alice"), addUser(t, st, "bob")
		aliceFirst := signedIn(t, st, alice, "web", "wiki")
		aliceSecond := signedIn(t, st, alice)
		bobs := signedIn(t, st, bob, "web")

		list := func(args ...string) []listedSession {
			t.Helper()
			r := runSessions(env, append([]string{"list", "--json"}, args...)...)
			if r.code != 0 {
				t.Fatalf("sessions list %q: exit %d\n%s", args, r.code, r.errOut)
			}
			var l []listedSession
			if err := json.Unmarshal([]byte(r.out), &l); err != nil {
				t.Fatalf("sessions list --json %q: %v", r.out, err)
			}
			return l
		}
		ids := func(l []listedSession) []string {
			var out []string
			for _, s := range l {
				out = append(out, s.ID)
			}
			slices.Sort(out)
			return out
		}
		sorted := func(ids ...string) []string { slices.Sort(ids); return ids }

		if got := ids(list()); !slices.Equal(got, sorted(aliceFirst, aliceSecond, bobs)) {
			t.Errorf("every session: %v", got)
		}
		l := list("--user", "Alice")
		if got := ids(l); !slices.Equal(got, sorted(aliceFirst, aliceSecond)) {
			t.Errorf("alice's sessions: %v", got)
		}
		for _, s := range l {
			if s.ID == aliceFirst && (s.Username != "alice" || !slices.Equal(s.Apps, []string{"web", "wiki"}) || !slices.Equal(s.AMR, []string{"pwd"})) {
				t.Errorf("alice's first session: %+v", s)
			}
		}
		table := runSessions(env, "list")
		if !regexpLine(table.out, aliceFirst, "alice", "pwd", "web,wiki") || !regexpLine(table.out, bobs, "bob", "web") {
			t.Errorf("sessions list:\n%s", table.out)
		}
		for _, out := range []string{table.out, runSessions(env, "list", "--json").out} {
			if strings.Contains(out, "device-alice") {
				t.Errorf("a listing shows the browser's device id:\n%s", out)
			}
		}

		tests := []struct {
			name string
			args []string
			want string
		}{
			{"unknown user listed", []string{"list", "--user", "nobody"}, `no user "nobody"`},
			{"unknown session", []string{"revoke", "no-such-session"}, "no session"},
			{"neither id nor user", []string{"revoke"}, "takes a session id"},
			{"both id and user", []string{"revoke", aliceFirst, "--user", "alice"}, "not both"},
			{"unknown user revoked", []string{"revoke", "--user", "nobody"}, `no user "nobody"`},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if r := runSessions(env, tc.args...); r.code == 0 || !strings.Contains(r.errOut, tc.want) {
					t.Errorf("sessions %q: exit %d, want %q:\n%s", tc.args, r.code, tc.want, r.errOut)
				}
			})
		}

		if r := runSessions(env, "revoke", aliceFirst); r.code != 0 || !strings.Contains(r.errOut, "revoked the tokens of 2 app login") {
			t.Fatalf("revoke: exit %d\n%s", r.code, r.errOut)
		}
		if s, err := st.SessionByID(ctx, aliceFirst); err != nil || s.EndedAt.IsZero() {
			t.Errorf("after revoke: %+v, %v", s, err)
		}
		grants, err := st.SessionGrants(ctx, aliceFirst)
		if err != nil || len(grants) != 2 || !grants[0].Revoked || !grants[1].Revoked {
			t.Errorf("grants after revoke (offline ones too): %+v, %v", grants, err)
		}
		if got := ids(list()); !slices.Equal(got, sorted(aliceSecond, bobs)) {
			t.Errorf("after revoke: %v", got)
		}
		if r := runSessions(env, "revoke", aliceFirst); r.code != 0 || !strings.Contains(r.errOut, "already ended") {
			t.Errorf("revoked again: exit %d\n%s", r.code, r.errOut)
		}

		if r := runSessions(env, "revoke", "--user", "alice"); r.code != 0 || !strings.Contains(r.errOut, "Ended 1 session") {
			t.Fatalf("revoke --user: exit %d\n%s", r.code, r.errOut)
		}
		if got := ids(list()); !slices.Equal(got, []string{bobs}) {
			t.Errorf("after revoke --user alice: %v", got)
		}
		if r := runSessions(env, "revoke", "--user", "alice"); r.code != 0 || !strings.Contains(r.errOut, "no live session") {
			t.Errorf("revoke --user again: exit %d\n%s", r.code, r.errOut)
		}

		events, err := st.AuditEvents(ctx, store.AuditFilter{Types: []audit.Type{audit.SessionRevoked}})
		if err != nil {
			t.Fatal(err)
		}
		var trail []string
		for _, e := range events {
			trail = append(trail, e.Username+" "+e.Target+" "+e.Reason)
			if e.Actor != audit.OSUser() || e.Subject != alice.ID {
				t.Errorf("%+v: actor or subject", e)
			}
		}
		if want := []string{"alice " + aliceFirst + " ", "alice  all_sessions"}; !slices.Equal(trail, want) {
			t.Errorf("events %q, want %q", trail, want)
		}
	})
}

// TestAppsConsentsCommand: an operator lists what users allowed
// third-party apps and revokes one consent, which is audited.
func TestAppsConsentsCommand(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		ctx := context.Background()
		mustApps(t, env, "add", "partner", "--third-party", "--redirect-uri", "https://partner.example.com/cb")
		alice, bob := addUser(t, st, "alice"), addUser(t, st, "bob")
		if err := st.GrantConsent(ctx, alice.ID, "partner", []string{"openid", "profile"}); err != nil {
			t.Fatal(err)
		}
		if err := st.GrantConsent(ctx, bob.ID, "partner", []string{"openid"}); err != nil {
			t.Fatal(err)
		}

		var listed []struct {
			Username string   `json:"username"`
			ClientID string   `json:"client_id"`
			Scopes   []string `json:"scopes"`
		}
		if err := json.Unmarshal([]byte(mustApps(t, env, "consents", "list", "--user", "alice", "--json").out), &listed); err != nil ||
			len(listed) != 1 || listed[0].Username != "alice" || listed[0].ClientID != "partner" || !slices.Equal(listed[0].Scopes, []string{"openid", "profile"}) {
			t.Errorf("consents list --user alice --json: %+v, %v", listed, err)
		}
		table := mustApps(t, env, "consents", "list").out
		if !regexpLine(table, "alice", "partner", "openid profile") || !regexpLine(table, "bob", "partner", "openid") {
			t.Errorf("consents list:\n%s", table)
		}

		tests := []struct {
			name string
			args []string
			want string
		}{
			{"unknown app", []string{"consents", "revoke", "nobody", "--user", "alice"}, `no app "nobody"`},
			{"unknown user", []string{"consents", "revoke", "partner", "--user", "nobody"}, `no user "nobody"`},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if r := runApps(env, tc.args...); r.code == 0 || !strings.Contains(r.errOut, tc.want) {
					t.Errorf("apps %q: exit %d, want %q:\n%s", tc.args, r.code, tc.want, r.errOut)
				}
			})
		}

		mustApps(t, env, "consents", "revoke", "partner", "--user", "alice")
		if got, err := st.ConsentedScopes(ctx, alice.ID, "partner"); err != nil || len(got) != 0 {
			t.Errorf("alice's consent after revoke: %v, %v", got, err)
		}
		if got, _ := st.ConsentedScopes(ctx, bob.ID, "partner"); !slices.Equal(got, []string{"openid"}) {
			t.Errorf("bob's consent was touched: %v", got)
		}
		if r := runApps(env, "consents", "revoke", "partner", "--user", "alice"); r.code == 0 || !strings.Contains(r.errOut, "no consent") {
			t.Errorf("revoked twice: exit %d\n%s", r.code, r.errOut)
		}
		events, err := st.AuditEvents(ctx, store.AuditFilter{Types: []audit.Type{audit.ConsentRevoked}})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 1 || events[0].Username != "alice" || events[0].ClientID != "partner" || events[0].Actor != audit.OSUser() {
			t.Errorf("events: %+v", events)
		}
	})
}
