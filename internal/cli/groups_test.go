package cli_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func runGroups(env map[string]string, args ...string) usersResult {
	return runServerCommand(env, nil, append([]string{"groups"}, args...)...)
}

// TestGroupsCommand runs nsauth groups and nsauth users groups offline on
// both backends: what they print, what they refuse (with the exit code of
// a usage error or a failure) and what they record, with the
// operating-system user as actor.
func TestGroupsCommand(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		ctx := context.Background()
		ok := func(r usersResult, what string) usersResult {
			t.Helper()
			if r.code != 0 {
				t.Fatalf("%s: exit %d\n%s", what, r.code, r.errOut)
			}
			return r
		}
		ok(runUsers(env, strings.NewReader("alice-password\n"), "add", "alice"), "users add")

		added := ok(runGroups(env, "add", "Ops", "--description", "On-call engineers"), "groups add")
		if added.errOut != "Created the group \"ops\".\n" || added.out != "" {
			t.Fatalf("groups add printed %q, %q", added.out, added.errOut)
		}
		ok(runGroups(env, "add", "sre"), "groups add sre")

		changed := ok(runUsers(env, nil, "groups", "ALICE", "--add", "ops,sre", "--add", "sre"), "users groups --add")
		if changed.errOut != "\"alice\" is now in the groups ops, sre.\n" {
			t.Fatalf("users groups --add said %q", changed.errOut)
		}
		if shown := ok(runUsers(env, nil, "groups", "alice"), "users groups"); shown.out != "ops\nsre\n" {
			t.Fatalf("users groups printed %q", shown.out)
		}

		list := ok(runGroups(env, "list"), "groups list")
		if !regexpLine(list.out, "NAME", "MEMBERS", "DESCRIPTION", "CREATED") || !regexpLine(list.out, "ops", "1", "On-call engineers") || !regexpLine(list.out, "sre", "1", "-") {
			t.Fatalf("groups list:\n%s", list.out)
		}
		var listed []struct {
			Name        string `json:"name"`
			Description string `json:"description"`
			Members     int    `json:"members"`
		}
		if err := json.Unmarshal([]byte(ok(runGroups(env, "list", "--json"), "groups list --json").out), &listed); err != nil || len(listed) != 2 ||
			listed[0].Name != "ops" || listed[0].Members != 1 || listed[0].Description != "On-call engineers" {
			t.Fatalf("groups list --json: %+v, %v", listed, err)
		}

		for _, tc := range []struct {
			name string
			args []string
			code int
			want string
		}{
			{"add without a name", []string{"groups", "add"}, cli.ExitUsage, "exactly one argument, the group name"},
			{"add a taken name", []string{"groups", "add", "OPS"}, cli.ExitFailure, `group "ops" already exists`},
			{"add a connector's group", []string{"groups", "add", "ldap:admins"}, cli.ExitUsage, "may contain only"},
			{"delete a missing group", []string{"groups", "delete", "nope"}, cli.ExitFailure, `no group "nope"`},
			{"add a user to a missing group", []string{"users", "groups", "alice", "--add", "nope"}, cli.ExitFailure, `no group "nope"`},
			{"a missing user", []string{"users", "groups", "ghost", "--add", "ops"}, cli.ExitFailure, `no user "ghost"`},
			{"add and remove one group", []string{"users", "groups", "alice", "--add", "ops", "--remove", "ops"}, cli.ExitUsage, "both added and removed"},
			{"api-url beside a store flag", []string{"groups", "list", "--api-url", "http://127.0.0.1:1", "--data-dir", t.TempDir()}, cli.ExitUsage, "--api-url and --data-dir"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := runServerCommand(env, nil, tc.args...)
				if r.code != tc.code || !strings.Contains(r.errOut, tc.want) {
					t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", r.code, r.errOut, tc.code, tc.want)
				}
			})
		}
		alice, err := st.UserByUsername(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := st.LocalUserGroups(ctx, alice.ID); !slices.Equal(got, []string{"ops", "sre"}) {
			t.Fatalf("refused commands changed alice's groups: %v", got)
		}

		removed := ok(runUsers(env, nil, "groups", "alice", "--remove", "sre"), "users groups --remove")
		if removed.errOut != "\"alice\" is now in the groups ops.\n" {
			t.Fatalf("users groups --remove said %q", removed.errOut)
		}
		ok(runGroups(env, "delete", "ops"), "groups delete")
		if got, _ := st.UserGroups(ctx, alice.ID); got != nil {
			t.Fatalf("alice is still in %v", got)
		}

		events, err := st.AuditEvents(ctx, store.AuditFilter{Types: []audit.Type{audit.GroupChanged}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events {
			got = append(got, e.Target+" "+e.Reason+" "+e.Username)
			if e.Actor != audit.OSUser() {
				t.Errorf("%s %s: actor %q, want %q", e.Target, e.Reason, e.Actor, audit.OSUser())
			}
		}
		want := []string{"ops added ", "sre added ", "ops member_added alice", "sre member_added alice", "sre member_removed alice", "ops deleted "}
		if !slices.Equal(got, want) {
			t.Fatalf("audit trail %q, want %q", got, want)
		}
	})
}

