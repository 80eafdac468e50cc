package store_test

import (
	"bytes"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func (f *fixture) passkey(t *testing.T, name string, credID []byte) *store.Passkey {
	t.Helper()
	p := &store.Passkey{UserID: f.user.ID, Name: name, CredentialID: credID, PublicKey: []byte("cose-public-key"),
		SignCount: 3, UserVerified: true, BackupEligible: true, Transports: []string{"internal", "hybrid"}, AAGUID: make([]byte, 16)}
	if err := f.s.AddPasskey(ctx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPasskeys(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s := f.s
		laptop := f.passkey(t, "laptop", []byte{1, 2, 3})
		f.clock.Advance(time.Second)
		phone := f.passkey(t, "phone", []byte{4, 5, 6})

		refusals := []struct {
			name string
			p    store.Passkey
			want error
		}{
			{"same name", store.Passkey{UserID: f.user.ID, Name: "laptop", CredentialID: []byte{7}, PublicKey: []byte("k")}, store.ErrConflict},
			{"same credential", store.Passkey{UserID: f.user.ID, Name: "other", CredentialID: []byte{1, 2, 3}, PublicKey: []byte("k")}, store.ErrConflict},
			{"unknown user", store.Passkey{UserID: "nobody", Name: "x", CredentialID: []byte{8}, PublicKey: []byte("k")}, store.ErrNotFound},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) {
				p := tc.p
				wantErr(t, s.AddPasskey(ctx, &p), tc.want)
			})
		}
		for _, name := range []string{"", " padded", "two\nlines", string(bytes.Repeat([]byte("n"), store.MaxPasskeyNameLen+1))} {
			p := store.Passkey{UserID: f.user.ID, Name: name, CredentialID: []byte{9}, PublicKey: []byte("k")}
			if err := s.AddPasskey(ctx, &p); err == nil {
				t.Errorf("AddPasskey accepted the name %q", name)
			}
		}

		list, err := s.PasskeysByUser(ctx, f.user.ID)
		if err != nil || len(list) != 2 || list[0].ID != laptop.ID || list[1].ID != phone.ID {
			t.Fatalf("PasskeysByUser = %+v, %v", list, err)
		}
		got := list[0]
		if !got.UserVerified || !got.BackupEligible || got.BackupState || got.CloneWarning || got.SignCount != 3 ||
			len(got.Transports) != 2 || !bytes.Equal(got.PublicKey, []byte("cose-public-key")) || !got.LastUsedAt.IsZero() {
			t.Fatalf("stored passkey = %+v", got)
		}
		if n, err := s.CountPasskeys(ctx, f.user.ID); n != 2 || err != nil {
			t.Fatalf("CountPasskeys = %d, %v", n, err)
		}

		f.clock.Advance(time.Minute)
		if err := s.RecordPasskeyUse(ctx, laptop.ID, 9, true, true); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordPasskeyUse(ctx, laptop.ID, 10, false, false); err != nil {
			t.Fatal(err)
		}
		used, err := s.PasskeyByCredentialID(ctx, []byte{1, 2, 3})
		if err != nil {
			t.Fatal(err)
		}
		if used.SignCount != 10 || used.BackupState || !used.CloneWarning || !used.UserVerified || !used.BackupEligible ||
			!used.LastUsedAt.Equal(f.clock.Now()) {
			t.Fatalf("after use: %+v (a clone warning must stay, BS follow the last use, UV and BE stay)", used)
		}
		_, err = s.PasskeyByCredentialID(ctx, []byte{42})
		wantErr(t, err, store.ErrNotFound)

		_, err = s.DeletePasskey(ctx, f.user.ID, "no-such")
		wantErr(t, err, store.ErrNotFound)
		if del, err := s.DeletePasskey(ctx, f.user.ID, "laptop"); err != nil || del.ID != laptop.ID {
			t.Fatalf("DeletePasskey by name = %+v, %v", del, err)
		}
		if del, err := s.DeletePasskey(ctx, f.user.ID, phone.ID); err != nil || del.Name != "phone" {
			t.Fatalf("DeletePasskey by id = %+v, %v", del, err)
		}
		wantErr(t, s.RecordPasskeyUse(ctx, laptop.ID, 11, false, false), store.ErrNotFound)
		if n, _ := s.CountPasskeys(ctx, f.user.ID); n != 0 {
			t.Fatalf("%d passkeys left", n)
		}

		// Deleting the user deletes their passkeys.
		f.passkey(t, "again", []byte{1, 2, 3})
		if err := s.DeleteUser(ctx, f.user.Username); err != nil {
			t.Fatal(err)
		}
		_, err = s.PasskeyByCredentialID(ctx, []byte{1, 2, 3})
		wantErr(t, err, store.ErrNotFound)
	})
}

