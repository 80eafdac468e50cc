package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// machineToken records a live access token of a machine client.
func machineToken(t *testing.T, f *fixture, clientID string) string {
	t.Helper()
	id := store.NewID()
	if err := f.s.RecordAccessToken(ctx, &store.AccessToken{ID: id, GrantID: store.NewID(), ClientID: clientID, Scopes: []string{"read"},
		ExpiresAt: f.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestMachineClientLifecycle(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		secret := store.NewMachineClientSecret()
		c := &store.MachineClient{Name: "CI-Deploy", SecretHash: store.HashSecret(secret), Scopes: []string{"read", "write"}, TokenTTL: 10 * time.Minute}
		if err := f.s.CreateMachineClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(c.ID, store.MachineClientIDPrefix) || c.Name != "ci-deploy" {
			t.Fatalf("created %q named %q", c.ID, c.Name)
		}
		dup := &store.MachineClient{Name: "ci-deploy", SecretHash: store.HashSecret("x")}
		if err := f.s.CreateMachineClient(ctx, dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("a second client of the same name: %v, want ErrConflict", err)
		}
		for _, scopes := range [][]string{{"openid"}, {"read", "offline_access"}, {"two words"}, {""}} {
			bad := &store.MachineClient{Name: "bad", SecretHash: store.HashSecret("x"), Scopes: scopes}
			if err := f.s.CreateMachineClient(ctx, bad); err == nil {
				t.Errorf("a client allowed %q was created", scopes)
			}
		}
		got, err := f.s.MachineClientByName(ctx, "CI-DEPLOY")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != c.ID || got.TokenTTL != 10*time.Minute || strings.Join(got.Scopes, " ") != "read write" || got.Disabled() || !got.CheckSecret(secret) || got.CheckSecret(secret+"x") {
			t.Fatalf("read back %+v", got)
		}
		if _, err := f.s.ClientByID(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ClientByID found a machine client: %v", err)
		}
		if _, err := f.s.MachineClientByID(ctx, "cli"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("MachineClientByID found a native client: %v", err)
		}

		steps := []struct {
			name string
			do   func() error
		}{
			{"disable", func() error { return f.s.SetMachineClientDisabled(ctx, c.ID, true) }},
			{"rotate secret", func() error { return f.s.SetMachineClientSecret(ctx, c.ID, store.HashSecret("new")) }},
			{"delete", func() error { return f.s.DeleteMachineClient(ctx, c.ID) }},
		}
		for _, st := range steps {
			tok := machineToken(t, f, c.ID)
			if _, err := f.s.ActiveAccessToken(ctx, tok); err != nil {
				t.Fatalf("before %s: %v", st.name, err)
			}
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			live, err := f.s.LiveRevocations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, r := range live {
				found = found || r.TokenID == tok
			}
			if !found {
				t.Errorf("%s did not revoke the client's live token", st.name)
			}
			if st.name == "disable" {
				got, _ := f.s.MachineClientByID(ctx, c.ID)
				if !got.Disabled() {
					t.Error("not disabled")
				}
				if err := f.s.SetMachineClientDisabled(ctx, c.ID, false); err != nil {
					t.Fatal(err)
				}
				if got, _ := f.s.MachineClientByID(ctx, c.ID); got.Disabled() {
					t.Error("not enabled again")
				}
			}
			if st.name == "rotate secret" {
				got, _ := f.s.MachineClientByID(ctx, c.ID)
				if got.CheckSecret(secret) || !got.CheckSecret("new") {
					t.Error("the secret was not replaced")
				}
			}
		}
		if _, err := f.s.MachineClientByID(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		for name, err := range map[string]error{
			"disable":       f.s.SetMachineClientDisabled(ctx, c.ID, true),
			"enable":        f.s.SetMachineClientDisabled(ctx, c.ID, false),
			"rotate":        f.s.SetMachineClientSecret(ctx, c.ID, store.HashSecret("y")),
			"delete":        f.s.DeleteMachineClient(ctx, c.ID),
			"delete native": f.s.DeleteMachineClient(ctx, "cli"),
		} {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s of a missing client: %v, want ErrNotFound", name, err)
			}
		}
		list, err := f.s.ListMachineClients(ctx)
		if err != nil || len(list) != 0 {
			t.Fatalf("list after delete: %v %v", list, err)
		}
	})
}

func TestNormalizeClientName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"CI", "ci", true},
		{"deploy-bot_2.prod", "deploy-bot_2.prod", true},
		{"", "", false},
		{"2bots", "", false},
		{"with space", "", false},
		{strings.Repeat("a", 65), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := store.NormalizeClientName(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("NormalizeClientName(%q) = %q, %v", tt.in, got, err)
			}
			if err != nil && tt.in != "" && strings.Contains(err.Error(), tt.in) {
				t.Error("the error repeats the input")
			}
		})
	}
}
