package adminservice_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestMachineClientsOverHTTP: a machine client's life through the API,
// named by its name or its client id: the secret returned once (created,
// rotated) and only its digest stored, never listed nor audited; every
// event names the caller as actor; refusals name the field.
func TestMachineClientsOverHTTP(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := serveOverHTTP(t, b)
		ctx := context.Background()
		created, err := h.api.CreateMachineClient(ctx, req(&adminv1.CreateMachineClientRequest{Name: "Deploy", Scopes: []string{"read", "write"}, TokenTtlSeconds: 600}))
		if err != nil {
			t.Fatal(err)
		}
		c, first := created.Msg.GetClient(), created.Msg.GetClientSecret()
		if c.GetName() != "deploy" || c.GetTokenTtlSeconds() != 600 || len(first) < 43 {
			t.Fatalf("CreateMachineClient = %v", created.Msg)
		}
		if stored, err := h.st.MachineClientByID(ctx, c.GetId()); err != nil || !stored.CheckSecret(first) {
			t.Fatalf("stored %+v, %v", stored, err)
		}

		refusals := []struct {
			name string
			call func() error
			code connect.Code
			want string
		}{
			{"name starting with a digit", func() error {
				_, err := h.api.CreateMachineClient(ctx, req(&adminv1.CreateMachineClientRequest{Name: "9lives"}))
				return err
			}, connect.CodeInvalidArgument, "name"},
			{"negative lifetime", func() error {
				_, err := h.api.CreateMachineClient(ctx, req(&adminv1.CreateMachineClientRequest{Name: "x", TokenTtlSeconds: -1}))
				return err
			}, connect.CodeInvalidArgument, "token_ttl_seconds"},
			{"name taken", func() error {
				_, err := h.api.CreateMachineClient(ctx, req(&adminv1.CreateMachineClientRequest{Name: "deploy"}))
				return err
			}, connect.CodeAlreadyExists, `machine client "deploy" already exists`},
			{"unknown client disabled", func() error {
				_, err := h.api.SetMachineClientDisabled(ctx, req(&adminv1.SetMachineClientDisabledRequest{Name: "Nobody", Disabled: true}))
				return err
			}, connect.CodeNotFound, `no machine client "nobody"`},
			{"no name", func() error {
				_, err := h.api.RotateMachineClientSecret(ctx, req(&adminv1.RotateMachineClientSecretRequest{}))
				return err
			}, connect.CodeInvalidArgument, "name"},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.name, tc.call(), tc.code, tc.want) })
		}

		res, err := h.api.SetMachineClientDisabled(ctx, req(&adminv1.SetMachineClientDisabledRequest{Name: c.GetId(), Disabled: true}))
		if err != nil || res.Msg.GetName() != "deploy" || !res.Msg.GetChanged() {
			t.Errorf("SetMachineClientDisabled by id = %v, %v", res, err)
		}
		if _, err := h.api.SetMachineClientDisabled(ctx, req(&adminv1.SetMachineClientDisabledRequest{Name: "deploy"})); err != nil {
			t.Fatal(err)
		}
		rotated, err := h.api.RotateMachineClientSecret(ctx, req(&adminv1.RotateMachineClientSecretRequest{Name: "deploy"}))
		if err != nil || rotated.Msg.GetClientId() != c.GetId() || rotated.Msg.GetName() != "deploy" {
			t.Fatalf("RotateMachineClientSecret = %v, %v", rotated, err)
		}
		second := rotated.Msg.GetClientSecret()
		if stored, _ := h.st.MachineClientByID(ctx, c.GetId()); stored.CheckSecret(first) || !stored.CheckSecret(second) {
			t.Error("the secret was not replaced")
		}
		list, err := h.api.ListMachineClients(ctx, req(&adminv1.ListMachineClientsRequest{}))
		if err != nil || len(list.Msg.GetClients()) != 1 || list.Msg.GetClients()[0].GetDisabledAt() != 0 {
			t.Fatalf("ListMachineClients = %v, %v", list, err)
		}
		noSecret(t, "ListMachineClients", list.Msg, first, second)
		if del, err := h.api.DeleteMachineClient(ctx, req(&adminv1.DeleteMachineClientRequest{Name: "deploy"})); err != nil || del.Msg.GetName() != "deploy" {
			t.Fatalf("DeleteMachineClient = %v, %v", del, err)
		}
		trail := h.events(t, "admin.client", first, second)
		want := []string{"admin.client " + c.GetId() + "deploy added", "admin.client " + c.GetId() + "deploy disabled", "admin.client " + c.GetId() + "deploy enabled",
			"admin.client " + c.GetId() + "deploy secret_rotated", "admin.client " + c.GetId() + "deploy deleted"}
		if strings.Join(trail, "\n") != strings.Join(want, "\n") {
			t.Errorf("events:\n  %s\nwant:\n  %s", strings.Join(trail, "\n  "), strings.Join(want, "\n  "))
		}
	})
}
