package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// newSession starts a session of the fixture user in browser "b1".
func (f *fixture) newSession(t *testing.T, token string) *store.Session {
	t.Helper()
	sess := &store.Session{UserID: f.user.ID, Browser: "b1", AuthTime: f.clock.Now(), AMR: []string{"pwd", "otp"},
		ExpiresAt: f.clock.Now().Add(7 * 24 * time.Hour)}
	if err := f.s.CreateSession(ctx, sess, token); err != nil {
		t.Fatal(err)
	}
	return sess
}

// sessionGrant records a grant with a live refresh token within sess and
// returns the refresh token's value.
func (f *fixture) sessionGrant(t *testing.T, sess *store.Session, grantID, clientID string, offline bool) string {
	t.Helper()
	f.clock.Advance(time.Millisecond) // grants are listed in the order they were recorded
	g := f.grant(grantID)
	g.ClientID = clientID
	value := store.RandomToken(32)
	if _, err := f.s.CreateRefreshToken(ctx, value, g, f.clock.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := f.s.AddSessionGrant(ctx, store.SessionGrant{SessionID: sess.ID, GrantID: grantID, ClientID: clientID, Offline: offline}); err != nil {
		t.Fatal(err)
	}
	return value
}

func TestSessionLookup(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		sess := f.newSession(t, "cookie-1")
		if sess.ID == "" || sess.CreatedAt.IsZero() || !sess.LastSeenAt.Equal(sess.CreatedAt) {
			t.Fatalf("created %+v", sess)
		}
		got, err := f.s.SessionByToken(ctx, "cookie-1", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != sess.ID || got.UserID != f.user.ID || got.Browser != "b1" || !got.AuthTime.Equal(sess.AuthTime) ||
			len(got.AMR) != 2 || got.AMR[1] != "otp" || !got.ExpiresAt.Equal(sess.ExpiresAt) || !got.Live(f.clock.Now()) {
			t.Fatalf("SessionByToken = %+v, want %+v", got, sess)
		}
		if _, err := f.s.SessionByToken(ctx, "cookie-2", time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a wrong token: %v", err)
		}
		raw, err := store.RawForTest(f.s, `SELECT token_hash FROM nsauth_browser_sessions WHERE id = ?`, sess.ID)
		if err != nil || string(raw) == "cookie-1" || string(raw) != string(store.HashSecret("cookie-1")) {
			t.Fatalf("stored %q, %v: want the digest only", raw, err)
		}

		// A lookup is no sign of life, nor a touch by another browser:
		// both leave the idle timer running.
		f.clock.Advance(50 * time.Minute)
		if got, err := f.s.SessionByToken(ctx, "cookie-1", time.Hour); err != nil || !got.LastSeenAt.Equal(sess.CreatedAt) {
			t.Fatalf("a lookup after 50 minutes: %+v, %v; want it found, not marked seen", got, err)
		}
		if _, err := f.s.TouchSession(ctx, sess.ID, "b2", time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("touched by another browser: %v, want ErrNotFound", err)
		}
		f.clock.Advance(11 * time.Minute)
		if _, err := f.s.SessionByToken(ctx, "cookie-1", time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("looked up and touched by another browser only, idle for 61 minutes: %v, want ErrNotFound", err)
		}
		if _, err := f.s.TouchSession(ctx, sess.ID, "b1", time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("its own browser revives an idled-out session: %v, want ErrNotFound", err)
		}

		// Each use by its own browser is a sign of life: 50 minutes,
		// twice, stays within an idle hour; 61 minutes do not.
		sess = f.newSession(t, "cookie-3")
		f.clock.Advance(50 * time.Minute)
		if got, err := f.s.TouchSession(ctx, sess.ID, "b1", time.Hour); err != nil || got.ID != sess.ID || !got.LastSeenAt.Equal(f.clock.Now()) {
			t.Fatalf("after 50 minutes: %+v, %v", got, err)
		}
		f.clock.Advance(50 * time.Minute)
		if _, err := f.s.TouchSession(ctx, sess.ID, "b1", time.Hour); err != nil {
			t.Fatalf("after 50 more minutes: %v", err)
		}
		if got, err := f.s.SessionByToken(ctx, "cookie-3", time.Hour); err != nil || !got.LastSeenAt.Equal(f.clock.Now()) {
			t.Fatalf("looked up after its uses: %+v, %v", got, err)
		}
		f.clock.Advance(61 * time.Minute)
		if _, err := f.s.SessionByToken(ctx, "cookie-3", time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("idle for 61 minutes: %v, want ErrNotFound", err)
		}
		if _, err := f.s.TouchSession(ctx, sess.ID, "b1", time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("touched when idle for 61 minutes: %v, want ErrNotFound", err)
		}
		if _, err := f.s.SessionByToken(ctx, "cookie-3", 0); err != nil {
			t.Fatalf("without an idle timeout: %v", err)
		}
		if _, err := f.s.TouchSession(ctx, sess.ID, "b1", 0); err != nil {
			t.Fatalf("touched without an idle timeout: %v", err)
		}
		f.clock.Advance(7 * 24 * time.Hour)
		if _, err := f.s.SessionByToken(ctx, "cookie-3", 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("past its expiry: %v, want ErrNotFound", err)
		}
		if _, err := f.s.TouchSession(ctx, sess.ID, "b1", 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("touched past its expiry: %v, want ErrNotFound", err)
		}
		if got, err := f.s.SessionByID(ctx, sess.ID); err != nil || got.Live(f.clock.Now()) {
			t.Fatalf("SessionByID of an expired session: %+v, %v", got, err)
		}
		if _, err := f.s.SessionByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SessionByID of nothing: %v", err)
		}
		for name, s := range map[string]*store.Session{
			"no user":    {Browser: "b", ExpiresAt: f.clock.Now().Add(time.Hour)},
			"no browser": {UserID: f.user.ID, ExpiresAt: f.clock.Now().Add(time.Hour)},
			"no expiry":  {UserID: f.user.ID, Browser: "b"},
		} {
			if err := f.s.CreateSession(ctx, s, "t-"+name); err == nil {
				t.Errorf("a session with %s was created", name)
			}
		}
		if err := f.s.CreateSession(ctx, &store.Session{UserID: f.user.ID, Browser: "b", ExpiresAt: f.clock.Now().Add(time.Hour)}, "cookie-1"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("a second session under one token: %v, want ErrConflict", err)
		}
	})
}