func TestPasskeysPerUserLimit(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		var wg sync.WaitGroup
		errs := make([]error, store.MaxPasskeysPerUser+5)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := store.Passkey{UserID: f.user.ID, Name: "key " + strconv.Itoa(i), CredentialID: []byte{byte(i), 1}, PublicKey: []byte("k")}
				errs[i] = f.s.AddPasskey(ctx, &p)
			}()
		}
		wg.Wait()
		ok, full := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrTooManyPasskeys):
				full++
			default:
				t.Errorf("AddPasskey: %v", err)
			}
		}
		if ok != store.MaxPasskeysPerUser || full != 5 {
			t.Fatalf("%d added, %d refused as too many; want %d and 5", ok, full, store.MaxPasskeysPerUser)
		}
		n, _ := f.s.CountPasskeys(ctx, f.user.ID)
		if err := f.s.PutPasskeyCeremony(ctx, &store.PasskeyCeremony{AuthRequestID: "ar", Kind: "second_factor", UserID: f.user.ID,
			Session: []byte("{}"), ExpiresAt: f.clock.Now().Add(time.Minute)}, store.CeremonyQuota{}); err != nil {
			t.Fatal(err)
		}
		// Resetting an account's second factors removes its passkeys and
		// its ceremonies in progress.
		deleted, err := f.s.ResetSecondFactors(ctx, f.user.ID)
		if err != nil || deleted != int64(n)+1 {
			t.Fatalf("ResetSecondFactors = %d, %v; had %d passkeys and a ceremony", deleted, err, n)
		}
		if left, _ := f.s.CountPasskeys(ctx, f.user.ID); left != 0 {
			t.Fatalf("%d passkeys left after the reset", left)
		}
		_, err = f.s.TakePasskeyCeremony(ctx, "ar", "")
		wantErr(t, err, store.ErrNotFound)
	})
}

