package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

const graceWindow = 30 * time.Second

// rotatedFamily is a family whose first token rt-1 was rotated, under
// grace, into rt-2.
type rotatedFamily struct {
	*fixture
	id1, id2 string
}

func newRotatedFamily(t *testing.T, b storetest.Backend) *rotatedFamily {
	t.Helper()
	return newFamilyRotatedBy(t, b, here)
}

// newFamilyRotatedBy is newRotatedFamily with rt-1 rotated by p.
func newFamilyRotatedBy(t *testing.T, b storetest.Backend, p presenter) *rotatedFamily {
	t.Helper()
	f := newFixture(t, b)
	id1 := f.firstToken(t)
	r, err := f.s.RotateRefreshTokenWithGrace(ctx, f.rotation(id1, "rt-1", "rt-2", p))
	if err != nil || r.Retried || r.Value != "rt-2" {
		t.Fatalf("first rotation = %+v, %v", r, err)
	}
	return &rotatedFamily{fixture: f, id1: id1, id2: r.ID}
}

// firstToken stores rt-1, the first refresh token of family fam, and
// returns its id.
func (f *fixture) firstToken(t *testing.T) string {
	t.Helper()
	id, err := f.s.CreateRefreshToken(ctx, "rt-1", f.grant("fam"), f.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// presenter is who presents a refresh token: a client, from an address
// key (what the issuer gives as Grace.From).
type presenter struct {
	client string
	from   netip.Prefix
}

var (
	// here rotates rt-1 in newRotatedFamily.
	here = presenter{"cli", netip.MustParsePrefix("192.0.2.1/32")}
	// there is the same client from another address, as RefreshCli's
	// callers all are the broker's client.
	there = presenter{"cli", netip.MustParsePrefix("198.51.100.7/32")}
	// hereV6 is a client on IPv6, whose key is its /64.
	hereV6 = presenter{"cli", netip.MustParsePrefix("2001:db8:1:2::/64")}
)

func (p presenter) grace() store.Grace {
	return store.Grace{Window: graceWindow, ClientID: p.client, From: p.from}
}

func (f *fixture) rotation(oldID, oldValue, newValue string, p presenter) store.Rotation {
	return store.Rotation{OldID: oldID, OldValue: oldValue, NewValue: newValue, ExpiresAt: f.clock.Now().Add(time.Hour), Grace: p.grace()}
}

// retry presents rt-1 again, as the token endpoint does: looked up, then
// rotated.
func (f *rotatedFamily) retry(p presenter, value string) (store.Rotated, error) {
	if _, err := f.s.RefreshTokenByValueWithGrace(ctx, value, p.grace()); err != nil {
		return store.Rotated{}, err
	}
	return f.s.RotateRefreshTokenWithGrace(ctx, f.rotation(f.id1, value, "rt-retry", p))
}

func (f *rotatedFamily) sealed(t *testing.T, id string) []byte {
	t.Helper()
	b, err := store.SealedSuccessorForTest(f.s, id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRefreshReuseGrace(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// before runs between the rotation and the retry.
		before func(t *testing.T, f *rotatedFamily)
		// rotatedBy rotated rt-1 (nil: here), by presents it again (nil:
		// here).
		rotatedBy, by *presenter
		value         string
		wantErr       error // nil: the retry gets rt-2 again
	}{
		{name: "retry within grace gets the same successor", before: func(t *testing.T, f *rotatedFamily) { f.clock.Advance(graceWindow - time.Second) }},
		{name: "retry after grace revokes", before: func(t *testing.T, f *rotatedFamily) { f.clock.Advance(graceWindow) }, wantErr: store.ErrReused},
		{name: "retry after the successor was used revokes", before: func(t *testing.T, f *rotatedFamily) {
			if _, err := f.s.RotateRefreshTokenWithGrace(ctx, f.rotation(f.id2, "rt-2", "rt-3", here)); err != nil {
				t.Fatal(err)
			}
		}, wantErr: store.ErrReused},
		{name: "retry after the family was revoked", before: func(t *testing.T, f *rotatedFamily) {
			if err := f.s.RevokeRefreshToken(ctx, f.id2); err != nil {
				t.Fatal(err)
			}
		}, wantErr: store.ErrRevoked},
		{name: "retry by another client revokes", by: &presenter{"other", here.from}, wantErr: store.ErrReused},
		{name: "retry from another address revokes", by: &there, wantErr: store.ErrReused},
		{name: "retry from the IPv6 /64 of the rotation gets the same successor",
			rotatedBy: &hereV6, by: &hereV6},
		{name: "retry from another IPv6 /64 revokes", rotatedBy: &hereV6,
			by: &presenter{"cli", netip.MustParsePrefix("2001:db8:1:3::/64")}, wantErr: store.ErrReused},
		{name: "retry from an unknown address revokes", by: &presenter{"cli", netip.Prefix{}}, wantErr: store.ErrReused},
		{name: "a value that is not the rotated token's opens nothing", value: "rt-2", wantErr: store.ErrReused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
				rotatedBy, by, value := here, here, "rt-1"
				if tc.rotatedBy != nil {
					rotatedBy = *tc.rotatedBy
				}
				if tc.by != nil {
					by = *tc.by
				}
				f := newFamilyRotatedBy(t, b, rotatedBy)
				if tc.before != nil {
					tc.before(t, f)
				}
				var r store.Rotated
				var err error
				if tc.value != "" {
					// The stash is keyed by the rotated token's value:
					// rotating rt-1's id with any other value cannot open it.
					r, err = f.s.RotateRefreshTokenWithGrace(ctx, f.rotation(f.id1, tc.value, "rt-retry", by))
				} else {
					r, err = f.retry(by, value)
				}
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("retry = %+v, %v; want %v", r, err, tc.wantErr)
					}
					// Whatever the refusal, the family is over.
					if _, err := f.s.RefreshTokenByValue(ctx, "rt-2"); !errors.Is(err, store.ErrRevoked) && !errors.Is(err, store.ErrReused) {
						t.Fatalf("successor after a refused retry: %v, want revoked", err)
					}
					return
				}
				if err != nil || !r.Retried || r.ID != f.id2 || r.Value != "rt-2" {
					t.Fatalf("retry = %+v, %v; want rt-2 again", r, err)
				}
				if _, err := f.s.RefreshTokenByValue(ctx, "rt-retry"); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("the retry stored a token of its own: %v", err)
				}
				// The successor still works, and once it is used the old
				// token is plain reuse again.
				r3, err := f.s.RotateRefreshTokenWithGrace(ctx, f.rotation(f.id2, "rt-2", "rt-3", here))
				if err != nil || r3.Retried || r3.Value != "rt-3" {
					t.Fatalf("using the successor after a retry = %+v, %v", r3, err)
				}
				if _, err := f.retry(here, "rt-1"); !errors.Is(err, store.ErrReused) {
					t.Fatalf("retry after the successor was used = %v, want reused", err)
				}
				if _, err := f.s.RefreshTokenByValue(ctx, "rt-3"); !errors.Is(err, store.ErrRevoked) {
					t.Fatalf("latest token after reuse: %v, want revoked", err)
				}
			})
		})
	}
}

