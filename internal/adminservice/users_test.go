package adminservice_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/adminservice"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestUsersOverHTTP: the users' RPCs over HTTP: their refusals (the code
// and a message naming the field or the user, never the password), what
// they change, and the audit events, each naming the caller as actor and
// holding no password.
func TestUsersOverHTTP(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := serveOverHTTP(t, b)
		ctx := context.Background()
		const pw = "bob-first-password"

		refusals := []struct {
			name string
			call func() error
			code connect.Code
			want []string
		}{
			{"username with a space", func() error {
				_, err := h.api.CreateUser(ctx, req(&adminv1.CreateUserRequest{Username: "b ob", Password: pw}))
				return err
			}, connect.CodeInvalidArgument, []string{"username"}},
			{"no username", func() error {
				_, err := h.api.GetUser(ctx, req(&adminv1.GetUserRequest{}))
				return err
			}, connect.CodeInvalidArgument, []string{"username is required"}},
			{"short password", func() error {
				_, err := h.api.CreateUser(ctx, req(&adminv1.CreateUserRequest{Username: "carl", Password: "short"}))
				return err
			}, connect.CodeInvalidArgument, []string{"password"}},
			{"unknown group", func() error {
				_, err := h.api.CreateUser(ctx, req(&adminv1.CreateUserRequest{Username: "carl", Password: pw, Groups: []string{"nope"}}))
				return err
			}, connect.CodeNotFound, []string{`no group "nope"`}},
			{"unknown user", func() error {
				_, err := h.api.SetUserDisabled(ctx, req(&adminv1.SetUserDisabledRequest{Username: "Nobody", Disabled: true}))
				return err
			}, connect.CodeNotFound, []string{`no user "nobody"`}},
			{"password of an unknown user", func() error {
				_, err := h.api.SetUserPassword(ctx, req(&adminv1.SetUserPasswordRequest{Username: "nobody", Password: pw}))
				return err
			}, connect.CodeNotFound, []string{`no user "nobody"`}},
			{"unknown audit type", func() error {
				_, err := h.api.ListAuditEvents(ctx, req(&adminv1.ListAuditEventsRequest{Types: []string{"admin"}}))
				return err
			}, connect.CodeInvalidArgument, []string{"types"}},
			{"audit ref not hex", func() error {
				_, err := h.api.ListAuditEvents(ctx, req(&adminv1.ListAuditEventsRequest{Ref: "zz"}))
				return err
			}, connect.CodeInvalidArgument, []string{"ref"}},
		}
		for _, r := range refusals {
			err := r.call()
			wantCode(t, r.name, err, r.code, r.want...)
			if err != nil && strings.Contains(err.Error(), pw) {
				t.Errorf("%s: the error shows the password: %v", r.name, err)
			}
		}
		if _, err := h.st.UserByUsername(ctx, "carl"); err == nil {
			t.Error("a refused CreateUser (unknown group) created the user")
		}

		if _, err := h.st.CreateGroup(ctx, "ops", ""); err != nil {
			t.Fatal(err)
		}
		created, err := h.api.CreateUser(ctx, req(&adminv1.CreateUserRequest{Username: "Bob", Name: "Bob", Password: pw, Groups: []string{"ops"}}))
		if err != nil {
			t.Fatal(err)
		}
		u := created.Msg.GetUser()
		if u.GetUsername() != "bob" || !u.GetHasPassword() || u.GetCreatedAt() == 0 || strings.Join(u.GetGroups(), ",") != "ops" {
			t.Errorf("CreateUser = %v", u)
		}
		_, err = h.api.CreateUser(ctx, req(&adminv1.CreateUserRequest{Username: "bob", Password: pw}))
		wantCode(t, "a second bob", err, connect.CodeAlreadyExists, `user "bob" already exists`)

		d, err := h.api.SetUserDisabled(ctx, req(&adminv1.SetUserDisabledRequest{Username: "bob", Disabled: true}))
		if err != nil || !d.Msg.GetChanged() {
			t.Errorf("disable: %v, %v; want changed", d, err)
		}
		d, err = h.api.SetUserDisabled(ctx, req(&adminv1.SetUserDisabledRequest{Username: "bob", Disabled: true}))
		if err != nil || d.Msg.GetChanged() {
			t.Errorf("disable again: %v, %v; want unchanged", d, err)
		}
		if got, _ := h.api.GetUser(ctx, req(&adminv1.GetUserRequest{Username: "BOB"})); got == nil || got.Msg.GetUser().GetDisabledAt() == 0 {
			t.Errorf("GetUser after disable = %v", got)
		}
		if _, err := h.api.SetUserDisabled(ctx, req(&adminv1.SetUserDisabledRequest{Username: "bob"})); err != nil {
			t.Fatal(err)
		}
		if _, err := h.api.SetUserPassword(ctx, req(&adminv1.SetUserPasswordRequest{Username: "bob", Password: "bob-second-password", ResetFactors: true})); err != nil {
			t.Fatal(err)
		}
		if _, err := h.api.UnlockUser(ctx, req(&adminv1.UnlockUserRequest{Username: "bob"})); err != nil {
			t.Fatal(err)
		}
		list, err := h.api.ListUsers(ctx, req(&adminv1.ListUsersRequest{}))
		if err != nil || len(list.Msg.GetUsers()) != 1 {
			t.Fatalf("ListUsers = %v, %v", list, err)
		}
		noSecret(t, "ListUsers", list.Msg, pw, "bob-second-password")
		if _, err := h.api.DeleteUser(ctx, req(&adminv1.DeleteUserRequest{Username: "bob"})); err != nil {
			t.Fatal(err)
		}
		if _, err := h.st.UserByUsername(ctx, "bob"); err == nil {
			t.Error("DeleteUser left the user")
		}

		got := strings.Join(h.events(t, "admin.user", pw, "bob-second-password"), "\n")
		want := strings.Join([]string{
			"admin.user  added", "admin.user  disabled", "admin.user  disabled", "admin.user  enabled",
			"admin.user  password_changed", "admin.user  unlocked", "admin.user  deleted",
		}, "\n")
		if got != want {
			t.Errorf("audit events:\n%s\nwant:\n%s", got, want)
		}
		if reset := h.events(t, "mfa.reset"); len(reset) != 1 {
			t.Errorf("mfa.reset events: %v, want one", reset)
		}

		// The audit trail reads back as `nsauth audit -o json` prints it,
		// paged by last_id.
		page, err := h.api.ListAuditEvents(ctx, req(&adminv1.ListAuditEventsRequest{Types: []string{"admin.user"}, Limit: 3}))
		if err != nil || len(page.Msg.GetEvents()) != 3 {
			t.Fatalf("ListAuditEvents limit 3 = %v, %v", page, err)
		}
		var first struct {
			Type, Actor, Reason string
		}
		if err := json.Unmarshal([]byte(page.Msg.GetEvents()[0].GetJson()), &first); err != nil || first.Type != "admin.user" || first.Actor != testActor || first.Reason != "added" {
			t.Errorf("first event = %+v, %v", first, err)
		}
		rest, err := h.api.ListAuditEvents(ctx, req(&adminv1.ListAuditEventsRequest{Types: []string{"admin.user"}, AfterId: page.Msg.GetLastId()}))
		if err != nil || len(rest.Msg.GetEvents()) != 4 || rest.Msg.GetLastId() <= page.Msg.GetLastId() {
			t.Errorf("the rest after last_id = %v, %v; want 4 more", rest, err)
		}
		none, err := h.api.ListAuditEvents(ctx, req(&adminv1.ListAuditEventsRequest{Types: []string{"admin.user"}, AfterId: rest.Msg.GetLastId()}))
		if err != nil || len(none.Msg.GetEvents()) != 0 || none.Msg.GetLastId() != rest.Msg.GetLastId() {
			t.Errorf("after the last = %v, %v; want none and last_id unchanged", none, err)
		}
	})
}