func TestPasskeyCeremonies(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s := f.s
		put := func(id, kind string, ttl time.Duration, q store.CeremonyQuota) error {
			return s.PutPasskeyCeremony(ctx, &store.PasskeyCeremony{AuthRequestID: id, Kind: kind, UserID: f.user.ID,
				Session: []byte(`{"challenge":"` + kind + `"}`), ExpiresAt: f.clock.Now().Add(ttl)}, q)
		}
		pool := func(limit int) store.CeremonyQuota { return store.CeremonyQuota{Pool: "p", PoolLimit: limit} }
		if err := put("ar1", "register", time.Minute, pool(2)); err != nil {
			t.Fatal(err)
		}
		// A second ceremony of the same auth request replaces the first,
		// and does not count against the limit.
		if err := put("ar1", "second_factor", time.Minute, pool(1)); err != nil {
			t.Fatal(err)
		}
		if err := put("ar2", "passwordless", time.Minute, pool(2)); err != nil {
			t.Fatal(err)
		}
		wantErr(t, put("ar3", "passwordless", time.Minute, pool(2)), store.ErrCeremoniesFull)
		// Another pool is not this one.
		if err := put("ar3", "passwordless", time.Minute, store.CeremonyQuota{Pool: "other", PoolLimit: 1}); err != nil {
			t.Fatalf("a full pool refused a ceremony of another pool: %v", err)
		}
		if err := s.PutPasskeyCeremony(ctx, &store.PasskeyCeremony{AuthRequestID: "ar4", Kind: "x",
			Session: bytes.Repeat([]byte("a"), store.MaxPasskeyCeremonySession+1), ExpiresAt: f.clock.Now().Add(time.Minute)}, store.CeremonyQuota{}); err == nil {
			t.Fatal("an oversized session was stored")
		}

		c, err := s.TakePasskeyCeremony(ctx, "ar1", "")
		if err != nil || c.Kind != "second_factor" || c.UserID != f.user.ID || string(c.Session) != `{"challenge":"second_factor"}` {
			t.Fatalf("TakePasskeyCeremony = %+v, %v", c, err)
		}
		_, err = s.TakePasskeyCeremony(ctx, "ar1", "")
		wantErr(t, err, store.ErrNotFound) // used once
		// The taken ceremony's place is free again.
		if err := put("ar6", "passwordless", time.Minute, pool(2)); err != nil {
			t.Fatalf("a taken ceremony still counts against the limit: %v", err)
		}
		wantErr(t, put("ar7", "passwordless", time.Minute, pool(2)), store.ErrCeremoniesFull)

		f.clock.Advance(time.Minute)
		_, err = s.TakePasskeyCeremony(ctx, "ar2", "")
		wantErr(t, err, store.ErrNotFound) // expired
		if err := put("ar5", "passwordless", time.Minute, pool(1)); err != nil {
			t.Fatalf("expired ceremonies still count against the limit: %v", err)
		}
		f.clock.Advance(time.Minute)
		if n, err := s.DeleteExpired(ctx); err != nil || n < 1 {
			t.Fatalf("DeleteExpired = %d, %v; want the expired ceremony gone", n, err)
		}
		_, err = s.TakePasskeyCeremony(ctx, "ar5", "")
		wantErr(t, err, store.ErrNotFound)
	})
}

// TestPasskeyCeremonyHolders: a holder's share of a pool is bounded; other
// holders keep their room, and a holder's ceremony replaced by another of
// the same auth request frees its place.
func TestPasskeyCeremonyHolders(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		put := func(id, holder string) error {
			return f.s.PutPasskeyCeremony(ctx, &store.PasskeyCeremony{AuthRequestID: id, Kind: "passwordless", Session: []byte("{}"),
				ExpiresAt: f.clock.Now().Add(time.Minute)}, store.CeremonyQuota{Pool: "p", PoolLimit: 5, Holder: holder, HolderLimit: 2})
		}
		steps := []struct {
			name, id, holder string
			want             error
		}{
			{"a's first", "a1", "addr:a", nil},
			{"a's second", "a2", "addr:a", nil},
			{"a's third is over its share", "a3", "addr:a", store.ErrCeremonyHolderFull},
			{"a begins again on an auth request it holds", "a2", "addr:a", nil},
			{"b has room of its own", "b1", "addr:b", nil},
			{"b's auth request taken over by c frees b's place", "b1", "addr:c", nil},
			{"b again", "b2", "addr:b", nil},
			{"c's second", "c2", "addr:c", nil},
			{"the pool is full for d", "d1", "addr:d", store.ErrCeremoniesFull},
			{"a holder over its share hears that first", "a4", "addr:a", store.ErrCeremonyHolderFull},
		}
		for _, st := range steps {
			if err := put(st.id, st.holder); !errors.Is(err, st.want) {
				t.Fatalf("%s: PutPasskeyCeremony = %v, want %v", st.name, err, st.want)
			}
		}
		f.clock.Advance(time.Minute)
		if err := put("d1", "addr:d"); err != nil {
			t.Fatalf("after every ceremony expired: %v", err)
		}
	})
}

