package store_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestResourcesFollowTheGrant: the resources (RFC 8707) and max_age of a
// completed auth request are read back with its code; a grant's resources
// stay with its refresh tokens across rotations, and access tokens keep
// their own.
func TestResourcesFollowTheGrant(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		api := []string{"https://api.neosync.example", "urn:neosync:worker"}
		r := &store.AuthRequest{ID: store.NewID(), ClientID: "cli", RedirectURI: "http://127.0.0.1:4242/cb", Scopes: []string{"openid", "offline_access"},
			ResponseType: "code", CodeChallenge: "abc", CodeChallengeMethod: "S256", Resources: api, MaxAge: 90 * time.Second, HasMaxAge: true,
			ExpiresAt: f.clock.Now().Add(10 * time.Minute)}
		if err := f.s.InsertCompletedAuthRequest(ctx, r, f.user.ID, []string{"pwd"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := f.s.SaveCode(ctx, "code-1", r.ID, f.clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, err := f.s.RedeemCode(ctx, "code-1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Resources, api) || got.MaxAge != 90*time.Second || !got.HasMaxAge {
			t.Fatalf("redeemed %+v", got)
		}
		plain := f.completedRequest(t, "code-2")
		if got, err := f.s.AuthRequestByID(ctx, plain.ID); err != nil || got.Resources != nil || got.HasMaxAge || got.MaxAge != 0 {
			t.Fatalf("a request without resources or max_age: %+v, %v", got, err)
		}
		zero := &store.AuthRequest{ID: store.NewID(), ClientID: "cli", HasMaxAge: true, ExpiresAt: f.clock.Now().Add(time.Minute)}
		if err := f.s.InsertCompletedAuthRequest(ctx, zero, f.user.ID, nil, 0); err != nil {
			t.Fatal(err)
		}
		if got, err := f.s.AuthRequestByID(ctx, zero.ID); err != nil || !got.HasMaxAge || got.MaxAge != 0 {
			t.Fatalf("max_age=0: %+v, %v", got, err)
		}

		g := f.grant(r.ID)
		g.Resources = got.Resources
		first := store.RandomToken(32)
		id, err := f.s.CreateRefreshToken(ctx, first, g, f.clock.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		rt, err := f.s.RefreshTokenByValue(ctx, first)
		if err != nil || !reflect.DeepEqual(rt.Resources, api) {
			t.Fatalf("refresh token: %+v, %v", rt, err)
		}
		narrow := &store.AccessToken{ID: store.NewID(), GrantID: r.ID, UserID: f.user.ID, ClientID: "cli", Scopes: []string{"openid"},
			Resources: api[:1], ExpiresAt: f.clock.Now().Add(time.Minute)}
		second := store.RandomToken(32)
		rot, err := f.s.RotateRefreshTokenWithGrace(ctx, store.Rotation{OldID: id, NewValue: second, ExpiresAt: f.clock.Now().Add(time.Hour), Access: narrow})
		if err != nil {
			t.Fatal(err)
		}
		rt, err = f.s.RefreshTokenByValue(ctx, rot.Value)
		if err != nil || !reflect.DeepEqual(rt.Resources, api) {
			t.Fatalf("rotated refresh token: %+v, %v", rt, err)
		}
		at, err := f.s.ActiveAccessToken(ctx, narrow.ID)
		if err != nil || !reflect.DeepEqual(at.Resources, api[:1]) {
			t.Fatalf("access token: %+v, %v", at, err)
		}
		none := &store.AccessToken{ID: store.NewID(), GrantID: r.ID, UserID: f.user.ID, ClientID: "cli", ExpiresAt: f.clock.Now().Add(time.Minute)}
		if err := f.s.RecordAccessToken(ctx, none); err != nil {
			t.Fatal(err)
		}
		if at, err := f.s.ActiveAccessToken(ctx, none.ID); err != nil || at.Resources != nil {
			t.Fatalf("an access token without resources: %+v, %v", at, err)
		}
	})
}