func TestSessionList(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		bob := &store.User{Username: "bob", PasswordHash: "$argon2id$fake"}
		if err := f.s.CreateUser(ctx, bob); err != nil {
			t.Fatal(err)
		}
		first := f.newSession(t, "a1")
		f.clock.Advance(time.Second)
		second := f.newSession(t, "a2")
		f.clock.Advance(time.Second)
		theirs := &store.Session{UserID: bob.ID, Browser: "b2", AuthTime: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Minute)}
		if err := f.s.CreateSession(ctx, theirs, "b1"); err != nil {
			t.Fatal(err)
		}
		ended := f.newSession(t, "a3")
		if _, err := f.s.EndSession(ctx, ended.ID, nil); err != nil {
			t.Fatal(err)
		}
		ids := func(ss []store.Session, err error) []string {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, s := range ss {
				out = append(out, s.ID)
			}
			return out
		}
		if got := ids(f.s.ListSessions(ctx, f.user.ID)); len(got) != 2 || got[0] != second.ID || got[1] != first.ID {
			t.Errorf("alice's sessions: %v, want %v newest first", got, []string{second.ID, first.ID})
		}
		if got := ids(f.s.ListSessions(ctx, "")); len(got) != 3 || got[0] != theirs.ID {
			t.Errorf("every session: %v", got)
		}
		f.clock.Advance(2 * time.Minute)
		if got := ids(f.s.ListSessions(ctx, bob.ID)); len(got) != 0 {
			t.Errorf("bob's expired session is listed: %v", got)
		}
	})
}

