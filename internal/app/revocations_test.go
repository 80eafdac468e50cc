package app

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// TestRevocationsBeyondTheBound revokes more access tokens than the set
// holds, on each backend: the set overflows, a revoked token it could not
// hold is still refused (the store is asked), and a token never revoked is
// still accepted (the fallback answers, rather than refusing everything).
// Once enough revocations have expired, the set is made whole by a
// reload and answers from memory again. Fails when the set has no
// fallback or when its fallback does not read the store.
func TestRevocationsBeyondTheBound(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		clock := storetest.NewClock(time.Time{})
		st := b.Open(t, store.Options{Now: clock.Now})
		if _, err := st.EnsureClient(ctx, &store.Client{ID: "cli", SecretHash: store.HashSecret("s3cret")}); err != nil {
			t.Fatal(err)
		}
		u := &store.User{Username: "alice", PasswordHash: "$argon2id$fake"}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		token := func(ttl time.Duration) string {
			t.Helper()
			at := &store.AccessToken{ID: store.NewID(), GrantID: store.NewID(), UserID: u.ID, ClientID: "cli", ExpiresAt: clock.Now().Add(ttl)}
			if err := st.RecordAccessToken(ctx, at); err != nil {
				t.Fatal(err)
			}
			return at.ID
		}
		const bound = 4
		set, err := followRevocations(ctx, st, clock.Now, revocationConfig{maxEntries: bound, mendEvery: 10 * time.Millisecond},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		// bound short-lived tokens fill the set; the long-lived ones
		// revoked after them do not fit.
		var short, long []string
		for range bound {
			short = append(short, token(time.Minute))
		}
		for range 2 {
			long = append(long, token(time.Hour))
		}
		kept := token(time.Hour)
		for _, id := range append(short, long...) {
			if err := st.RevokeAccessToken(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if !set.Overflowed() || set.Len() > bound {
			t.Fatalf("Overflowed = %v, Len = %d after %d revocations; want overflowed at %d", set.Overflowed(), set.Len(), bound+2, bound)
		}
		check := func(when string) {
			t.Helper()
			for _, tc := range []struct {
				ids  []string
				want bool
			}{{long, true}, {[]string{kept}, false}} {
				for _, id := range tc.ids {
					if got := set.Revoked(ctx, &authn.Claims{ID: id}); got != tc.want {
						t.Errorf("%s: Revoked(%s) = %v, want %v", when, id, got, tc.want)
					}
				}
			}
		}
		check("overflowed")

		// The short-lived revocations expire, and so does the longest
		// clock skew they are kept for: two live revocations fit under
		// three quarters of the bound, and the set is reloaded.
		clock.Advance(time.Minute + store.RevocationRetention + time.Second)
		deadline := time.Now().Add(5 * time.Second)
		for set.Overflowed() {
			if time.Now().After(deadline) {
				t.Fatal("the set is still overflowed with 2 live revocations")
			}
			time.Sleep(10 * time.Millisecond)
		}
		check("whole again")
	})
}
