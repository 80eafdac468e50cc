package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// followed collects what a follower is told.
type followed struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

func (f *followed) apply(rs []store.Revocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rs {
		f.ids[r.TokenID] = r.ExpiresAt
	}
}

func (f *followed) has(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.ids[id]
	return ok
}

// follow starts following s's revocations until the test ends.
func follow(t *testing.T, s *store.Store, cfg store.FollowConfig) *followed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &followed{ids: map[string]time.Time{}}
	if err := s.FollowRevocations(ctx, cfg, f.apply); err != nil {
		t.Fatal(err)
	}
	return f
}

// within polls cond until it holds or d has passed, and reports how long
// it took; no sleep before a negative check.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRevocationsFollowed checks that each way of revoking access tokens
// records the live ones and that a follower learns of them within a
// second: through the same handle, and through another (another process,
// for SQLite; another replica, for PostgreSQL). Tokens expired for longer
// than any clock skew are marked revoked but not recorded.
func TestRevocationsFollowed(t *testing.T) {
	t.Parallel()
	type tokens struct{ live, expired, other string }
	tests := []struct {
		name string
		// revoke revokes through s the token live of the grant grantID,
		// among others.
		revoke func(t *testing.T, f *fixture, s *store.Store, grantID, live string)
	}{
		{"RevokeAccessToken", func(t *testing.T, f *fixture, s *store.Store, _, live string) {
			if err := s.RevokeAccessToken(ctx, live); err != nil {
				t.Fatal(err)
			}
		}},
		{"RevokeGrant", func(t *testing.T, f *fixture, s *store.Store, g, _ string) {
			if _, err := s.RevokeGrant(ctx, g, f.user.ID, "cli"); err != nil {
				t.Fatal(err)
			}
		}},
		{"refresh token revoked", func(t *testing.T, f *fixture, s *store.Store, g, _ string) {
			rt := f.refreshToken(t, g)
			if err := s.RevokeRefreshToken(ctx, rt); err != nil {
				t.Fatal(err)
			}
		}},
		{"refresh token reused", func(t *testing.T, f *fixture, s *store.Store, g, _ string) {
			rt := f.refreshToken(t, g)
			if _, err := s.RotateRefreshToken(ctx, rt, "next-value", nil, f.clock.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			_, err := s.RotateRefreshToken(ctx, rt, "other-value", nil, f.clock.Now().Add(time.Hour))
			wantErr(t, err, store.ErrReused)
		}},
		{"code replayed", func(t *testing.T, f *fixture, s *store.Store, g, _ string) {
			// g is a code's auth request; see grantFor.
			_, err := s.RedeemCode(ctx, "code-"+g)
			wantErr(t, err, store.ErrReused)
		}},
		{"user disabled", func(t *testing.T, f *fixture, s *store.Store, _, _ string) {
			if err := s.SetDisabled(ctx, f.user.Username, true); err != nil {
				t.Fatal(err)
			}
		}},
		{"password changed", func(t *testing.T, f *fixture, s *store.Store, _, _ string) {
			if err := s.SetPassword(ctx, f.user.Username, "$argon2id$other"); err != nil {
				t.Fatal(err)
			}
		}},
		{"user deleted", func(t *testing.T, f *fixture, s *store.Store, _, _ string) {
			if err := s.DeleteUser(ctx, f.user.Username); err != nil {
				t.Fatal(err)
			}
		}},
	}
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		for _, tt := range tests {
			for _, where := range []string{"same handle", "other handle"} {
				t.Run(tt.name+"/"+where, func(t *testing.T) {
					t.Parallel()
					f := newFixture(t, b)
					s := f.s
					if where == "other handle" {
						s = b.Reopen(t, f.s, store.Options{Now: f.clock.Now})
					}
					fl := follow(t, f.s, store.FollowConfig{ResyncInterval: time.Hour})
					g := f.grantFor(t)
					tk := tokens{live: f.accessToken(t, g, time.Hour), expired: f.accessToken(t, g, -store.RevocationRetention-time.Second), other: f.accessToken(t, "another-grant", time.Hour)}
					tt.revoke(t, f, s, g, tk.live)
					within(t, time.Second, "the follower learns of the revocation", func() bool { return fl.has(tk.live) })
					live, err := f.s.LiveRevocations(ctx)
					if err != nil {
						t.Fatal(err)
					}
					var ids []string
					for _, r := range live {
						ids = append(ids, r.TokenID)
					}
					wantOther := tt.name == "user disabled" || tt.name == "password changed" || tt.name == "user deleted"
					for id, want := range map[string]bool{tk.live: true, tk.expired: false, tk.other: wantOther} {
						got := false
						for _, x := range ids {
							got = got || x == id
						}
						if got != want {
							t.Errorf("LiveRevocations holds %s: %v, want %v (%v)", id, got, want, ids)
						}
					}
					if fl.has(tk.expired) {
						t.Error("the follower was told of an expired token")
					}
				})
			}
		}
	})
}