// TestListUsersPages: ListUsers in pages of limit users after
// after_username reads every user once, in username order, whatever the
// page size; a page never holds more than the cap; no limit lists
// everyone, as before paging; a negative limit and a username no user
// could have are refused.
func TestListUsersPages(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := serveOverHTTP(t, b)
		ctx := context.Background()
		var want []string
		for i := range adminservice.MaxUsersPage + 3 {
			u := &store.User{Username: fmt.Sprintf("user-%04d", (i*7919)%(adminservice.MaxUsersPage+3)), PasswordHash: "$argon2id$fake"}
			if err := h.st.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			want = append(want, u.Username)
		}
		slices.Sort(want)
		// Some users have groups and second factors, so that a listing's
		// batched reads (a chunk of 1000 users, then the rest) are held
		// to GetUser's one-user reads.
		if _, err := h.st.CreateGroup(ctx, "ops", ""); err != nil {
			t.Fatal(err)
		}
		for i, name := range want {
			u, err := h.st.UserByUsername(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if i%3 == 0 {
				if _, err := h.st.SetUserGroups(ctx, u.ID, []string{"ops"}, nil); err != nil {
					t.Fatal(err)
				}
			}
			if i%5 == 0 || i == len(want)-1 {
				if err := h.st.ReplaceRecoveryCodes(ctx, u.ID, []string{"code-one", "code-two"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		names := func(us []*adminv1.User) []string {
			out := make([]string, len(us))
			for i, u := range us {
				out[i] = u.GetUsername()
			}
			return out
		}
		all, err := h.api.ListUsers(ctx, req(&adminv1.ListUsersRequest{}))
		if err != nil || !slices.Equal(names(all.Msg.GetUsers()), want) {
			t.Fatalf("ListUsers with no limit: %d users, %v; want all %d in order", len(all.Msg.GetUsers()), err, len(want))
		}
		for _, listed := range all.Msg.GetUsers() {
			one, err := h.api.GetUser(ctx, req(&adminv1.GetUserRequest{Username: listed.GetUsername()}))
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(listed, one.Msg.GetUser()) {
				t.Fatalf("listed %v\nGetUser %v", listed, one.Msg.GetUser())
			}
		}
		for _, limit := range []int32{1, 7, adminservice.MaxUsersPage, adminservice.MaxUsersPage + 500} {
			var got []string
			pages := 0
			for after := ""; ; pages++ {
				resp, err := h.api.ListUsers(ctx, req(&adminv1.ListUsersRequest{AfterUsername: after, Limit: limit}))
				if err != nil {
					t.Fatalf("limit %d: %v", limit, err)
				}
				page := names(resp.Msg.GetUsers())
				if len(page) > adminservice.MaxUsersPage || len(page) > int(limit) {
					t.Fatalf("limit %d: a page of %d users", limit, len(page))
				}
				if len(page) > 0 && resp.Msg.GetLastUsername() != page[len(page)-1] {
					t.Fatalf("limit %d: last_username %q, the page ends with %q", limit, resp.Msg.GetLastUsername(), page[len(page)-1])
				}
				got = append(got, page...)
				if len(page) < min(int(limit), adminservice.MaxUsersPage) {
					break
				}
				after = resp.Msg.GetLastUsername()
				if pages > len(want)+1 {
					t.Fatalf("limit %d: paging does not end", limit)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("limit %d: paging read %d users, want each of the %d once, in order", limit, len(got), len(want))
			}
		}
		_, err = h.api.ListUsers(ctx, req(&adminv1.ListUsersRequest{Limit: -1}))
		wantCode(t, "a negative limit", err, connect.CodeInvalidArgument, "limit")
		_, err = h.api.ListUsers(ctx, req(&adminv1.ListUsersRequest{AfterUsername: strings.Repeat("a", 2000), Limit: 10}))
		wantCode(t, "an overlong after_username", err, connect.CodeInvalidArgument, "after_username")
	})
}
