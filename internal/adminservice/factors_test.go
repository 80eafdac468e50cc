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
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestSecondFactorsOverHTTP: the second-factor RPCs over HTTP: their
// refusals (the code, and a message naming the user, the passkey or the
// field), what they remove (and what they leave: recovery codes outlive
// the authenticator app), and their audit events, each naming the caller
// as actor.
func TestSecondFactorsOverHTTP(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := serveOverHTTP(t, b)
		ctx := context.Background()
		key, err := seal.ParseKey(seal.GenerateKey())
		if err != nil {
			t.Fatal(err)
		}
		keyed := b.Reopen(t, h.st, store.Options{Keyring: seal.NewKeyring(key)}) // to store a TOTP secret, as users totp enroll does
		if _, err := h.api.CreateUser(ctx, req(&adminv1.CreateUserRequest{Username: "alice", Password: "alice-password-1"})); err != nil {
			t.Fatal(err)
		}
		u, err := h.st.UserByUsername(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			call func() error
			code connect.Code
			want string
		}{
			{"reset of an unknown user", func() error {
				_, err := h.api.ResetUserFactors(ctx, req(&adminv1.ResetUserFactorsRequest{Username: "Nobody"}))
				return err
			}, connect.CodeNotFound, `no user "nobody"`},
			{"reset without a username", func() error {
				_, err := h.api.ResetUserFactors(ctx, req(&adminv1.ResetUserFactorsRequest{}))
				return err
			}, connect.CodeInvalidArgument, "username is required"},
			{"no authenticator app to remove", func() error {
				_, err := h.api.RemoveUserTOTP(ctx, req(&adminv1.RemoveUserTOTPRequest{Username: "alice"}))
				return err
			}, connect.CodeNotFound, `"alice" has no authenticator app`},
			{"passkeys of an unknown user", func() error {
				_, err := h.api.ListUserPasskeys(ctx, req(&adminv1.ListUserPasskeysRequest{Username: "nobody"}))
				return err
			}, connect.CodeNotFound, `no user "nobody"`},
			{"no passkey named", func() error {
				_, err := h.api.RemoveUserPasskey(ctx, req(&adminv1.RemoveUserPasskeyRequest{Username: "alice"}))
				return err
			}, connect.CodeInvalidArgument, "passkey is required"},
			{"an unknown passkey", func() error {
				_, err := h.api.RemoveUserPasskey(ctx, req(&adminv1.RemoveUserPasskeyRequest{Username: "alice", Passkey: "Phone"}))
				return err
			}, connect.CodeNotFound, `"alice" has no passkey named or with the id "Phone" (nsauth users passkeys alice lists them)`},
		} {
			wantCode(t, c.name, c.call(), c.code, c.want)
		}

		// What alice has: an authenticator app with ten recovery codes,
		// and two passkeys.
		codes := make([]string, 10)
		for i := range codes {
			codes[i] = store.RandomToken(10)
		}
		if err := keyed.EnrollTOTP(ctx, u.ID, "KRSXG5CTMVRXEZLUKN2XAZLDNFZGK5BB", 0, codes); err != nil {
			t.Fatal(err)
		}
		model := []byte{0xea, 0x9b, 0x8d, 0x66, 0x4d, 0x01, 0x1d, 0x21, 0x3c, 0xe4, 0xb6, 0xb4, 0x8c, 0xb5, 0x75, 0xd4}
		for _, p := range []*store.Passkey{
			{UserID: u.ID, Name: "Laptop", CredentialID: []byte("cred-laptop"), PublicKey: []byte("public-laptop"), BackupEligible: true},
			{UserID: u.ID, Name: "Security key", CredentialID: []byte("cred-key"), PublicKey: []byte("public-key"), AAGUID: model},
		} {
			if err := h.st.AddPasskey(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		list, err := h.api.ListUserPasskeys(ctx, req(&adminv1.ListUserPasskeysRequest{Username: "ALICE"}))
		if err != nil || len(list.Msg.GetPasskeys()) != 2 {
			t.Fatalf("ListUserPasskeys = %v, %v", list, err)
		}
		pks := list.Msg.GetPasskeys()
		i := slices.IndexFunc(pks, func(p *adminv1.Passkey) bool { return p.GetName() == "Security key" })
		if i < 0 || pks[i].GetId() == "" || pks[i].GetBackupEligible() || string(pks[i].GetAaguid()) != string(model) ||
			time.Since(time.Unix(pks[i].GetCreatedAt(), 0)) > time.Hour || pks[i].GetLastUsedAt() != 0 || !pks[1-i].GetBackupEligible() {
			t.Fatalf("ListUserPasskeys = %v", pks)
		}
		noSecret(t, "ListUserPasskeys", list.Msg, "cred-laptop", "public-laptop", "cred-key", "public-key")
		byName, err := h.api.RemoveUserPasskey(ctx, req(&adminv1.RemoveUserPasskeyRequest{Username: "alice", Passkey: "Laptop"}))
		if err != nil || byName.Msg.GetPasskey().GetName() != "Laptop" {
			t.Fatalf("RemoveUserPasskey by name = %v, %v", byName, err)
		}
		byID, err := h.api.RemoveUserPasskey(ctx, req(&adminv1.RemoveUserPasskeyRequest{Username: "alice", Passkey: pks[i].GetId()}))
		if err != nil || byID.Msg.GetPasskey().GetName() != "Security key" {
			t.Fatalf("RemoveUserPasskey by id = %v, %v", byID, err)
		}
		if _, err := h.api.RemoveUserTOTP(ctx, req(&adminv1.RemoveUserTOTPRequest{Username: "alice"})); err != nil {
			t.Fatal(err)
		}
		if f, err := h.st.SecondFactors(ctx, u.ID); err != nil || f.TOTP || f.Passkeys != 0 || f.RecoveryCodes != 10 {
			t.Fatalf("after removing the app and the passkeys: %+v, %v; want the ten recovery codes alone", f, err)
		}
		if err := h.st.AddPasskey(ctx, &store.Passkey{UserID: u.ID, Name: "Phone", CredentialID: []byte("cred-phone"), PublicKey: []byte("k")}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.api.ResetUserFactors(ctx, req(&adminv1.ResetUserFactorsRequest{Username: "alice"})); err != nil {
			t.Fatal(err)
		}
		if f, err := h.st.SecondFactors(ctx, u.ID); err != nil || f.Any() || f.RecoveryCodes != 0 {
			t.Fatalf("after ResetUserFactors: %+v, %v", f, err)
		}

		got := strings.Join(append(h.events(t, "mfa.", codes...), h.events(t, "passkey.")...), "\n")
		want := strings.Join([]string{
			"mfa.reset  totp_removed", "mfa.reset  mfa_reset",
			"passkey.removed Laptop ", "passkey.removed Security key ",
		}, "\n")
		if got != want {
			t.Errorf("audit events:\n%s\nwant:\n%s", got, want)
		}
	})
}

// TestEnrolLinksOverHTTP: CreateUserEnrolLink's refusals name the field or
// the fix; a link is returned once under the issuer the data was served
// with, stored as a digest, valid for ttl_seconds (12 hours by default),
// and replaces the user's previous one; RevokeUserEnrolLink removes it;
// the audit trail records each act with the caller as actor, never the
// link.
func TestEnrolLinksOverHTTP(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := serveOverHTTP(t, b)
		ctx := context.Background()
		create := func(username string, ttl int64) (*adminv1.CreateUserEnrolLinkResponse, error) {
			resp, err := h.api.CreateUserEnrolLink(ctx, req(&adminv1.CreateUserEnrolLinkRequest{Username: username, TtlSeconds: ttl}))
			if err != nil {
				return nil, err
			}
			return resp.Msg, nil
		}
		for _, name := range []string{"alice", "bob"} {
			if _, err := h.api.CreateUser(ctx, req(&adminv1.CreateUserRequest{Username: name, Password: name + "-password-1"})); err != nil {
				t.Fatal(err)
			}
		}
		_, err := create("alice", 0)
		wantCode(t, "never served", err, connect.CodeFailedPrecondition, "start nsauth serve with it once")
		if _, err := h.st.RecordServedIssuer(ctx, "https://auth.example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.api.SetUserDisabled(ctx, req(&adminv1.SetUserDisabledRequest{Username: "bob", Disabled: true})); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name     string
			username string
			ttl      int64
			code     connect.Code
			want     string
		}{
			{"too long", "alice", int64(store.MaxEnrolLinkTTL/time.Second) + 1, connect.CodeInvalidArgument, "ttl_seconds"},
			{"negative", "alice", -1, connect.CodeInvalidArgument, "ttl_seconds"},
			{"no such user", "nobody", 0, connect.CodeNotFound, `no user "nobody"`},
			{"no username", "", 0, connect.CodeInvalidArgument, "username is required"},
			{"a disabled user", "bob", 0, connect.CodeFailedPrecondition, `"bob" is disabled: enable it first with nsauth users enable bob`},
		} {
			_, err := create(c.username, c.ttl)
			wantCode(t, c.name, err, c.code, c.want)
		}
		secretOf := func(r *adminv1.CreateUserEnrolLinkResponse) string {
			t.Helper()
			u, err := url.Parse(r.GetUrl())
			if err != nil || u.Scheme+"://"+u.Host+u.Path != "https://auth.example.com/login/enrol" || len(u.Query().Get("link")) != 43 {
				t.Fatalf("CreateUserEnrolLink = %v", r)
			}
			return u.Query().Get("link")
		}
		first, err := create("Alice", 3600)
		if err != nil {
			t.Fatal(err)
		}
		if left := time.Until(time.Unix(first.GetExpiresAt(), 0)); left > time.Hour || left < 59*time.Minute {
			t.Fatalf("a link of ttl_seconds 3600 expires in %s", left)
		}
		alice, err := h.st.UserByUsername(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := h.st.EnrolLinkUser(ctx, secretOf(first)); err != nil || got.ID != alice.ID {
			t.Fatalf("the stored link names %+v, %v", got, err)
		}
		second, err := create("alice", 0)
		if err != nil {
			t.Fatal(err)
		}
		if left := time.Until(time.Unix(second.GetExpiresAt(), 0)); left > 12*time.Hour || left < 11*time.Hour {
			t.Fatalf("the default lifetime left %s, want 12h", left)
		}
		if _, err := h.st.EnrolLinkUser(ctx, secretOf(first)); err == nil {
			t.Fatal("the older link still works after a new one was made")
		}
		if resp, err := h.api.RevokeUserEnrolLink(ctx, req(&adminv1.RevokeUserEnrolLinkRequest{Username: "alice"})); err != nil || !resp.Msg.GetRevoked() {
			t.Fatalf("RevokeUserEnrolLink = %v, %v", resp, err)
		}
		if _, err := h.st.EnrolLinkUser(ctx, secretOf(second)); err == nil {
			t.Fatal("a revoked link still works")
		}
		if resp, err := h.api.RevokeUserEnrolLink(ctx, req(&adminv1.RevokeUserEnrolLinkRequest{Username: "alice"})); err != nil || resp.Msg.GetRevoked() {
			t.Fatalf("RevokeUserEnrolLink of none = %v, %v", resp, err)
		}
		_, err = h.api.RevokeUserEnrolLink(ctx, req(&adminv1.RevokeUserEnrolLinkRequest{Username: "nobody"}))
		wantCode(t, "revoking an unknown user's link", err, connect.CodeNotFound, `no user "nobody"`)

		var reasons []string
		for _, e := range h.events(t, "admin.user", secretOf(first), secretOf(second), first.GetUrl(), second.GetUrl()) {
			if strings.Contains(e, "enrol_link") {
				reasons = append(reasons, e)
			}
		}
		if got, want := strings.Join(reasons, "\n"), "admin.user  enrol_link_created\nadmin.user  enrol_link_created\nadmin.user  enrol_link_revoked"; got != want {
			t.Errorf("audit events:\n%s\nwant:\n%s", got, want)
		}
	})
}