// grantFor completes an auth request, redeems its code (as "code-"+id)
// and returns its id, the grant id of the tokens issued from it.
func (f *fixture) grantFor(t *testing.T) string {
	t.Helper()
	r := &store.AuthRequest{ID: store.NewID(), ClientID: "cli", RedirectURI: "http://127.0.0.1:4242/cb", Scopes: []string{"openid"},
		State: "st", ResponseType: "code", ExpiresAt: f.clock.Now().Add(10 * time.Minute)}
	if err := f.s.InsertCompletedAuthRequest(ctx, r, f.user.ID, []string{"pwd"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SaveCode(ctx, "code-"+r.ID, r.ID, f.clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.RedeemCode(ctx, "code-"+r.ID); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

func (f *fixture) accessToken(t *testing.T, grantID string, ttl time.Duration) string {
	t.Helper()
	at := &store.AccessToken{ID: store.NewID(), GrantID: grantID, UserID: f.user.ID, ClientID: "cli", ExpiresAt: f.clock.Now().Add(ttl)}
	if err := f.s.RecordAccessToken(ctx, at); err != nil {
		t.Fatal(err)
	}
	return at.ID
}

func (f *fixture) refreshToken(t *testing.T, grantID string) string {
	t.Helper()
	id, err := f.s.CreateRefreshToken(ctx, "rt-"+grantID, f.grant(grantID), f.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestFollowerLoadsExisting checks that a follower starts with what was
// revoked before it started, without what has expired since.
func TestFollowerLoadsExisting(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		g := f.grantFor(t)
		short, long := f.accessToken(t, g, time.Minute), f.accessToken(t, g, time.Hour)
		if _, err := f.s.RevokeGrant(ctx, g, f.user.ID, "cli"); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute + store.RevocationRetention + time.Second)
		fl := follow(t, f.s, store.FollowConfig{})
		if !fl.has(long) || fl.has(short) {
			t.Fatalf("follower holds %v; want %s and not the expired %s", fl.ids, long, short)
		}
		// Expired revocations are collected with the rest.
		if _, err := f.s.DeleteExpired(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRevocationOutlivesItsTokenByTheClockSkew: a verifier accepts a token
// for its clock skew past its expiry (NSAUTH_CLOCK_SKEW, at most 10
// minutes), so a revocation is kept, loaded and answered that long after
// its token expired, and a token revoked in that window is recorded: until
// then, neither a replica that starts nor the store's answer to a full
// set lets it through. Fails when revocations go at their token's expiry.
func TestRevocationOutlivesItsTokenByTheClockSkew(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		g := f.grantFor(t)
		early, late := f.accessToken(t, g, time.Minute), f.accessToken(t, "another-grant", time.Minute)
		if err := f.s.RevokeAccessToken(ctx, early); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute + store.RevocationRetention - time.Second) // both expired, within the skew
		// Revoked after its expiry, while a verifier may still accept it.
		if err := f.s.RevokeAccessToken(ctx, late); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.DeleteExpired(ctx); err != nil {
			t.Fatal(err)
		}
		fl := follow(t, f.s, store.FollowConfig{})
		for _, id := range []string{early, late} {
			if !fl.has(id) {
				t.Errorf("a replica starting now does not load the revocation of %s, expired within the skew", id)
			}
			if got, err := f.s.IsAccessTokenRevoked(ctx, id); err != nil || !got {
				t.Errorf("IsAccessTokenRevoked(%s) within the skew = %v, %v; want true", id, got, err)
			}
		}
		f.clock.Advance(2 * time.Second) // past the skew: nothing left to refuse
		if _, err := f.s.DeleteExpired(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := f.s.IsAccessTokenRevoked(ctx, early); err != nil || got {
			t.Errorf("IsAccessTokenRevoked after the skew = %v, %v; want the row collected", got, err)
		}
	})
}

// TestFollowerCatchesUpAfterLostConnection kills the PostgreSQL
// connection a follower listens on, after recording a revocation that no
// notification announces (one sent while nobody listened): the follower
// reconnects and its catch-up read finds it within a second, long before the
// periodic read would. Then it receives notifications again.
func TestFollowerCatchesUpAfterLostConnection(t *testing.T) {
	t.Parallel()
	var pg storetest.Backend
	for _, b := range storetest.Backends() {
		if b.Name == "postgres" {
			pg = b
		}
	}
	f := newFixture(t, pg)
	replica := pg.Reopen(t, f.s, store.Options{Now: f.clock.Now})
	errs := make(chan error, 16)
	fl := follow(t, f.s, store.FollowConfig{ResyncInterval: time.Hour, OnError: func(err error) {
		select {
		case errs <- err:
		default:
		}
	}})
	listener := func() int {
		var pid int
		err := f.s.QueryRowForTest(ctx, `SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN "' || $1 || '"' AND state = 'idle'`,
			store.RevocationChannelForTest(f.s)).Scan(&pid)
		if err != nil {
			return 0
		}
		return pid
	}
	var pid int
	within(t, time.Second, "the follower listens", func() bool { pid = listener(); return pid != 0 })
	// The follower reloads after LISTEN, on another connection; a
	// notification it applies proves that reload is over, so that "missed"
	// below can only be found by the reload after the reconnect.
	g0 := f.grantFor(t)
	tok0 := f.accessToken(t, g0, time.Hour)
	if _, err := replica.RevokeGrant(ctx, g0, f.user.ID, "cli"); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "a notification before the cut", func() bool { return fl.has(tok0) })

	if err := store.RecordRevocationSilentlyForTest(replica, "missed", f.clock.Now().Add(time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if err := f.s.QueryRowForTest(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(new(bool)); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "the follower catches up after reconnecting", func() bool { return fl.has("missed") })
	select {
	case err := <-errs:
		t.Logf("reported: %v", err)
	default:
		t.Error("the lost connection was not reported")
	}
	within(t, time.Second, "the follower listens again", func() bool { p := listener(); return p != 0 && p != pid })

	g := f.grantFor(t)
	tok := f.accessToken(t, g, time.Hour)
	if _, err := replica.RevokeGrant(ctx, g, f.user.ID, "cli"); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "a notification after the reconnect", func() bool { return fl.has(tok) })
}

// postgresBackend returns the PostgreSQL backend of storetest.
func postgresBackend() storetest.Backend {
	for _, b := range storetest.Backends() {
		if b.Name == "postgres" {
			return b
		}
	}
	panic("storetest has no PostgreSQL backend")
}

// TestIsAccessTokenRevoked checks the lookup a server falls back on when
// its set of revoked tokens is full: a revoked token is found, before and
// after its record goes with its user; an unrevoked one is not.
func TestIsAccessTokenRevoked(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		g := f.grantFor(t)
		revoked, kept := f.accessToken(t, g, time.Hour), f.accessToken(t, "another-grant", time.Hour)
		if err := f.s.RevokeAccessToken(ctx, revoked); err != nil {
			t.Fatal(err)
		}
		check := func(when string, keptRevoked bool) {
			t.Helper()
			for id, want := range map[string]bool{revoked: true, kept: keptRevoked, "never-issued": false} {
				if got, err := f.s.IsAccessTokenRevoked(ctx, id); err != nil || got != want {
					t.Errorf("%s: IsAccessTokenRevoked(%s) = %v, %v; want %v", when, id, got, err, want)
				}
			}
		}
		check("revoked", false)
		// Deleting the user revokes its other tokens too, and removes their
		// records.
		if err := f.s.DeleteUser(ctx, f.user.Username); err != nil {
			t.Fatal(err)
		}
		check("after the user was deleted", true)
	})
}

// TestFollowerFindsLateCommit: on PostgreSQL, a revoking transaction that
// took its seq first but commits after another (whose row the follower has
// already read) is found by the follower's next read, without a
// notification: a seq watermark, or a read of only what was revoked after
// the previous read began, would miss it. Fails without commitMargin.
func TestFollowerFindsLateCommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, postgresBackend())
	replica := postgresBackend().Reopen(t, f.s, store.Options{Now: f.clock.Now})
	fl := follow(t, f.s, store.FollowConfig{ResyncInterval: 50 * time.Millisecond})
	exp := f.clock.Now().Add(time.Hour).UnixMilli()

	commitLate, err := store.BeginRevocationSilentlyForTest(replica, "late", exp)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(10 * time.Second)
	commitEarly, err := store.BeginRevocationSilentlyForTest(replica, "early", exp)
	if err != nil {
		t.Fatal(err)
	}
	if err := commitEarly(); err != nil {
		t.Fatal(err)
	}
	// A read that began after the clock moved on found "early": the next
	// read looks back from there.
	within(t, 2*time.Second, "the follower reads the early commit", func() bool { return fl.has("early") })
	var lateSeq, earlySeq int64
	if err := commitLate(); err != nil {
		t.Fatal(err)
	}
	if err := f.s.QueryRowForTest(ctx, `SELECT (SELECT seq FROM nsauth_revocations WHERE token_id = 'late'), (SELECT seq FROM nsauth_revocations WHERE token_id = 'early')`).Scan(&lateSeq, &earlySeq); err != nil || lateSeq >= earlySeq {
		t.Fatalf("seqs late %d, early %d, %v: want late's first", lateSeq, earlySeq, err)
	}
	within(t, 2*time.Second, "the follower reads the late commit", func() bool { return fl.has("late") })
}

// countingFollower counts how often it is told of each id.
type countingFollower struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *countingFollower) apply(rs []store.Revocation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rs {
		c.seen[r.TokenID]++
	}
}

