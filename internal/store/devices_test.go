package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

const (
	devStep = 5 * time.Second
	devMax  = time.Minute
)

func (f *fixture) device(t *testing.T, deviceCode, userCode string) *store.DeviceAuthorization {
	t.Helper()
	d := &store.DeviceAuthorization{ClientID: "cli", Scopes: []string{"openid", "offline_access"},
		ExpiresAt: f.clock.Now().Add(10 * time.Minute), PollInterval: 5 * time.Second}
	if err := f.s.CreateDeviceAuthorization(ctx, d, deviceCode, userCode); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDeviceAuthorizationLifecycle(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s := f.s
		d := f.device(t, "device-code-1", "BCDFGHJK")

		dup := &store.DeviceAuthorization{ClientID: "cli", ExpiresAt: f.clock.Now().Add(time.Minute), PollInterval: time.Second}
		wantErr(t, s.CreateDeviceAuthorization(ctx, dup, "device-code-2", "BCDFGHJK"), store.ErrConflict)

		got, err := s.PendingDeviceAuthorization(ctx, "BCDFGHJK")
		if err != nil || got.ID != d.ID || got.State != store.DevicePending || len(got.Scopes) != 2 {
			t.Fatalf("PendingDeviceAuthorization = %+v, %v", got, err)
		}
		_, err = s.PendingDeviceAuthorization(ctx, "BCDFGHJL")
		wantErr(t, err, store.ErrNotFound)

		_, err = s.PollDeviceAuthorization(ctx, "device-code-1", "other-client", devStep, devMax)
		wantErr(t, err, store.ErrNotFound)
		_, err = s.PollDeviceAuthorization(ctx, "no-such-code", "cli", devStep, devMax)
		wantErr(t, err, store.ErrNotFound)

		steps := []struct {
			name         string
			advance      time.Duration
			wantSlow     bool
			wantInterval time.Duration
		}{
			{"first poll", 0, false, 5 * time.Second},
			{"too fast", time.Second, true, 10 * time.Second},
			{"still too fast for the grown interval", 9 * time.Second, true, 15 * time.Second},
			{"patient", 15 * time.Second, false, 15 * time.Second},
		}
		for _, st := range steps {
			f.clock.Advance(st.advance)
			p, err := s.PollDeviceAuthorization(ctx, "device-code-1", "cli", devStep, devMax)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if p.SlowDown != st.wantSlow || p.Expired || p.Auth.State != store.DevicePending || p.Auth.PollInterval != st.wantInterval {
				t.Fatalf("%s: poll = slow %v expired %v state %s interval %v", st.name, p.SlowDown, p.Expired, p.Auth.State, p.Auth.PollInterval)
			}
		}

		authTime := f.clock.Now()
		decided, err := s.DecideDeviceAuthorization(ctx, d.ID, true, f.user.ID, authTime, []string{"pwd"})
		if err != nil || decided.State != store.DeviceApproved || decided.UserID != f.user.ID {
			t.Fatalf("approve = %+v, %v", decided, err)
		}
		_, err = s.DecideDeviceAuthorization(ctx, d.ID, false, f.user.ID, authTime, nil)
		wantErr(t, err, store.ErrConflict)
		_, err = s.PendingDeviceAuthorization(ctx, "BCDFGHJK")
		wantErr(t, err, store.ErrNotFound)

		p, err := s.PollDeviceAuthorization(ctx, "device-code-1", "cli", devStep, devMax)
		if err != nil || p.Auth.State != store.DeviceApproved || p.Auth.UsedAt.IsZero() || p.Auth.UserID != f.user.ID ||
			!p.Auth.AuthTime.Equal(authTime) || len(p.Auth.AMR) != 1 {
			t.Fatalf("redeeming poll = %+v, %v", p, err)
		}
		g := store.Grant{ID: d.ID, UserID: f.user.ID, ClientID: "cli", Scopes: d.Scopes, AuthTime: authTime}
		if _, err := s.CreateRefreshToken(ctx, "device-rt", g, f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		_, err = s.PollDeviceAuthorization(ctx, "device-code-1", "cli", devStep, devMax)
		wantErr(t, err, store.ErrReused)
		_, err = s.RefreshTokenByValue(ctx, "device-rt")
		wantErr(t, err, store.ErrRevoked)
	})
}

