package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func TestConsents(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		if err := f.s.AddApp(ctx, &store.Client{ID: "thirdapp", SecretHash: store.HashSecret("x"), ThirdParty: true}); err != nil {
			t.Fatal(err)
		}
		if got, err := f.s.ConsentedScopes(ctx, f.user.ID, "thirdapp"); err != nil || got != nil {
			t.Fatalf("before any consent: %v, %v", got, err)
		}
		if err := f.s.GrantConsent(ctx, f.user.ID, "thirdapp", []string{"openid", "profile"}); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second)
		if err := f.s.GrantConsent(ctx, f.user.ID, "thirdapp", []string{"profile", "email"}); err != nil {
			t.Fatal(err)
		}
		got, err := f.s.ConsentedScopes(ctx, f.user.ID, "thirdapp")
		if err != nil || !reflect.DeepEqual(got, []string{"openid", "profile", "email"}) {
			t.Fatalf("ConsentedScopes = %v, %v", got, err)
		}
		if err := f.s.GrantConsent(ctx, f.user.ID, "cli", []string{"openid"}); err != nil {
			t.Fatal(err)
		}
		list, err := f.s.ListConsents(ctx, f.user.ID)
		if err != nil || len(list) != 2 || list[0].ClientID != "cli" || list[1].ClientID != "thirdapp" || !list[1].UpdatedAt.After(list[1].CreatedAt) {
			t.Fatalf("ListConsents = %+v, %v", list, err)
		}
		if all, err := f.s.ListConsents(ctx, ""); err != nil || len(all) != 2 {
			t.Fatalf("every consent: %+v, %v", all, err)
		}
		if err := f.s.GrantConsent(ctx, f.user.ID, "thirdapp", []string{"two words"}); err == nil {
			t.Error("a bad scope was consented to")
		}
		if err := f.s.GrantConsent(ctx, f.user.ID, "nope", []string{"openid"}); err == nil {
			t.Error("a consent to an unknown app was stored")
		}

		if err := f.s.RevokeConsent(ctx, f.user.ID, "thirdapp"); err != nil {
			t.Fatal(err)
		}
		if got, err := f.s.ConsentedScopes(ctx, f.user.ID, "thirdapp"); err != nil || got != nil {
			t.Fatalf("after revoking: %v, %v", got, err)
		}
		if err := f.s.RevokeConsent(ctx, f.user.ID, "thirdapp"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoking twice: %v, want ErrNotFound", err)
		}
		// Deleting the app or the user forgets their consents.
		if err := f.s.GrantConsent(ctx, f.user.ID, "thirdapp", []string{"openid"}); err != nil {
			t.Fatal(err)
		}
		if err := f.s.DeleteApp(ctx, "thirdapp"); err != nil {
			t.Fatal(err)
		}
		if err := f.s.DeleteUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if all, err := f.s.ListConsents(ctx, ""); err != nil || len(all) != 0 {
			t.Errorf("after deleting the app and the user: %+v, %v", all, err)
		}
	})
}