func (c *countingFollower) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[id]
}

// TestFollowerReadsOnlyRecentRows: after its first load, a follower does
// not read every live revocation again: rows revoked long before (here,
// 2000 of them, five minutes earlier) are applied once, while new rows
// recorded without a notification are still found, by the SQLite poll or
// PostgreSQL's periodic read; on PostgreSQL, also across a reconnect of
// the listening connection.
func TestFollowerReadsOnlyRecentRows(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		exp := f.clock.Now().Add(time.Hour).UnixMilli()
		for i := range 2000 {
			if err := store.RecordRevocationSilentlyForTest(f.s, fmt.Sprintf("old-%d", i), exp); err != nil {
				t.Fatal(err)
			}
		}
		f.clock.Advance(5 * time.Minute)
		c := &countingFollower{seen: map[string]int{}}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		if err := f.s.FollowRevocations(ctx, store.FollowConfig{ResyncInterval: 20 * time.Millisecond, PollInterval: 20 * time.Millisecond}, c.apply); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			id := fmt.Sprintf("new-%d", i)
			if err := store.RecordRevocationSilentlyForTest(f.s, id, exp); err != nil {
				t.Fatal(err)
			}
			within(t, 2*time.Second, "the follower reads "+id, func() bool { return c.count(id) > 0 })
			time.Sleep(50 * time.Millisecond) // a few more reads
		}
		if b.Name == "postgres" {
			// A new listening connection catches up from the last read, not
			// from the start.
			listener := func() int {
				var pid int
				err := f.s.QueryRowForTest(ctx, `SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN "' || $1 || '"' AND state = 'idle'`,
					store.RevocationChannelForTest(f.s)).Scan(&pid)
				if err != nil {
					return 0
				}
				return pid
			}
			var pid int
			within(t, 2*time.Second, "the follower listens", func() bool { pid = listener(); return pid != 0 })
			if err := f.s.QueryRowForTest(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(new(bool)); err != nil {
				t.Fatal(err)
			}
			within(t, 2*time.Second, "the follower listens again", func() bool { p := listener(); return p != 0 && p != pid })
			time.Sleep(200 * time.Millisecond) // its catch-up read, and a few periodic ones
		}
		for _, id := range []string{"old-0", "old-1999"} {
			if n := c.count(id); n != 1 {
				t.Errorf("%s was applied %d times, want once (the first load)", id, n)
			}
		}
	})
}