func TestRefreshGraceDisabled(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		id1 := f.firstToken(t)
		if _, err := f.s.RotateRefreshToken(ctx, id1, "rt-2", nil, f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if sealed, _ := store.SealedSuccessorForTest(f.s, id1); sealed != nil {
			t.Fatal("a rotation without grace kept its successor")
		}
		// A retry asking for grace finds nothing to answer with.
		rf := &rotatedFamily{fixture: f, id1: id1}
		if _, err := rf.retry(here, "rt-1"); !errors.Is(err, store.ErrReused) {
			t.Fatalf("retry = %v, want reused", err)
		}
	})
}

// TestRefreshGraceConcurrent presents one token many times at once, from
// two store handles (two processes, on PostgreSQL). From one address,
// everyone gets the same successor, nothing is revoked and the family does
// not branch. From two addresses (a thief's and the client's, presenting
// one token as one client, as RefreshCli's callers do), one rotation
// happens and every presentation from the other address is reuse: at the
// end the family is revoked, the access token recorded with the rotation
// too, and no two presentations from different addresses got a token.
func TestRefreshGraceConcurrent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		rotated bool // rt-1 was already rotated (by here) before the burst
		from    []presenter
	}{
		{"simultaneous first presentations", false, []presenter{here}},
		{"simultaneous retries", true, []presenter{here}},
		{"simultaneous first presentations from two addresses", false, []presenter{here, there}},
		{"simultaneous retries from two addresses", true, []presenter{here, there}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
				f := newFixture(t, b)
				id1 := f.firstToken(t)
				want := ""
				if tc.rotated {
					r, err := f.s.RotateRefreshTokenWithGrace(ctx, f.rotation(id1, "rt-1", "rt-2", here))
					if err != nil {
						t.Fatal(err)
					}
					want = r.Value
				}
				other := b.Reopen(t, f.s, store.Options{Now: f.clock.Now})
				const n = 8
				got := make([]store.Rotated, n)
				access := make([]*store.AccessToken, n)
				errs := make([]error, n)
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						st := f.s
						if i%2 == 1 {
							st = other
						}
						p := tc.from[(i/2)%len(tc.from)]
						if _, errs[i] = st.RefreshTokenByValueWithGrace(ctx, "rt-1", p.grace()); errs[i] != nil {
							return
						}
						r := f.rotation(id1, "rt-1", fmt.Sprintf("next-%d", i), p)
						access[i] = &store.AccessToken{ID: fmt.Sprintf("at-%d", i), GrantID: "fam", UserID: f.user.ID, ClientID: "cli", ExpiresAt: f.clock.Now().Add(time.Hour)}
						r.Access = access[i]
						got[i], errs[i] = st.RotateRefreshTokenWithGrace(ctx, r)
					})
				}
				wg.Wait()
				if len(tc.from) == 1 {
					fresh := 0
					for i := range n {
						if errs[i] != nil {
							t.Fatalf("presentation %d: %v", i, errs[i])
						}
						if !got[i].Retried {
							fresh++
						}
						if want == "" {
							want = got[i].Value
						}
						if got[i].Value != want {
							t.Fatalf("presentation %d got %q, another got %q", i, got[i].Value, want)
						}
					}
					if wantFresh := map[bool]int{false: 1, true: 0}[tc.rotated]; fresh != wantFresh {
						t.Fatalf("%d presentations rotated, want %d", fresh, wantFresh)
					}
					// Only the successor exists and it works.
					for i := range n {
						if v := fmt.Sprintf("next-%d", i); v != want {
							if _, err := f.s.RefreshTokenByValue(ctx, v); !errors.Is(err, store.ErrNotFound) {
								t.Fatalf("a loser's token %s exists: %v", v, err)
							}
						}
					}
					if _, err := f.s.RefreshTokenByValue(ctx, want); err != nil {
						t.Fatalf("the successor after the burst: %v", err)
					}
					return
				}
				// Two addresses: whoever got a token, got it from one
				// address only, and all of it is revoked now.
				servedFrom := map[netip.Prefix]bool{}
				for i := range n {
					p := tc.from[(i/2)%len(tc.from)]
					switch {
					case errs[i] == nil:
						servedFrom[p.from] = true
						if _, err := f.s.ActiveAccessToken(ctx, access[i].ID); !errors.Is(err, store.ErrRevoked) {
							t.Errorf("presentation %d from %v: its access token after the burst: %v, want revoked", i, p.from, err)
						}
						if _, err := f.s.RefreshTokenByValue(ctx, got[i].Value); !errors.Is(err, store.ErrRevoked) {
							t.Errorf("presentation %d from %v: its refresh token after the burst: %v, want revoked", i, p.from, err)
						}
					case !errors.Is(errs[i], store.ErrReused) && !errors.Is(errs[i], store.ErrRevoked):
						t.Errorf("presentation %d from %v: %v, want a token, reuse or revoked", i, p.from, errs[i])
					}
				}
				if len(servedFrom) > 1 {
					t.Errorf("presentations from %d addresses got tokens of one family", len(servedFrom))
				}
				if _, err := f.s.RefreshTokenByValue(ctx, "rt-1"); !errors.Is(err, store.ErrRevoked) {
					t.Errorf("rt-1 after the burst: %v, want revoked", err)
				}
			})
		})
	}
}

