package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// grantToken records a live access token of grantID (the fixture user's,
// at clientID) and returns its id.
func (f *fixture) grantToken(t *testing.T, grantID, clientID string) string {
	t.Helper()
	id := store.NewID()
	if err := f.s.RecordAccessToken(ctx, &store.AccessToken{ID: id, GrantID: grantID, UserID: f.user.ID, ClientID: clientID,
		Scopes: []string{"openid"}, ExpiresAt: f.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return id
}

// refreshable reports whether a refresh token may still be used.
func (f *fixture) refreshable(t *testing.T, value string) bool {
	t.Helper()
	_, err := f.s.RefreshTokenByValue(ctx, value)
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrRevoked):
		return false
	}
	t.Fatalf("RefreshTokenByValue: %v", err)
	return false
}

func TestReauthenticateSession(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		sess := f.newSession(t, "cookie") // amr pwd otp
		f.clock.Advance(10 * time.Minute)
		at := f.clock.Now()
		if err := f.s.ReauthenticateSession(ctx, sess.ID, at, []string{"pwd", "hwk", "user"}); err != nil {
			t.Fatal(err)
		}
		got, err := f.s.SessionByID(ctx, sess.ID)
		if err != nil || !got.AuthTime.Equal(at) || !slices.Equal(got.AMR, []string{"pwd", "hwk", "user"}) || !got.CreatedAt.Equal(sess.CreatedAt) {
			t.Fatalf("after re-authentication: %+v, %v; want auth_time %v, amr pwd hwk user (the latest proof's, not merged with the login's otp)", got, err, at)
		}

		ended := f.newSession(t, "ended")
		if _, err := f.s.EndSession(ctx, ended.ID, nil); err != nil {
			t.Fatal(err)
		}
		expired := &store.Session{UserID: f.user.ID, Browser: "b1", AuthTime: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Minute)}
		if err := f.s.CreateSession(ctx, expired, "expired"); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
		for name, id := range map[string]string{"an ended session": ended.ID, "an expired session": expired.ID, "no session": "nope"} {
			if err := f.s.ReauthenticateSession(ctx, id, f.clock.Now(), []string{"pwd"}); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("re-authenticating %s: %v, want ErrNotFound", name, err)
			}
		}
		if got, _ := f.s.SessionByID(ctx, ended.ID); got.AuthTime.Equal(f.clock.Now()) {
			t.Error("an ended session was re-authenticated")
		}
	})
}

// TestEndOtherSessions: signing out of the other sessions ends each of
// them and revokes their grants' tokens; this session, and other users',
// go on.
func TestEndOtherSessions(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		if err := f.s.AddApp(ctx, &store.Client{ID: "neosync", SecretHash: store.HashSecret("x")}); err != nil {
			t.Fatal(err)
		}
		bob := &store.User{Username: "bob", PasswordHash: "$argon2id$fake"}
		if err := f.s.CreateUser(ctx, bob); err != nil {
			t.Fatal(err)
		}
		here, phone, laptop := f.newSession(t, "here"), f.newSession(t, "phone"), f.newSession(t, "laptop")
		theirs := &store.Session{UserID: bob.ID, Browser: "b9", AuthTime: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Hour)}
		if err := f.s.CreateSession(ctx, theirs, "bob"); err != nil {
			t.Fatal(err)
		}
		hereRT := f.sessionGrant(t, here, "g-here", "cli", false)
		hereAT := f.grantToken(t, "g-here", "cli")
		phoneRT := f.sessionGrant(t, phone, "g-phone", "neosync", true)
		phoneAT := f.grantToken(t, "g-phone", "neosync")
		laptopRT := f.sessionGrant(t, laptop, "g-laptop", "cli", false)

		grants, err := f.s.EndOtherSessions(ctx, f.user.ID, here.ID)
		if err != nil {
			t.Fatal(err)
		}
		var ended []string
		for _, g := range grants {
			if !g.Revoked {
				t.Errorf("grant %s of an ended session is not revoked", g.GrantID)
			}
			ended = append(ended, g.GrantID)
		}
		slices.Sort(ended)
		if !slices.Equal(ended, []string{"g-laptop", "g-phone"}) {
			t.Fatalf("EndOtherSessions returned %q, want g-laptop, g-phone", ended)
		}
		for _, tc := range []struct {
			name    string
			session string
			live    bool
		}{{"this session", here.ID, true}, {"the phone", phone.ID, false}, {"the laptop", laptop.ID, false}, {"bob's", theirs.ID, true}} {
			if got, err := f.s.SessionByID(ctx, tc.session); err != nil || got.Live(f.clock.Now()) != tc.live {
				t.Errorf("%s: %+v, %v; want live %v", tc.name, got, err, tc.live)
			}
		}
		if !f.refreshable(t, hereRT) || revoked(t, f, hereAT) {
			t.Error("this session's tokens were revoked")
		}
		if f.refreshable(t, phoneRT) || f.refreshable(t, laptopRT) || !revoked(t, f, phoneAT) {
			t.Error("another session's tokens stay valid")
		}
		// Nothing left to end.
		if grants, err := f.s.EndOtherSessions(ctx, f.user.ID, here.ID); err != nil || len(grants) != 0 {
			t.Fatalf("EndOtherSessions again = %+v, %v", grants, err)
		}
	})
}

