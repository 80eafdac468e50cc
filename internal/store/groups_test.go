package store_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func TestNormalizeGroupName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"admin", "admin", true},
		{"Ops.Team_1-x", "ops.team_1-x", true},
		{"9lives", "9lives", true},
		{strings.Repeat("a", 64), strings.Repeat("a", 64), true},
		{"", "", false},
		{strings.Repeat("a", 65), "", false},
		{"-admin", "", false},
		{".admin", "", false},
		// A connector's group (CONNECTOR:name) is never an nsauth group.
		{"corp:admin", "", false},
		{" admin", "", false},
		{"ad min", "", false},
		{"admín", "", false},
		{"admin@corp", "", false},
		{"admin\n", "", false},
	}
	for _, tc := range tests {
		got, err := store.NormalizeGroupName(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("NormalizeGroupName(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && tc.in != "" && strings.Contains(err.Error(), tc.in) {
			t.Errorf("NormalizeGroupName(%q)'s error repeats the input: %v", tc.in, err)
		}
	}
}

func TestGroups(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s, alice := f.s, f.user.ID
		bob := &store.User{Username: "bob", PasswordHash: "$argon2id$fake"}
		if err := s.CreateUser(ctx, bob); err != nil {
			t.Fatal(err)
		}

		g, err := s.CreateGroup(ctx, "Admin", "may use the admin API")
		if err != nil || g.Name != "admin" || g.Description != "may use the admin API" || !g.CreatedAt.Equal(f.clock.Now()) || g.Members != 0 {
			t.Fatalf("CreateGroup = %+v, %v", g, err)
		}
		for _, name := range []string{"ops", "dev"} {
			if _, err := s.CreateGroup(ctx, name, ""); err != nil {
				t.Fatal(err)
			}
		}
		_, err = s.CreateGroup(ctx, "ADMIN", "")
		wantErr(t, err, store.ErrConflict)
		for name, desc := range map[string]string{
			"too long":        strings.Repeat("x", 257),
			"a control":       "ops\x1b[2J",
			"a line break":    "ops\nteam",
			"bidi formatting": "ops\u202etxt",
		} {
			if _, err := s.CreateGroup(ctx, "x-"+strings.ReplaceAll(name, " ", "-"), desc); err == nil {
				t.Errorf("a description with %s was stored", name)
			}
		}
		if _, err := s.CreateGroup(ctx, "corp:ops", ""); err == nil {
			t.Error("a group named like a connector's was created")
		}

		// Memberships change at once, or not at all.
		got, err := s.SetUserGroups(ctx, alice, []string{"ops", "Admin", "ops"}, nil)
		if err != nil || !slices.Equal(got, []string{"admin", "ops"}) {
			t.Fatalf("SetUserGroups(add admin, ops) = %q, %v", got, err)
		}
		got, err = s.SetUserGroups(ctx, alice, []string{"dev", "admin"}, []string{"ops"})
		if err != nil || !slices.Equal(got, []string{"admin", "dev"}) {
			t.Fatalf("SetUserGroups(add dev, remove ops) = %q, %v", got, err)
		}
		refusals := []struct {
			name        string
			user        string
			add, remove []string
			notFound    string // the missing thing the error names; "" for another error
		}{
			{"an unknown group to add", alice, []string{"ops", "nope"}, nil, `group "nope"`},
			{"an unknown group to remove", alice, []string{"ops"}, []string{"nope"}, `group "nope"`},
			{"an unknown user", "no-such-user", []string{"ops"}, nil, "user"},
			{"a group added and removed", alice, []string{"ops"}, []string{"OPS"}, ""},
			{"an invalid name", alice, []string{"ops", "corp:ops"}, nil, ""},
		}
		for _, tc := range refusals {
			_, err := s.SetUserGroups(ctx, tc.user, tc.add, tc.remove)
			switch {
			case err == nil:
				t.Errorf("%s: SetUserGroups succeeded", tc.name)
			case tc.notFound != "" && (!errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), tc.notFound)):
				t.Errorf("%s: %v, want ErrNotFound naming %s", tc.name, err, tc.notFound)
			case tc.notFound == "" && errors.Is(err, store.ErrNotFound):
				t.Errorf("%s: %v, want an error other than ErrNotFound", tc.name, err)
			}
		}
		if got, err := s.LocalUserGroups(ctx, alice); err != nil || !slices.Equal(got, []string{"admin", "dev"}) {
			t.Fatalf("after refused changes alice is in %q, %v; want admin, dev: a refused change changes nothing", got, err)
		}
		// Removing a membership the user lacks is no error.
		if got, err := s.SetUserGroups(ctx, bob.ID, []string{"ops"}, []string{"admin"}); err != nil || !slices.Equal(got, []string{"ops"}) {
			t.Fatalf("bob: %q, %v", got, err)
		}

		for _, tc := range []struct {
			user, group string
			want        bool
		}{
			{alice, "admin", true},
			{alice, "ADMIN", true},
			{alice, "ops", false},
			{bob.ID, "admin", false},
			{bob.ID, "ops", true},
			{alice, "nope", false},
			{alice, "corp:admin", false},
			{"no-such-user", "admin", false},
		} {
			if in, err := s.InGroup(ctx, tc.user, tc.group); err != nil || in != tc.want {
				t.Errorf("InGroup(%s, %q) = %v, %v; want %v", tc.user, tc.group, in, err, tc.want)
			}
		}

		list, err := s.ListGroups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var summary []string
		for _, g := range list {
			summary = append(summary, g.Name+":"+string(rune('0'+g.Members)))
		}
		if want := []string{"admin:1", "dev:1", "ops:1"}; !slices.Equal(summary, want) {
			t.Fatalf("ListGroups = %q, want %q", summary, want)
		}
		if g, err := s.GroupByName(ctx, "DEV"); err != nil || g.Name != "dev" || g.Members != 1 {
			t.Fatalf("GroupByName(DEV) = %+v, %v", g, err)
		}
		for _, name := range []string{"nope", "corp:dev", ""} {
			_, err := s.GroupByName(ctx, name)
			wantErr(t, err, store.ErrNotFound)
		}

		// Deleting a group removes its memberships; deleting a user, its.
		wantErr(t, s.DeleteGroup(ctx, "nope"), store.ErrNotFound)
		if err := s.DeleteGroup(ctx, "Dev"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.DeleteGroup(ctx, "dev"), store.ErrNotFound)
		if got, err := s.LocalUserGroups(ctx, alice); err != nil || !slices.Equal(got, []string{"admin"}) {
			t.Fatalf("after deleting dev, alice is in %q, %v", got, err)
		}
		if _, err := s.CreateGroup(ctx, "dev", ""); err != nil {
			t.Fatal(err)
		}
		if in, _ := s.InGroup(ctx, alice, "dev"); in {
			t.Fatal("a group deleted and created again kept its members")
		}
		if err := s.DeleteUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		if g, err := s.GroupByName(ctx, "ops"); err != nil || g.Members != 0 {
			t.Fatalf("ops after bob was deleted: %+v, %v", g, err)
		}
		if got, err := s.LocalUserGroups(ctx, bob.ID); err != nil || got != nil {
			t.Fatalf("a deleted user's groups: %q, %v", got, err)
		}
	})
}