func TestDeviceAuthorizationEnds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		deny        bool
		advance     time.Duration
		wantExpired bool
		wantState   string
	}{
		{name: "denied", deny: true, wantState: store.DeviceDenied},
		{name: "denied stays denied after expiry", deny: true, advance: 11 * time.Minute, wantState: store.DeviceDenied},
		{name: "expired while pending", advance: 10 * time.Minute, wantExpired: true, wantState: store.DevicePending},
	}
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code := "dc-" + tt.name
				d := f.device(t, code, store.RandomToken(6))
				if tt.deny {
					if _, err := f.s.DecideDeviceAuthorization(ctx, d.ID, false, f.user.ID, f.clock.Now(), []string{"pwd"}); err != nil {
						t.Fatal(err)
					}
				}
				f.clock.Advance(tt.advance)
				for range 2 { // the answer does not change with more polls
					p, err := f.s.PollDeviceAuthorization(ctx, code, "cli", devStep, devMax)
					if err != nil || p.Expired != tt.wantExpired || p.Auth.State != tt.wantState || !p.Auth.UsedAt.IsZero() {
						t.Fatalf("poll = %+v, %v", p, err)
					}
				}
				if !tt.deny {
					_, err := f.s.DecideDeviceAuthorization(ctx, d.ID, true, f.user.ID, f.clock.Now(), nil)
					wantErr(t, err, store.ErrNotFound)
				}
			})
		}
	})
}

// TestDeviceRaces runs, on two handles of one database (two replicas), an
// approval against a denial, then many polls against each other: one
// decision and one redemption win.
func TestDeviceRaces(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		other := b.Reopen(t, f.s, store.Options{Now: f.clock.Now})
		stores := []*store.Store{f.s, other}
		d := f.device(t, "race-device", "RACEUSER")

		var wg sync.WaitGroup
		decisions := make([]error, 6)
		for i := range decisions {
			wg.Go(func() {
				_, decisions[i] = stores[i%2].DecideDeviceAuthorization(ctx, d.ID, i%3 != 0, f.user.ID, f.clock.Now(), nil)
			})
		}
		wg.Wait()
		won := 0
		for _, err := range decisions {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("decision: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d decisions won, want 1", won)
		}
		cur, err := f.s.DeviceAuthorizationByID(ctx, d.ID)
		if err != nil || cur.State == store.DevicePending {
			t.Fatalf("after the race: %+v, %v", cur, err)
		}

		approved := f.device(t, "race-device-2", "RACEUSR2")
		if _, err := other.DecideDeviceAuthorization(ctx, approved.ID, true, f.user.ID, f.clock.Now(), nil); err != nil {
			t.Fatal(err)
		}
		polls := make([]*store.DevicePoll, 8)
		errs := make([]error, len(polls))
		for i := range polls {
			wg.Go(func() {
				polls[i], errs[i] = stores[i%2].PollDeviceAuthorization(ctx, "race-device-2", "cli", devStep, devMax)
			})
		}
		wg.Wait()
		redeemed := 0
		for i, err := range errs {
			switch {
			case err == nil && polls[i].Auth.State == store.DeviceApproved:
				redeemed++
			case !errors.Is(err, store.ErrReused):
				t.Errorf("poll: %+v, %v", polls[i], err)
			}
		}
		if redeemed != 1 {
			t.Fatalf("%d polls redeemed the approval, want 1", redeemed)
		}
	})
}

func TestDeleteExpiredDeviceAuthorizations(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		d := f.device(t, "gc-device", "GCUSERCD")
		f.clock.Advance(10*time.Minute + 59*time.Minute)
		if n, err := f.s.DeleteExpired(ctx); err != nil || n != 0 {
			t.Fatalf("DeleteExpired within retention = %d, %v", n, err)
		}
		p, err := f.s.PollDeviceAuthorization(ctx, "gc-device", "cli", devStep, devMax)
		if err != nil || !p.Expired {
			t.Fatalf("late poll = %+v, %v", p, err)
		}
		f.clock.Advance(time.Minute)
		if n, err := f.s.DeleteExpired(ctx); err != nil || n != 1 {
			t.Fatalf("DeleteExpired after retention = %d, %v", n, err)
		}
		_, err = f.s.DeviceAuthorizationByID(ctx, d.ID)
		wantErr(t, err, store.ErrNotFound)
	})
}
