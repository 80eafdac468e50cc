package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// userToken records a live access token of the fixture user at clientID.
func userToken(t *testing.T, f *fixture, clientID string) string {
	t.Helper()
	id := store.NewID()
	if err := f.s.RecordAccessToken(ctx, &store.AccessToken{ID: id, GrantID: store.NewID(), UserID: f.user.ID, ClientID: clientID,
		Scopes: []string{"openid"}, ExpiresAt: f.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return id
}

func revoked(t *testing.T, f *fixture, tokenID string) bool {
	t.Helper()
	live, err := f.s.LiveRevocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range live {
		if r.TokenID == tokenID {
			return true
		}
	}
	return false
}

func neosync() *store.Client {
	return &store.Client{ID: "Neosync", DisplayName: "Neosync", SecretHash: store.HashSecret("app-secret"),
		RedirectURIs:           []string{"https://neosync.example/api/auth/callback/nsauth"},
		PostLogoutRedirectURIs: []string{"https://neosync.example/"},
		Scopes:                 []string{"openid", "profile", "email", "offline_access"},
		Audiences:              []string{"https://api.neosync.example"},
		AccessTokenTTL:         5 * time.Minute, RefreshTokenTTL: 24 * time.Hour,
		BackchannelLogoutURI: "https://neosync.example/api/auth/backchannel"}
}

func TestAppLifecycle(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		app := neosync()
		if err := f.s.AddApp(ctx, app); err != nil {
			t.Fatal(err)
		}
		if app.ID != "neosync" || !reflect.DeepEqual(app.GrantTypes, store.DefaultAppGrantTypes) || app.CreatedAt.IsZero() {
			t.Fatalf("added %+v", app)
		}
		got, err := f.s.ClientByID(ctx, "neosync")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, app) {
			t.Fatalf("read back\n %+v\nwant\n %+v", got, app)
		}
		if !got.CheckSecret("app-secret") || got.CheckSecret("other") || got.Public || got.Native || got.ThirdParty || got.Disabled() {
			t.Fatalf("read back %+v", got)
		}

		pub := &store.Client{ID: "spa", Public: true, Native: true, ThirdParty: true, RedirectURIs: []string{"http://127.0.0.1/cb"},
			GrantTypes: []string{"authorization_code", store.DeviceCodeGrantType}}
		if err := f.s.AddApp(ctx, pub); err != nil {
			t.Fatal(err)
		}
		got, err = f.s.ClientByID(ctx, "spa")
		if err != nil {
			t.Fatal(err)
		}
		if !got.Public || !got.Native || !got.ThirdParty || got.SecretHash != nil || got.CheckSecret("") || len(got.GrantTypes) != 2 {
			t.Fatalf("public app read back %+v", got)
		}

		m := &store.MachineClient{Name: "robot", SecretHash: store.HashSecret("x")}
		if err := f.s.CreateMachineClient(ctx, m); err != nil {
			t.Fatal(err)
		}
		refused := []struct {
			name string
			c    *store.Client
			err  error
		}{
			{"taken by an app", &store.Client{ID: "NEOSYNC", SecretHash: store.HashSecret("y")}, store.ErrConflict},
			{"taken by a machine client", &store.Client{ID: "robot", SecretHash: store.HashSecret("y")}, store.ErrConflict},
			{"a machine client's id", &store.Client{ID: m.ID, SecretHash: store.HashSecret("y")}, nil},
			{"bad name", &store.Client{ID: "9lives", SecretHash: store.HashSecret("y")}, nil},
			{"confidential without secret", &store.Client{ID: "nosecret"}, nil},
			{"public with secret", &store.Client{ID: "pubsecret", Public: true, SecretHash: store.HashSecret("y")}, nil},
			{"unknown grant type", &store.Client{ID: "cc", SecretHash: store.HashSecret("y"), GrantTypes: []string{"client_credentials"}}, nil},
			{"bad scope", &store.Client{ID: "sc", SecretHash: store.HashSecret("y"), Scopes: []string{"two words"}}, nil},
			{"negative ttl", &store.Client{ID: "ttl", SecretHash: store.HashSecret("y"), AccessTokenTTL: -time.Second}, nil},
			{"empty redirect URI", &store.Client{ID: "uri", SecretHash: store.HashSecret("y"), RedirectURIs: []string{""}}, nil},
		}
		for _, tc := range refused {
			err := f.s.AddApp(ctx, tc.c)
			if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Errorf("%s: %v, want an error (%v)", tc.name, err, tc.err)
			}
		}
		if err := f.s.CreateMachineClient(ctx, &store.MachineClient{Name: "neosync", SecretHash: store.HashSecret("x")}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("a machine client named as an app: %v, want ErrConflict", err)
		}

		list, err := f.s.ListApps(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range list {
			ids = append(ids, c.ID)
		}
		if !reflect.DeepEqual(ids, []string{"cli", "neosync", "spa"}) {
			t.Fatalf("ListApps = %v", ids)
		}

		f.clock.Advance(time.Second)
		upd := neosync()
		upd.ID, upd.DisplayName, upd.ThirdParty = "neosync", "Neosync Cloud", true
		upd.RedirectURIs = []string{"https://app.neosync.example/cb"}
		upd.PostLogoutRedirectURIs, upd.Audiences, upd.BackchannelLogoutURI = nil, nil, ""
		upd.GrantTypes = []string{"authorization_code"}
		upd.SecretHash, upd.Public = nil, true // ignored
		if err := f.s.UpdateApp(ctx, upd); err != nil {
			t.Fatal(err)
		}
		got, err = f.s.ClientByID(ctx, "neosync")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, upd) || got.DisplayName != "Neosync Cloud" || !got.ThirdParty || got.Public || !got.CheckSecret("app-secret") ||
			got.PostLogoutRedirectURIs != nil || !got.UpdatedAt.After(got.CreatedAt) || got.Title() != "Neosync Cloud" {
			t.Fatalf("after update %+v", got)
		}
		if err := f.s.UpdateApp(ctx, &store.Client{ID: "nope"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("updating a missing app: %v", err)
		}
		if err := f.s.UpdateApp(ctx, &store.Client{ID: m.ID}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("updating a machine client as an app: %v", err)
		}
		if err := f.s.SetAppSecret(ctx, "spa", store.HashSecret("z")); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("a public app's secret: %v, want a refusal", err)
		}

		steps := []struct {
			name string
			do   func() error
		}{
			{"disable", func() error { return f.s.SetAppDisabled(ctx, "neosync", true) }},
			{"rotate secret", func() error { return f.s.SetAppSecret(ctx, "neosync", store.HashSecret("new")) }},
			{"delete", func() error { return f.s.DeleteApp(ctx, "neosync") }},
		}
		for _, st := range steps {
			tok := userToken(t, f, "neosync")
			other := userToken(t, f, "cli")
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if !revoked(t, f, tok) {
				t.Errorf("%s did not revoke the app's live token", st.name)
			}
			if revoked(t, f, other) {
				t.Errorf("%s revoked another app's token", st.name)
			}
			switch st.name {
			case "disable":
				got, err := f.s.ClientByID(ctx, "neosync")
				if err != nil || !got.Disabled() {
					t.Fatalf("a disabled app: %+v, %v", got, err)
				}
				if err := f.s.SetAppDisabled(ctx, "neosync", false); err != nil {
					t.Fatal(err)
				}
				if got, _ := f.s.ClientByID(ctx, "neosync"); got.Disabled() {
					t.Error("not enabled again")
				}
			case "rotate secret":
				got, _ := f.s.ClientByID(ctx, "neosync")
				if got.CheckSecret("app-secret") || !got.CheckSecret("new") {
					t.Error("the secret was not replaced")
				}
			}
		}
		if _, err := f.s.ClientByID(ctx, "neosync"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		for name, err := range map[string]error{
			"disable":         f.s.SetAppDisabled(ctx, "neosync", true),
			"enable":          f.s.SetAppDisabled(ctx, "neosync", false),
			"rotate":          f.s.SetAppSecret(ctx, "neosync", store.HashSecret("y")),
			"delete":          f.s.DeleteApp(ctx, "neosync"),
			"delete machine":  f.s.DeleteApp(ctx, m.ID),
			"disable machine": f.s.SetAppDisabled(ctx, m.ID, true),
		} {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s of a missing app: %v, want ErrNotFound", name, err)
			}
		}
		if _, err := f.s.MachineClientByID(ctx, m.ID); err != nil {
			t.Errorf("the machine client went: %v", err)
		}
		// The name is free again.
		if err := f.s.AddApp(ctx, neosync()); err != nil {
			t.Errorf("adding a deleted app's name again: %v", err)
		}
	})
}

