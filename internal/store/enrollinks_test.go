package store_test

import (
	"bytes"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestEnrolLinks: a link is stored as the digest of its secret alone,
// names its user, is used once (of simultaneous uses from two store
// handles exactly one succeeds), expires, and is replaced by a newer one
// or revoked; on each backend.
func TestEnrolLinks(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s, uid := f.s, f.user.ID
		now := f.clock.Now()
		token := store.RandomToken(32)
		wantErr(t, s.CreateEnrolLink(ctx, "no-such-user", token, now.Add(time.Hour)), store.ErrNotFound)
		for _, bad := range []time.Time{now, now.Add(-time.Second), now.Add(store.MaxEnrolLinkTTL + time.Second)} {
			if err := s.CreateEnrolLink(ctx, uid, token, bad); err == nil {
				t.Fatalf("a link expiring at %v was stored", bad)
			}
		}
		if err := s.CreateEnrolLink(ctx, uid, token, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		stored, err := store.RawForTest(s, `SELECT link_hash FROM nsauth_enrol_links WHERE user_id = ?`, uid)
		sum := sha256.Sum256([]byte(token))
		if err != nil || !bytes.Equal(stored, sum[:]) {
			t.Fatalf("stored %x, %v; want the SHA-256 of the secret and nothing else", stored, err)
		}
		if u, err := s.EnrolLinkUser(ctx, token); err != nil || u.ID != uid {
			t.Fatalf("EnrolLinkUser = %+v, %v", u, err)
		}
		_, err = s.EnrolLinkUser(ctx, store.RandomToken(32))
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, s.TakeEnrolLink(ctx, token, "someone-else"), store.ErrNotFound)

		// Simultaneous uses, through two handles on the same data.
		other := b.Reopen(t, s, store.Options{Now: f.clock.Now})
		if wins := together(16, s, other, func(h *store.Store) (string, bool) { return "", h.TakeEnrolLink(ctx, token, uid) == nil }); len(wins) != 1 {
			t.Fatalf("%d of 16 simultaneous uses of one link succeeded, want 1", len(wins))
		}
		_, err = s.EnrolLinkUser(ctx, token)
		wantErr(t, err, store.ErrNotFound)

		// Expiry, replacement and revocation.
		first, second := store.RandomToken(32), store.RandomToken(32)
		if err := s.CreateEnrolLink(ctx, uid, first, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
		wantErr(t, s.TakeEnrolLink(ctx, first, uid), store.ErrNotFound)
		if n, err := s.DeleteExpired(ctx); err != nil || n < 1 {
			t.Fatalf("DeleteExpired = %d, %v: the expired link stays", n, err)
		}
		now = f.clock.Now()
		if err := s.CreateEnrolLink(ctx, uid, first, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateEnrolLink(ctx, uid, second, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		_, err = s.EnrolLinkUser(ctx, first)
		wantErr(t, err, store.ErrNotFound)
		if had, err := s.RevokeEnrolLink(ctx, uid); err != nil || !had {
			t.Fatalf("RevokeEnrolLink = %v, %v", had, err)
		}
		if had, err := s.RevokeEnrolLink(ctx, uid); err != nil || had {
			t.Fatalf("RevokeEnrolLink again = %v, %v", had, err)
		}
		wantErr(t, s.TakeEnrolLink(ctx, second, uid), store.ErrNotFound)
	})
}

// TestPendingStepCeremony: the WebAuthn ceremony kept on a login step is
// found only under the step's key, replaced by a newer one, and taken
// once: of simultaneous answers from two store handles exactly one gets
// it; the step itself stays. A step of an enrolment link's flow has no
// auth request, and only such a step may lack one.
func TestPendingStepCeremony(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s, uid := f.s, f.user.ID
		exp := f.clock.Now().Add(5 * time.Minute)
		for _, bad := range []store.PendingMFA{
			{UserID: uid, Kind: store.PendingVerify, ExpiresAt: exp},
			{AuthRequestID: "ar", UserID: uid, Kind: store.PendingVerify, Steps: []string{store.StepEnrolLink}, ExpiresAt: exp},
			{AuthRequestID: "ar", UserID: uid, Kind: "root", ExpiresAt: exp},
		} {
			if err := s.CreatePendingMFA(ctx, &bad, "k"); err == nil {
				t.Fatalf("stored %+v", bad)
			}
		}
		key := store.RandomToken(32) + "." + store.RandomToken(32)
		p := &store.PendingMFA{UserID: uid, AMR: []string{"pwd"}, Kind: store.PendingEnroll, Steps: []string{store.StepEnrolLink}, ExpiresAt: exp}
		if err := s.CreatePendingMFA(ctx, p, key); err != nil {
			t.Fatal(err)
		}
		got, err := s.PendingMFA(ctx, key)
		if err != nil || got.AuthRequestID != "" || len(got.Steps) != 1 || got.Steps[0] != store.StepEnrolLink {
			t.Fatalf("PendingMFA = %+v, %v", got, err)
		}
		_, err = s.TakePendingCeremony(ctx, key)
		wantErr(t, err, store.ErrNotFound) // none begun
		wantErr(t, s.SetPendingCeremony(ctx, "another.key", []byte(`{"c":1}`)), store.ErrNotFound)
		if err := s.SetPendingCeremony(ctx, key, []byte(`{"c":1}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.SetPendingCeremony(ctx, key, []byte(`{"c":2}`)); err != nil {
			t.Fatal(err)
		}
		other := b.Reopen(t, s, store.Options{Now: f.clock.Now})
		all := together(16, s, other, func(h *store.Store) (string, bool) {
			c, err := h.TakePendingCeremony(ctx, key)
			return string(c), err == nil
		})
		if len(all) != 1 || all[0] != `{"c":2}` {
			t.Fatalf("simultaneous answers took %q, want the newer ceremony once", all)
		}
		if _, err := s.PendingMFA(ctx, key); err != nil {
			t.Fatalf("the step went with its ceremony: %v", err)
		}
		f.clock.Advance(6 * time.Minute)
		wantErr(t, s.SetPendingCeremony(ctx, key, []byte(`{"c":3}`)), store.ErrNotFound)
	})
}

// together runs fn n times at once, alternately on a and b, and returns
// what the calls that succeeded returned.
func together(n int, a, b *store.Store, fn func(*store.Store) (string, bool)) []string {
	var wg sync.WaitGroup
	got := make(chan string, n)
	for i := range n {
		h := a
		if i%2 == 1 {
			h = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, ok := fn(h); ok {
				got <- v
			}
		}()
	}
	wg.Wait()
	close(got)
	var out []string
	for v := range got {
		out = append(out, v)
	}
	return out
}