// TestGroupsCommandThroughTheAdminAPI runs the same commands from a
// directory that holds only an administrator's `nsauth login`, through
// --api-url: they print what they print offline, the audit trail names
// the administrator, and a user outside the group admin is refused.
func TestGroupsCommandThroughTheAdminAPI(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		serverEnv := storeEnv(t, b)
		serverURL := startServe(t, serverEnv)
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
		if r := runUsers(serverEnv, strings.NewReader("carol-password-1\n"), "add", "carol"); r.code != 0 {
			t.Fatalf("users add carol: exit %d\n%s", r.code, r.errOut)
		}

		e := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), apiURL: serverURL, counts: map[string]int{}}
		remote := func(e *env, args ...string) result {
			t.Helper()
			return e.run(ctx, nil, append(args, "--api-url", e.apiURL)...)
		}
		loginAs(t, e, "admin", biAdminPassword)
		for _, c := range []struct {
			args             []string
			wantOut, wantErr string
		}{
			{[]string{"groups", "add", "Ops", "--description", "On-call engineers"}, "", "Created the group \"ops\".\n"},
			{[]string{"users", "groups", "carol", "--add", "ops"}, "", "\"carol\" is now in the groups ops.\n"},
			{[]string{"users", "groups", "carol"}, "ops\n", ""},
			{[]string{"groups", "delete", "ops"}, "", "Deleted the group \"ops\"; tokens already issued keep naming it until they expire.\n"},
		} {
			r := remote(e, c.args...)
			if r.code != 0 || r.out != c.wantOut || r.errOut != c.wantErr {
				t.Fatalf("%v through the API: exit %d, %q, %q; want %q, %q", c.args, r.code, r.out, r.errOut, c.wantOut, c.wantErr)
			}
		}
		if r := remote(e, "groups", "list"); r.code != 0 || !regexpLine(r.out, "admin", "1", "nsauth administrators (the admin API)") {
			t.Fatalf("groups list through the API: exit %d\n%s%s", r.code, r.out, r.errOut)
		}
		if r := remote(e, "groups", "delete", "nope"); r.code != cli.ExitFailure || !strings.Contains(r.errOut, `no group "nope"`) {
			t.Fatalf("groups delete nope through the API: exit %d %q", r.code, r.errOut)
		}

		events, err := st.AuditEvents(ctx, store.AuditFilter{Types: []audit.Type{audit.GroupChanged}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range events {
			got = append(got, ev.Target+" "+ev.Reason+" "+ev.Actor)
		}
		want := []string{"ops added admin", "ops member_added admin", "ops deleted admin"}
		if !slices.Equal(got, want) {
			t.Fatalf("audit trail %q, want %q", got, want)
		}

		carol := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), apiURL: serverURL, counts: map[string]int{}}
		loginAs(t, carol, "carol", "carol-password-1")
		if r := remote(carol, "users", "groups", "carol", "--add", "admin"); r.code != cli.ExitFailure || !strings.Contains(r.errOut, "admin") {
			t.Fatalf("carol adding herself to admin: exit %d %q", r.code, r.errOut)
		}
		if in, _ := st.InGroup(ctx, admin.ID, "admin"); !in {
			t.Fatal("admin left the group admin")
		}
		if g, _ := st.LocalUserGroups(ctx, mustUserID(t, st, "carol")); g != nil {
			t.Fatalf("carol joined %v", g)
		}
	})
}

func mustUserID(t *testing.T, st *store.Store, username string) string {
	t.Helper()
	u, err := st.UserByUsername(context.Background(), username)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}