// TestEnsureClientAsApp: the broker's client registered by EnsureClient is
// an app with the settings given.
func TestEnsureClientAsApp(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t, store.Options{})
		want := &store.Client{ID: "nsauth-cli", SecretHash: store.HashSecret("s"), Native: true,
			GrantTypes: []string{"authorization_code", "refresh_token", store.DeviceCodeGrantType}}
		if created, err := s.EnsureClient(ctx, want); err != nil || !created {
			t.Fatalf("EnsureClient = %v, %v", created, err)
		}
		got, err := s.ClientByID(ctx, "nsauth-cli")
		if err != nil {
			t.Fatal(err)
		}
		if !got.Native || got.Public || got.ThirdParty || !reflect.DeepEqual(got.GrantTypes, want.GrantTypes) || !got.CheckSecret("s") {
			t.Fatalf("read back %+v", got)
		}
		if err := s.CreateMachineClient(ctx, &store.MachineClient{Name: "nsauth-cli", SecretHash: store.HashSecret("x")}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("a machine client named as the broker: %v, want ErrConflict", err)
		}
		if _, err := s.EnsureClient(ctx, &store.Client{ID: "other", SecretHash: store.HashSecret("o")}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ClientByID(ctx, "other"); err != nil || !reflect.DeepEqual(got.GrantTypes, store.BrokerGrantTypes) {
			t.Fatalf("a client ensured without grant types: %+v, %v", got, err)
		}
	})
}

// TestEnsureClientAtOnce: replicas starting together against an empty
// database each register the broker's client at the same moment; every
// one succeeds, one of them creates it. (Two replicas in CI once failed
// at start on the name's unique index: "duplicate key value violates
// unique constraint nsauth_clients_name".) Each round's calls are
// released together; on PostgreSQL a round or two of 30 is enough to
// fail without the fix.
func TestEnsureClientAtOnce(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t, store.Options{})
		const n = 8
		for round := range 30 {
			c := &store.Client{ID: fmt.Sprintf("broker-%d", round), SecretHash: store.HashSecret("s")}
			start := make(chan struct{})
			created := make([]bool, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					created[i], errs[i] = s.EnsureClient(ctx, c)
				})
			}
			close(start)
			wg.Wait()
			made := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("round %d: EnsureClient %d of %d at once: %v", round, i+1, n, errs[i])
				}
				if created[i] {
					made++
				}
			}
			if made != 1 {
				t.Fatalf("round %d: %d calls created the client, want 1", round, made)
			}
		}
	})
}