// TestUserGroupsUnion: the groups tokens carry are the user's nsauth
// groups and the groups its connectors saw upstream, sorted.
func TestUserGroupsUnion(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s, alice := f.s, f.user.ID
		if got, err := s.UserGroups(ctx, alice); err != nil || got != nil {
			t.Fatalf("no groups: %q, %v; want nil", got, err)
		}
		for _, name := range []string{"admin", "zeta"} {
			if _, err := s.CreateGroup(ctx, name, ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.SetUserGroups(ctx, alice, []string{"zeta", "admin"}, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := s.UserGroups(ctx, alice); err != nil || !slices.Equal(got, []string{"admin", "zeta"}) {
			t.Fatalf("nsauth groups only: %q, %v", got, err)
		}
		addConnector(t, s, corpOIDC())
		if err := s.LinkIdentity(ctx, &store.Identity{Connector: "corp", Subject: "a", UserID: alice, Groups: []string{"corp:dev", "corp:admin"}}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.UserGroups(ctx, alice); err != nil || !slices.Equal(got, []string{"admin", "corp:admin", "corp:dev", "zeta"}) {
			t.Fatalf("the union: %q, %v", got, err)
		}
		// The connector's "corp:admin" is not nsauth's admin group.
		if in, err := s.InGroup(ctx, alice, "corp:admin"); err != nil || in {
			t.Fatalf("InGroup(corp:admin) = %v, %v", in, err)
		}
		if _, err := s.SetUserGroups(ctx, alice, nil, []string{"admin", "zeta"}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.UserGroups(ctx, alice); err != nil || !slices.Equal(got, []string{"corp:admin", "corp:dev"}) {
			t.Fatalf("connector groups only: %q, %v", got, err)
		}
	})
}