func TestRefreshGraceStash(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newRotatedFamily(t, b)
		sealed := f.sealed(t, f.id1)
		if sealed == nil {
			t.Fatal("the rotated token keeps no successor")
		}
		if bytes.Contains(sealed, []byte("rt-2")) {
			t.Fatal("the successor is stored in clear")
		}
		// Within the window the sweep keeps it; after, it goes.
		f.clock.Advance(graceWindow - time.Millisecond)
		if n, err := f.s.DropExpiredGrace(ctx, graceWindow); err != nil || n != 0 {
			t.Fatalf("sweep within the window dropped %d, %v", n, err)
		}
		f.clock.Advance(time.Millisecond)
		if n, err := f.s.DropExpiredGrace(ctx, graceWindow); err != nil || n != 1 {
			t.Fatalf("sweep after the window dropped %d, %v; want 1", n, err)
		}
		if f.sealed(t, f.id1) != nil {
			t.Fatal("the stash outlived its window")
		}

		// Using the successor drops it at once.
		g := newRotatedFamily(t, b)
		if _, err := g.s.RotateRefreshTokenWithGrace(ctx, g.rotation(g.id2, "rt-2", "rt-3", here)); err != nil {
			t.Fatal(err)
		}
		if g.sealed(t, g.id1) != nil {
			t.Fatal("the stash outlived the successor's use")
		}
		if g.sealed(t, g.id2) == nil {
			t.Fatal("the successor's own rotation kept no stash")
		}
	})
}

func TestExpiredRefreshTokenSaysWhen(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		g := f.grant("fam")
		exp := f.clock.Now().Add(time.Hour)
		if _, err := f.s.CreateRefreshToken(ctx, "rt", g, exp); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Hour)
		_, err := f.s.RefreshTokenByValue(ctx, "rt")
		var expired *store.ExpiredError
		if !errors.As(err, &expired) || !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired token: %v, want an ExpiredError wrapping ErrNotFound", err)
		}
		if !expired.AuthTime.Equal(g.AuthTime) || !expired.ExpiresAt.Equal(exp) {
			t.Fatalf("ExpiredError = %+v, want auth time %v and expiry %v", expired, g.AuthTime, exp)
		}
	})
}