// TestUserApps: each app signed in within a live session, its last use
// the newest token of its grants there.
func TestUserApps(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		if err := f.s.AddApp(ctx, &store.Client{ID: "neosync", SecretHash: store.HashSecret("x")}); err != nil {
			t.Fatal(err)
		}
		one, two, gone := f.newSession(t, "one"), f.newSession(t, "two"), f.newSession(t, "gone")
		f.sessionGrant(t, one, "g-cli", "cli", false)
		cliAt := f.clock.Now()
		f.sessionGrant(t, one, "g-neosync-1", "neosync", false)
		f.clock.Advance(time.Minute)
		f.grantToken(t, "g-neosync-1", "neosync")
		f.sessionGrant(t, one, "g-neosync-2", "neosync", false)
		f.clock.Advance(time.Minute)
		f.grantToken(t, "g-neosync-2", "neosync")
		neosyncAt := f.clock.Now()
		f.sessionGrant(t, two, "g-two", "cli", false)
		f.clock.Advance(time.Minute)
		// A refresh: the newest refresh token of the grant.
		if _, err := f.s.CreateRefreshToken(ctx, store.RandomToken(32), f.grant("g-two"), f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		twoAt := f.clock.Now()
		f.sessionGrant(t, gone, "g-gone", "cli", false)
		if _, err := f.s.EndSession(ctx, gone.ID, nil); err != nil {
			t.Fatal(err)
		}

		apps, err := f.s.UserApps(ctx, f.user.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.AppUse{
			{ClientID: "neosync", SessionID: one.ID, LastUsedAt: neosyncAt},
			{ClientID: "cli", SessionID: one.ID, LastUsedAt: cliAt},
			{ClientID: "cli", SessionID: two.ID, LastUsedAt: twoAt},
		}
		if one.ID > two.ID {
			want = append(want[2:], want[:2]...)
		}
		if len(apps) != len(want) {
			t.Fatalf("UserApps = %+v, want %+v", apps, want)
		}
		for i := range want {
			if apps[i].ClientID != want[i].ClientID || apps[i].SessionID != want[i].SessionID || !apps[i].LastUsedAt.Equal(want[i].LastUsedAt) {
				t.Errorf("UserApps[%d] = %+v, want %+v", i, apps[i], want[i])
			}
		}
		if apps, err := f.s.UserApps(ctx, "nobody"); err != nil || len(apps) != 0 {
			t.Fatalf("a stranger's apps: %+v, %v", apps, err)
		}
	})
}

