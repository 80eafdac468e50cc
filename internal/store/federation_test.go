package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func TestFederationPolicies(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		c := &store.MachineClient{Name: "ci", SecretHash: store.HashSecret(store.NewMachineClientSecret())}
		if err := f.s.CreateMachineClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		const gh = "https://token.actions.githubusercontent.com"
		p := &store.FederationPolicy{Name: "deploy", Issuer: gh, Audience: "nsauth", Subject: "repo:acme/*:ref:refs/heads/main",
			ClientID: c.ID, MaxTTL: 5 * time.Minute}
		if err := f.s.CreateFederationPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
		dup := *p
		dup.ID = ""
		if err := f.s.CreateFederationPolicy(ctx, &dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("a second policy of the same name: %v, want ErrConflict", err)
		}
		native := *p
		native.ID, native.Name, native.ClientID = "", "native", "cli"
		if err := f.s.CreateFederationPolicy(ctx, &native); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a policy for a native client: %v, want ErrNotFound", err)
		}
		other := &store.FederationPolicy{Name: "k8s", Issuer: "https://kubernetes.example.com", Audience: "nsauth",
			Subject: "system:serviceaccount:ci:deployer", ClientID: c.ID}
		if err := f.s.CreateFederationPolicy(ctx, other); err != nil {
			t.Fatal(err)
		}

		got, err := f.s.FederationPoliciesByIssuer(ctx, gh)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Name != "deploy" || got[0].Subject != p.Subject || got[0].MaxTTL != 5*time.Minute || got[0].ClientID != c.ID {
			t.Fatalf("policies of %s: %+v", gh, got)
		}
		for _, near := range []string{gh + "/", "HTTPS://token.actions.githubusercontent.com", ""} {
			if got, _ := f.s.FederationPoliciesByIssuer(ctx, near); len(got) != 0 {
				t.Fatalf("issuer %q found %+v", near, got)
			}
		}
		all, err := f.s.FederationPolicies(ctx)
		if err != nil || len(all) != 2 || all[0].Name != "deploy" || all[1].Name != "k8s" {
			t.Fatalf("all policies: %+v, %v", all, err)
		}

		// Deleting a policy revokes what was issued under it, and only that.
		under := store.NewID()
		beside := store.NewID()
		for id, grant := range map[string]string{under: p.ID, beside: other.ID} {
			if err := f.s.RecordAccessToken(ctx, &store.AccessToken{ID: id, GrantID: grant, ClientID: c.ID, ExpiresAt: f.clock.Now().Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.s.DeleteFederationPolicy(ctx, "deploy"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.ActiveAccessToken(ctx, under); !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("a token of the deleted policy: %v, want ErrRevoked", err)
		}
		if _, err := f.s.ActiveAccessToken(ctx, beside); err != nil {
			t.Fatalf("a token of another policy: %v", err)
		}
		if err := f.s.DeleteFederationPolicy(ctx, "deploy"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting it again: %v, want ErrNotFound", err)
		}

		// Deleting the client deletes its policies.
		if err := f.s.DeleteMachineClient(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if all, _ := f.s.FederationPolicies(ctx); len(all) != 0 {
			t.Fatalf("policies left after their client was deleted: %+v", all)
		}
	})
}