// TestPasskeyCeremonyBoundToBrowser: a ceremony bound to a browser is
// taken only by that browser; any other take, unbound ones included,
// finds nothing and leaves it as it was.
func TestPasskeyCeremonyBoundToBrowser(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		if err := f.s.PutPasskeyCeremony(ctx, &store.PasskeyCeremony{AuthRequestID: "ar", Kind: "passwordless", Browser: "victim",
			Session: []byte(`{"challenge":"c"}`), ExpiresAt: f.clock.Now().Add(time.Minute)}, store.CeremonyQuota{}); err != nil {
			t.Fatal(err)
		}
		for _, other := range []string{"attacker", ""} {
			_, err := f.s.TakePasskeyCeremony(ctx, "ar", other)
			wantErr(t, err, store.ErrNotFound)
		}
		c, err := f.s.TakePasskeyCeremony(ctx, "ar", "victim")
		if err != nil || c.Browser != "victim" || string(c.Session) != `{"challenge":"c"}` {
			t.Fatalf("the browser that began it: %+v, %v", c, err)
		}
	})
}

// TestPasskeyCeremonyBoundsHoldUnderSimultaneousPuts: simultaneous puts on
// two handles of one database (two replicas, for PostgreSQL) never exceed
// a holder's share or a pool between them.
func TestPasskeyCeremonyBoundsHoldUnderSimultaneousPuts(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		other := b.Reopen(t, f.s, store.Options{Now: f.clock.Now})
		tests := []struct {
			name    string
			pool    string
			holders int // the puts are spread over this many holders
			want    int
		}{
			{"one holder, share 3", "one", 1, 3},
			{"forty holders, pool 7", "many", 40, 7},
		}
		for _, tc := range tests {
			errs := simultaneously(40, []*store.Store{f.s, other}, func(i int, s *store.Store) error {
				return s.PutPasskeyCeremony(ctx, &store.PasskeyCeremony{AuthRequestID: tc.pool + strconv.Itoa(i), Kind: "passwordless",
					Session: []byte("{}"), ExpiresAt: f.clock.Now().Add(time.Minute)},
					store.CeremonyQuota{Pool: tc.pool, PoolLimit: 7, Holder: tc.pool + strconv.Itoa(i%tc.holders), HolderLimit: 3})
			})
			stored := 0
			for _, err := range errs {
				switch {
				case err == nil:
					stored++
				case !errors.Is(err, store.ErrCeremoniesFull) && !errors.Is(err, store.ErrCeremonyHolderFull):
					t.Errorf("%s: PutPasskeyCeremony: %v", tc.name, err)
				}
			}
			if stored != tc.want {
				t.Errorf("%s: %d of 40 simultaneous puts stored, want %d", tc.name, stored, tc.want)
			}
		}
	})
}

// TestPasskeyCeremonyTakenOnce: of simultaneous answers to one ceremony
// (replicas included), exactly one gets it.
func TestPasskeyCeremonyTakenOnce(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		other := b.Reopen(t, f.s, store.Options{Now: f.clock.Now})
		if err := f.s.PutPasskeyCeremony(ctx, &store.PasskeyCeremony{AuthRequestID: "ar", Kind: "passwordless",
			Session: []byte("{}"), ExpiresAt: f.clock.Now().Add(time.Minute)}, store.CeremonyQuota{}); err != nil {
			t.Fatal(err)
		}
		got := simultaneously(8, []*store.Store{f.s, other}, func(_ int, s *store.Store) error {
			_, err := s.TakePasskeyCeremony(ctx, "ar", "")
			return err
		})
		taken := 0
		for _, err := range got {
			switch {
			case err == nil:
				taken++
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("TakePasskeyCeremony: %v", err)
			}
		}
		if taken != 1 {
			t.Fatalf("%d of 8 simultaneous takes got the ceremony, want 1", taken)
		}
	})
}

// simultaneously runs fn n times at once, run i on the store ss[i%len(ss)]
// (handles of one database: replicas), and returns the errors in order.
func simultaneously(n int, ss []*store.Store, fn func(i int, s *store.Store) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i, ss[i%len(ss)])
		}()
	}
	wg.Wait()
	return errs
}