// TestRevokeUserTokensExcept: every token of the user is refused but
// those of the grants kept; revoked access tokens are published like
// every revocation.
func TestRevokeUserTokensExcept(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		bob := &store.User{Username: "bob", PasswordHash: "$argon2id$fake"}
		if err := f.s.CreateUser(ctx, bob); err != nil {
			t.Fatal(err)
		}
		values := map[string]string{}
		ats := map[string]string{}
		for _, g := range []string{"g-keep", "g-keep-too", "g-other", "g-device"} {
			values[g] = store.RandomToken(32)
			if _, err := f.s.CreateRefreshToken(ctx, values[g], f.grant(g), f.clock.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			ats[g] = f.grantToken(t, g, "cli")
		}
		bobs := store.RandomToken(32)
		bg := f.grant("g-bob")
		bg.UserID = bob.ID
		if _, err := f.s.CreateRefreshToken(ctx, bobs, bg, f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}

		if err := f.s.RevokeUserTokensExcept(ctx, f.user.ID, []string{"g-keep", "g-keep-too"}); err != nil {
			t.Fatal(err)
		}
		for g, kept := range map[string]bool{"g-keep": true, "g-keep-too": true, "g-other": false, "g-device": false} {
			if f.refreshable(t, values[g]) != kept || revoked(t, f, ats[g]) == kept {
				t.Errorf("grant %s: refreshable %v, access token revoked %v; want kept %v", g, f.refreshable(t, values[g]), revoked(t, f, ats[g]), kept)
			}
		}
		if !f.refreshable(t, bobs) {
			t.Error("another user's token was revoked")
		}
		if err := f.s.RevokeUserTokensExcept(ctx, f.user.ID, nil); err != nil {
			t.Fatal(err)
		}
		if f.refreshable(t, values["g-keep"]) || !revoked(t, f, ats["g-keep"]) {
			t.Error("keeping nothing kept a token")
		}
	})
}

// TestChangePasswordKeepsThisSession: a password changed on the account
// page ends the other sessions and refuses every other token of the user,
// and the session it was changed in goes on.
func TestChangePasswordKeepsThisSession(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		here, other := f.newSession(t, "here"), f.newSession(t, "other")
		hereRT := f.sessionGrant(t, here, "g-here", "cli", false)
		hereAT := f.grantToken(t, "g-here", "cli")
		otherRT := f.sessionGrant(t, other, "g-other", "cli", true)
		otherAT := f.grantToken(t, "g-other", "cli")
		device := store.RandomToken(32)
		if _, err := f.s.CreateRefreshToken(ctx, device, f.grant("g-device"), f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}

		if err := f.s.ChangePassword(ctx, f.user.ID, "$argon2id$new", here.ID); err != nil {
			t.Fatal(err)
		}
		if u, err := f.s.UserByID(ctx, f.user.ID); err != nil || u.PasswordHash != "$argon2id$new" {
			t.Fatalf("after the change: %+v, %v", u, err)
		}
		if got, _ := f.s.SessionByID(ctx, here.ID); !got.Live(f.clock.Now()) {
			t.Error("the session the password was changed in ended")
		}
		if got, _ := f.s.SessionByID(ctx, other.ID); got.Live(f.clock.Now()) {
			t.Error("another session goes on after a password change")
		}
		if grants, _ := f.s.SessionGrants(ctx, other.ID); len(grants) != 1 || !grants[0].Revoked {
			t.Errorf("the other session's grants: %+v, want revoked", grants)
		}
		if !f.refreshable(t, hereRT) || revoked(t, f, hereAT) {
			t.Error("this session's tokens were revoked")
		}
		if f.refreshable(t, otherRT) || f.refreshable(t, device) || !revoked(t, f, otherAT) {
			t.Error("a token outside this session stays valid after a password change")
		}

		// Keeping a session that is not the user's keeps nothing.
		bob := &store.User{Username: "bob", PasswordHash: "$argon2id$fake"}
		if err := f.s.CreateUser(ctx, bob); err != nil {
			t.Fatal(err)
		}
		if err := f.s.ChangePassword(ctx, bob.ID, "$argon2id$bob", here.ID); err != nil {
			t.Fatal(err)
		}
		if !f.refreshable(t, hereRT) {
			t.Error("changing bob's password touched alice's session")
		}
		if err := f.s.ChangePassword(ctx, f.user.ID, "$argon2id$newer", ""); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.s.SessionByID(ctx, here.ID); got.Live(f.clock.Now()) || f.refreshable(t, hereRT) {
			t.Error("a change keeping no session left this one")
		}
		wantErr(t, f.s.ChangePassword(ctx, "no-such-user", "$argon2id$x", ""), store.ErrNotFound)
		if err := f.s.ChangePassword(ctx, f.user.ID, "", ""); err == nil {
			t.Error("an empty hash was stored")
		}
	})
}
