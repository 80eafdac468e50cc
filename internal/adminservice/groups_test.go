package adminservice_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestGroupsOverHTTP: the group RPCs over real HTTP on both backends:
// names normalized, every refusal with its code and the field or name at
// fault, a user's memberships changed all at once or not at all, and each
// change audited with the caller as actor.
func TestGroupsOverHTTP(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := serveOverHTTP(t, b)
		ctx := context.Background()
		if _, err := h.api.CreateUser(ctx, req(&adminv1.CreateUserRequest{Username: "bob", Password: "bob-password-for-groups"})); err != nil {
			t.Fatal(err)
		}
		created, err := h.api.CreateGroup(ctx, req(&adminv1.CreateGroupRequest{Name: "Ops", Description: "On-call engineers"}))
		if err != nil {
			t.Fatalf("CreateGroup: %v", err)
		}
		if g := created.Msg.GetGroup(); g.GetName() != "ops" || g.GetDescription() != "On-call engineers" || g.GetCreatedAt() == 0 {
			t.Fatalf("created %v", g)
		}
		for _, name := range []string{"sre", "admin"} {
			if _, err := h.api.CreateGroup(ctx, req(&adminv1.CreateGroupRequest{Name: name})); err != nil {
				t.Fatal(err)
			}
		}

		refusals := []struct {
			name string
			call func() error
			code connect.Code
			want []string
		}{
			{"a taken name, in another case", func() error {
				_, err := h.api.CreateGroup(ctx, req(&adminv1.CreateGroupRequest{Name: "OPS"}))
				return err
			}, connect.CodeAlreadyExists, []string{`group "ops" already exists`}},
			{"no name", func() error {
				_, err := h.api.CreateGroup(ctx, req(&adminv1.CreateGroupRequest{}))
				return err
			}, connect.CodeInvalidArgument, []string{"name"}},
			{"a connector's group forged (a colon)", func() error {
				_, err := h.api.CreateGroup(ctx, req(&adminv1.CreateGroupRequest{Name: "github:acme/admins"}))
				return err
			}, connect.CodeInvalidArgument, []string{"name"}},
			{"a name starting with a dot", func() error {
				_, err := h.api.CreateGroup(ctx, req(&adminv1.CreateGroupRequest{Name: ".ops"}))
				return err
			}, connect.CodeInvalidArgument, []string{"name"}},
			{"a name too long", func() error {
				_, err := h.api.CreateGroup(ctx, req(&adminv1.CreateGroupRequest{Name: strings.Repeat("g", 65)}))
				return err
			}, connect.CodeInvalidArgument, []string{"name"}},
			{"a description hiding text", func() error {
				_, err := h.api.CreateGroup(ctx, req(&adminv1.CreateGroupRequest{Name: "x", Description: "ops\u202eadmins"}))
				return err
			}, connect.CodeInvalidArgument, []string{"description"}},
			{"a description too long", func() error {
				_, err := h.api.CreateGroup(ctx, req(&adminv1.CreateGroupRequest{Name: "x", Description: strings.Repeat("d", 257)}))
				return err
			}, connect.CodeInvalidArgument, []string{"description"}},
			{"deleting a group that does not exist", func() error {
				_, err := h.api.DeleteGroup(ctx, req(&adminv1.DeleteGroupRequest{Name: "nope"}))
				return err
			}, connect.CodeNotFound, []string{`no group "nope"`}},
			{"deleting with a name that cannot be one", func() error {
				_, err := h.api.DeleteGroup(ctx, req(&adminv1.DeleteGroupRequest{Name: "a b"}))
				return err
			}, connect.CodeInvalidArgument, []string{"name"}},
			{"a user that does not exist", func() error {
				_, err := h.api.SetUserGroups(ctx, req(&adminv1.SetUserGroupsRequest{Username: "ghost", Add: []string{"ops"}}))
				return err
			}, connect.CodeNotFound, []string{`no user "ghost"`}},
			{"adding to a group that does not exist", func() error {
				_, err := h.api.SetUserGroups(ctx, req(&adminv1.SetUserGroupsRequest{Username: "bob", Add: []string{"sre", "nope"}}))
				return err
			}, connect.CodeNotFound, []string{`no group "nope"`}},
			{"adding to a connector's group", func() error {
				_, err := h.api.SetUserGroups(ctx, req(&adminv1.SetUserGroupsRequest{Username: "bob", Add: []string{"ldap:admins"}}))
				return err
			}, connect.CodeInvalidArgument, []string{"add"}},
			{"removing with a name that cannot be one", func() error {
				_, err := h.api.SetUserGroups(ctx, req(&adminv1.SetUserGroupsRequest{Username: "bob", Remove: []string{""}}))
				return err
			}, connect.CodeInvalidArgument, []string{"remove"}},
			{"one group both added and removed", func() error {
				_, err := h.api.SetUserGroups(ctx, req(&adminv1.SetUserGroupsRequest{Username: "bob", Add: []string{"ops"}, Remove: []string{"OPS"}}))
				return err
			}, connect.CodeInvalidArgument, []string{`"ops"`, "both"}},
		}
		for _, r := range refusals {
			wantCode(t, r.name, r.call(), r.code, r.want...)
		}
		bob, err := h.st.UserByUsername(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := h.st.LocalUserGroups(ctx, bob.ID); got != nil {
			t.Fatalf("refused calls changed bob's groups: %v", got)
		}

		set := func(add, remove []string) []string {
			t.Helper()
			resp, err := h.api.SetUserGroups(ctx, req(&adminv1.SetUserGroupsRequest{Username: "BOB", Add: add, Remove: remove}))
			if err != nil {
				t.Fatalf("SetUserGroups(+%v -%v): %v", add, remove, err)
			}
			return resp.Msg.GetGroups()
		}
		if got := set([]string{"ops", "SRE", "ops"}, nil); !slices.Equal(got, []string{"ops", "sre"}) {
			t.Fatalf("after adding: %v", got)
		}
		if got := set([]string{"admin"}, []string{"sre"}); !slices.Equal(got, []string{"admin", "ops"}) {
			t.Fatalf("after adding admin and removing sre: %v", got)
		}
		// sre: a membership bob no longer has, which is no error.
		if got := set(nil, []string{"admin", "ops", "sre"}); len(got) != 0 {
			t.Fatalf("after removing all: %v", got)
		}
		set([]string{"ops"}, nil)

		list, err := h.api.ListGroups(ctx, req(&adminv1.ListGroupsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		var rows []string
		for _, g := range list.Msg.GetGroups() {
			rows = append(rows, g.GetName()+" "+string(rune('0'+g.GetMembers())))
		}
		if !slices.Equal(rows, []string{"admin 0", "ops 1", "sre 0"}) {
			t.Fatalf("ListGroups: %v", rows)
		}
		if _, err := h.api.DeleteGroup(ctx, req(&adminv1.DeleteGroupRequest{Name: "OPS"})); err != nil {
			t.Fatalf("DeleteGroup: %v", err)
		}
		if got, _ := h.st.UserGroups(ctx, bob.ID); got != nil {
			t.Fatalf("bob is still in %v after the group was deleted", got)
		}

		got := h.events(t, "admin.group")
		want := []string{
			"admin.group ops added", "admin.group sre added", "admin.group admin added",
			"admin.group ops member_added", "admin.group sre member_added",
			"admin.group admin member_added", "admin.group sre member_removed",
			"admin.group admin member_removed", "admin.group ops member_removed",
			"admin.group ops member_added",
			"admin.group ops deleted",
		}
		if !slices.Equal(got, want) {
			t.Fatalf("audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