func TestEndSession(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		if err := f.s.AddApp(ctx, &store.Client{ID: "neosync", SecretHash: store.HashSecret("x")}); err != nil {
			t.Fatal(err)
		}
		if err := f.s.AddApp(ctx, &store.Client{ID: "grafana", SecretHash: store.HashSecret("x")}); err != nil {
			t.Fatal(err)
		}
		sess := f.newSession(t, "cookie")
		signingOut := f.sessionGrant(t, sess, "g-neosync", "neosync", true)
		online := f.sessionGrant(t, sess, "g-cli", "cli", false)
		offline := f.sessionGrant(t, sess, "g-grafana", "grafana", true)
		// A grant recorded twice is one grant.
		if err := f.s.AddSessionGrant(ctx, store.SessionGrant{SessionID: sess.ID, GrantID: "g-cli", ClientID: "cli"}); err != nil {
			t.Fatal(err)
		}
		outside := store.RandomToken(32)
		if _, err := f.s.CreateRefreshToken(ctx, outside, f.grant("g-device"), f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		grants, err := f.s.SessionGrants(ctx, sess.ID)
		if err != nil || len(grants) != 3 || grants[0].GrantID != "g-neosync" || !grants[0].Offline || grants[1].Offline || grants[0].Revoked {
			t.Fatalf("SessionGrants = %+v, %v", grants, err)
		}
		if got, err := f.s.SessionOfGrant(ctx, "g-grafana"); err != nil || got.ID != sess.ID {
			t.Fatalf("SessionOfGrant = %+v, %v", got, err)
		}
		if _, err := f.s.SessionOfGrant(ctx, "g-device"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SessionOfGrant of a grant outside sessions: %v", err)
		}

		// The logout rule: neosync signs out; other apps' offline grants stay.
		keep := func(g store.SessionGrant) bool { return g.Offline && g.ClientID != "neosync" }
		grants, err = f.s.EndSession(ctx, sess.ID, keep)
		if err != nil {
			t.Fatal(err)
		}
		revokedOf := map[string]bool{}
		for _, g := range grants {
			revokedOf[g.GrantID] = g.Revoked
		}
		if len(grants) != 3 || !revokedOf["g-neosync"] || !revokedOf["g-cli"] || revokedOf["g-grafana"] {
			t.Fatalf("EndSession = %+v", grants)
		}
		for _, tc := range []struct {
			name, value string
			err         error
		}{
			{"the signing-out app's offline grant", signingOut, store.ErrRevoked},
			{"an online grant", online, store.ErrRevoked},
			{"another app's offline grant", offline, nil},
			{"a grant outside the session", outside, nil},
		} {
			_, err := f.s.RefreshTokenByValue(ctx, tc.value)
			if (tc.err == nil && err != nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
			}
		}
		if _, err := f.s.SessionByToken(ctx, "cookie", 0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an ended session is found by its cookie: %v", err)
		}
		if _, err := f.s.TouchSession(ctx, sess.ID, "b1", 0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an ended session is touched: %v", err)
		}
		if got, err := f.s.SessionByID(ctx, sess.ID); err != nil || got.EndedAt.IsZero() || got.Live(f.clock.Now()) {
			t.Errorf("SessionByID after the end: %+v, %v", got, err)
		}
		if err := f.s.AddSessionGrant(ctx, store.SessionGrant{SessionID: sess.ID, GrantID: "late", ClientID: "cli"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a grant recorded in an ended session: %v, want ErrNotFound", err)
		}

		// Again: nothing more is revoked.
		again, err := f.s.EndSession(ctx, sess.ID, nil)
		if err != nil || len(again) != 3 {
			t.Fatalf("ending again: %+v, %v", again, err)
		}
		if _, err := f.s.RefreshTokenByValue(ctx, offline); err != nil {
			t.Errorf("ending again revoked the kept grant: %v", err)
		}
		if _, err := f.s.EndSession(ctx, "nope", nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ending an unknown session: %v", err)
		}

		// Deleting an app drops its links; the session stays.
		if err := f.s.DeleteApp(ctx, "grafana"); err != nil {
			t.Fatal(err)
		}
		if grants, err := f.s.SessionGrants(ctx, sess.ID); err != nil || len(grants) != 2 {
			t.Errorf("after deleting an app: %+v, %v", grants, err)
		}

		// A day after its end, the session goes.
		f.clock.Advance(25 * time.Hour)
		if _, err := f.s.DeleteExpired(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.SessionByID(ctx, sess.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a session ended a day ago is kept: %v", err)
		}
	})
}

func TestUserChangesEndSessions(t *testing.T) {
	t.Parallel()
	steps := []struct {
		name string
		do   func(f *fixture) error
		ends bool
	}{
		{"EndUserSessions", func(f *fixture) error {
			n, err := f.s.EndUserSessions(ctx, f.user.ID)
			if err == nil && n != 2 {
				return errors.New("not 2 sessions ended")
			}
			return err
		}, true},
		{"disable", func(f *fixture) error { return f.s.SetDisabled(ctx, "alice", true) }, true},
		{"password change", func(f *fixture) error { return f.s.SetPassword(ctx, "alice", "$argon2id$other") }, true},
		{"enable", func(f *fixture) error { return f.s.SetDisabled(ctx, "alice", false) }, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
				f := newFixture(t, b)
				bob := &store.User{Username: "bob", PasswordHash: "$argon2id$fake"}
				if err := f.s.CreateUser(ctx, bob); err != nil {
					t.Fatal(err)
				}
				one, two := f.newSession(t, "c1"), f.newSession(t, "c2")
				tok := f.sessionGrant(t, one, "g1", "cli", true)
				theirs := &store.Session{UserID: bob.ID, Browser: "b2", ExpiresAt: f.clock.Now().Add(time.Hour)}
				if err := f.s.CreateSession(ctx, theirs, "c3"); err != nil {
					t.Fatal(err)
				}
				if err := st.do(f); err != nil {
					t.Fatal(err)
				}
				for _, id := range []string{one.ID, two.ID} {
					got, err := f.s.SessionByID(ctx, id)
					if err != nil || got.EndedAt.IsZero() == st.ends {
						t.Errorf("session after %s: %+v, %v (ended: want %v)", st.name, got, err, st.ends)
					}
				}
				_, err := f.s.RefreshTokenByValue(ctx, tok)
				if st.ends != errors.Is(err, store.ErrRevoked) {
					t.Errorf("the session's refresh token after %s: %v", st.name, err)
				}
				if got, err := f.s.SessionByID(ctx, theirs.ID); err != nil || !got.EndedAt.IsZero() {
					t.Errorf("another user's session after %s: %+v, %v", st.name, got, err)
				}
			})
		})
	}
}

// TestEndSessionRacesAGrant: a grant recorded while its session ends is
// either refused or revoked with the session, on every replica.
func TestEndSessionRacesAGrant(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		other := b.Reopen(t, f.s, store.Options{Now: f.clock.Now})
		for i := range 10 {
			sess := f.newSession(t, store.RandomToken(16))
			grantID := store.NewID()
			value := store.RandomToken(32)
			if _, err := f.s.CreateRefreshToken(ctx, value, f.grant(grantID), f.clock.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			added := make(chan error, 1)
			go func() {
				added <- other.AddSessionGrant(ctx, store.SessionGrant{SessionID: sess.ID, GrantID: grantID, ClientID: "cli"})
			}()
			if _, err := f.s.EndSession(ctx, sess.ID, nil); err != nil {
				t.Fatal(err)
			}
			err := <-added
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("round %d: AddSessionGrant: %v", i, err)
			}
			if err == nil {
				if _, err := f.s.RefreshTokenByValue(ctx, value); !errors.Is(err, store.ErrRevoked) {
					t.Fatalf("round %d: a grant recorded in a session that ended is alive: %v", i, err)
				}
			}
		}
	})
}
