package adminservice_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestUserLinksOverHTTP: CreateUserLink's refusals name the field or the
// fix; a link is returned once, stored as a digest, replaces the user's
// previous one, and every event of it (created, revoked: replaced, by
// RevokeUserLink, by disabling or deleting the user) names its ref and
// the caller, never the link.
func TestUserLinksOverHTTP(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := serveOverHTTP(t, b)
		ctx := context.Background()
		create := func(username string, p adminv1.LinkPurpose, ttl int64) (*adminv1.CreateUserLinkResponse, error) {
			resp, err := h.api.CreateUserLink(ctx, req(&adminv1.CreateUserLinkRequest{Username: username, Purpose: p, TtlSeconds: ttl}))
			if err != nil {
				return nil, err
			}
			return resp.Msg, nil
		}
		if _, err := h.api.CreateUser(ctx, req(&adminv1.CreateUserRequest{Username: "bob"})); err != nil {
			t.Fatalf("a user without a password: %v", err)
		}
		_, err := create("bob", adminv1.LinkPurpose_LINK_PURPOSE_INVITE, 0)
		wantCode(t, "never served", err, connect.CodeFailedPrecondition, "start nsauth serve with it once")
		if _, err := h.st.RecordServedIssuer(ctx, "https://auth.example.com"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name     string
			username string
			purpose  adminv1.LinkPurpose
			ttl      int64
			code     connect.Code
			want     string
		}{
			{"no purpose", "bob", adminv1.LinkPurpose_LINK_PURPOSE_UNSPECIFIED, 0, connect.CodeInvalidArgument, "purpose is required"},
			{"too long", "bob", adminv1.LinkPurpose_LINK_PURPOSE_RESET, int64(store.MaxLinkTTL/time.Second) + 1, connect.CodeInvalidArgument, "ttl_seconds"},
			{"negative", "bob", adminv1.LinkPurpose_LINK_PURPOSE_RESET, -1, connect.CodeInvalidArgument, "ttl_seconds"},
			{"no such user", "nobody", adminv1.LinkPurpose_LINK_PURPOSE_RESET, 0, connect.CodeNotFound, `no user "nobody"`},
			{"no username", "", adminv1.LinkPurpose_LINK_PURPOSE_RESET, 0, connect.CodeInvalidArgument, "username is required"},
		} {
			_, err := create(c.username, c.purpose, c.ttl)
			wantCode(t, c.name, err, c.code, c.want)
		}
		first, err := create("bob", adminv1.LinkPurpose_LINK_PURPOSE_INVITE, 3600)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(first.GetUrl())
		if err != nil || u.Scheme+"://"+u.Host+u.Path != "https://auth.example.com/link" || first.GetRef() == "" ||
			time.Until(time.Unix(first.GetExpiresAt(), 0)) > time.Hour {
			t.Fatalf("CreateUserLink = %+v", first)
		}
		secret := u.Query().Get("link")
		if l, err := h.st.LinkBySecret(ctx, secret); err != nil || l.ID != first.GetRef() {
			t.Fatalf("the stored link: %+v, %v", l, err)
		}
		second, err := create("bob", adminv1.LinkPurpose_LINK_PURPOSE_INVITE, 0)
		if err != nil {
			t.Fatal(err)
		}
		if left := time.Until(time.Unix(second.GetExpiresAt(), 0)); left < 23*time.Hour || left > 24*time.Hour {
			t.Fatalf("the default lifetime left %s, want NSAUTH_LINK_TTL's default 24h", left)
		}
		resp, err := h.api.RevokeUserLink(ctx, req(&adminv1.RevokeUserLinkRequest{Username: "bob"}))
		if err != nil || !resp.Msg.GetRevoked() {
			t.Fatalf("RevokeUserLink = %v, %v", resp, err)
		}
		if resp, err := h.api.RevokeUserLink(ctx, req(&adminv1.RevokeUserLinkRequest{Username: "bob"})); err != nil || resp.Msg.GetRevoked() {
			t.Fatalf("RevokeUserLink of none = %v, %v", resp, err)
		}
		third, err := create("bob", adminv1.LinkPurpose_LINK_PURPOSE_RESET, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.api.SetUserDisabled(ctx, req(&adminv1.SetUserDisabledRequest{Username: "bob", Disabled: true})); err != nil {
			t.Fatal(err)
		}
		_, err = create("bob", adminv1.LinkPurpose_LINK_PURPOSE_RESET, 0)
		wantCode(t, "a disabled user", err, connect.CodeFailedPrecondition, `user "bob" is disabled: enable it first`)
		if _, err := h.api.SetUserDisabled(ctx, req(&adminv1.SetUserDisabledRequest{Username: "bob", Disabled: false})); err != nil {
			t.Fatal(err)
		}
		fourth, err := create("bob", adminv1.LinkPurpose_LINK_PURPOSE_RESET, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.api.DeleteUser(ctx, req(&adminv1.DeleteUserRequest{Username: "bob"})); err != nil {
			t.Fatal(err)
		}
		if _, err := h.api.CreateUser(ctx, req(&adminv1.CreateUserRequest{Username: "carol", Password: "carol-password-1"})); err != nil {
			t.Fatal(err)
		}
		_, err = create("carol", adminv1.LinkPurpose_LINK_PURPOSE_INVITE, 0)
		wantCode(t, "invite of a user with a password", err, connect.CodeFailedPrecondition, "make a reset link instead")
		var secrets []string
		for _, r := range []*adminv1.CreateUserLinkResponse{first, second, third, fourth} {
			lu, _ := url.Parse(r.GetUrl())
			secrets = append(secrets, lu.Query().Get("link"), r.GetUrl())
		}
		got := h.events(t, "link.", secrets...)
		want := []string{
			"link.created " + first.GetRef() + " invite",
			"link.revoked " + first.GetRef() + " replaced",
			"link.created " + second.GetRef() + " invite",
			"link.revoked " + second.GetRef() + " revoked",
			"link.created " + third.GetRef() + " reset",
			"link.revoked " + third.GetRef() + " user_disabled",
			"link.created " + fourth.GetRef() + " reset",
			"link.revoked " + fourth.GetRef() + " user_deleted",
		}
		slices.Sort(got)
		slices.Sort(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("link events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
