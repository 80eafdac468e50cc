package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// BenchmarkRevocationReadsMillion compares, over a million live
// revocations, the reads a follower makes: the full reload it used to
// make every 30 s (every live row into a slice, then into a set), the
// batched first load, and the incremental reads that replaced the reload
// (SQLite's poll after a seq, PostgreSQL's read since a time), each here
// finding the 100 newest rows.
func BenchmarkRevocationReadsMillion(b *testing.B) {
	const rows, recent = 1_000_000, 100
	for _, backend := range storetest.Backends() {
		b.Run(backend.Name, func(b *testing.B) {
			ctx := context.Background()
			clock := storetest.NewClock(time.Time{})
			s := backend.Open(b, store.Options{Now: clock.Now})
			now := clock.Now().UnixMilli()
			fill := `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?)
				INSERT INTO nsauth_revocations (token_id, expires_at, revoked_at)
				SELECT printf('%022d', i), ?, CASE WHEN i > ? THEN ? ELSE ? END FROM c`
			if backend.Name == "postgres" {
				fill = `INSERT INTO nsauth_revocations (token_id, expires_at, revoked_at)
					SELECT lpad(i::text, 22, '0'), CAST(? AS BIGINT), CASE WHEN i > CAST(? AS BIGINT) THEN CAST(? AS BIGINT) ELSE CAST(? AS BIGINT) END
					FROM generate_series(1, CAST(? AS BIGINT)) i`
			}
			var err error
			if backend.Name == "postgres" {
				err = store.ExecForTest(s, fill, now+2*time.Hour.Milliseconds(), rows-recent, now, now-time.Hour.Milliseconds(), rows)
			} else {
				err = store.ExecForTest(s, fill, rows, now+2*time.Hour.Milliseconds(), rows-recent, now, now-time.Hour.Milliseconds())
			}
			if err != nil {
				b.Fatal(err)
			}
			if backend.Name == "postgres" {
				if err := store.ExecForTest(s, `ANALYZE nsauth_revocations`); err != nil {
					b.Fatal(err)
				}
			}
			var last int64
			if err := s.QueryRowForTest(ctx, `SELECT MAX(seq) FROM nsauth_revocations`).Scan(&last); err != nil {
				b.Fatal(err)
			}
			b.Run("full reload", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					set := &authn.RevocationSet{Now: clock.Now}
					rs, err := s.LiveRevocations(ctx)
					if err != nil || len(rs) != rows {
						b.Fatalf("%d rows, %v", len(rs), err)
					}
					for _, r := range rs {
						set.Add(r.TokenID, r.ExpiresAt)
					}
				}
			})
			b.Run("first load in batches", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					set := &authn.RevocationSet{Now: clock.Now}
					err := s.EachLiveRevocation(ctx, func(rs []store.Revocation) {
						for _, r := range rs {
							set.Add(r.TokenID, r.ExpiresAt)
						}
					})
					if err != nil || set.Len() != rows {
						b.Fatalf("%d entries, %v", set.Len(), err)
					}
				}
			})
			b.Run("incremental read", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					n := 0
					count := func(rs []store.Revocation) { n += len(rs) }
					var err error
					if backend.Name == "postgres" {
						err = s.RevokedSince(ctx, now-time.Minute.Milliseconds(), count)
					} else {
						_, err = s.RevocationsAfter(ctx, last-recent, count)
					}
					if err != nil || n != recent {
						b.Fatalf("%d rows, %v", n, err)
					}
				}
			})
		})
	}
}
