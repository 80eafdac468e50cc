package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/pkg/authn"
)

// revocationConfig configures followRevocations; zero values are the
// defaults.
type revocationConfig struct {
	// maxEntries bounds the set; 0 means authn.DefaultMaxRevocations.
	maxEntries int
	// clockSkew is the verifier's: how long past expiry a revocation must
	// still be refused. 0 means authn.DefaultClockSkew.
	clockSkew time.Duration
	// mendEvery is how often an overflowed set looks whether the live
	// revocations fit again; defaultMendEvery when 0.
	mendEvery time.Duration
}

// defaultMendEvery: an overflowed set stays correct (its fallback asks
// the store), only slower, so a minute between counts is soon enough, and
// a count (of an index's entries) a minute is cheap.
const defaultMendEvery = time.Minute

// followRevocations keeps a revocation set current from the store until bg
// ends, for the token verifier: a JWT access token revoked before it
// expires (a replayed code, a reused or revoked refresh token, RevokeCli,
// `nsauth users disable|passwd|delete`, end-session) is refused by the
// next CheckToken in this process, and within a second in other replicas
// and after `nsauth users` in another process (see store.FollowRevocations
// for how each backend learns of them). No verification queries the
// database, unless there are more live revocations than the set holds:
// then it is overflowed, and a token it does not hold is looked up in the
// store (storeRevocations) until mendOverflow has made it whole again.
func followRevocations(bg context.Context, st *store.Store, now func() time.Time, cfg revocationConfig, logger *slog.Logger) (*authn.RevocationSet, error) {
	revoked := &authn.RevocationSet{
		Now:        now,
		MaxEntries: cfg.maxEntries,
		ClockSkew:  cfg.clockSkew,
		Fallback:   &storeRevocations{st: st, logger: logger},
	}
	err := st.FollowRevocations(bg, store.FollowConfig{
		OnError: func(err error) { logger.Warn("revoked tokens may be accepted until this recovers", "error", err) },
	}, func(rs []store.Revocation) {
		for _, r := range rs {
			revoked.Add(r.TokenID, r.ExpiresAt)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("loading revoked tokens: %w", err)
	}
	go mendOverflow(bg, st, revoked, cfg, logger)
	return revoked, nil
}

// storeRevocations is the fallback of an overflowed revocation set: it
// asks the store about each token (one index probe), and refuses the
// token when the store cannot answer, so that a revoked token is never
// accepted for want of an answer.
type storeRevocations struct {
	st     *store.Store
	logger *slog.Logger

	mu     sync.Mutex
	warned time.Time
}

// fallbackWarnEvery spaces the warnings of a failing fallback: during an
// outage, every request would log one.
const fallbackWarnEvery = 30 * time.Second

func (f *storeRevocations) Revoked(ctx context.Context, c *authn.Claims) bool {
	revoked, err := f.st.IsAccessTokenRevoked(ctx, c.ID)
	if err != nil {
		f.mu.Lock()
		warn := time.Since(f.warned) >= fallbackWarnEvery
		if warn {
			f.warned = time.Now()
		}
		f.mu.Unlock()
		if warn {
			f.logger.Warn("refusing tokens the revocation set does not hold: the database cannot say whether they were revoked", "error", err)
		}
		return true
	}
	return revoked
}

// mendOverflow makes an overflowed set whole again once the live
// revocations fit in three quarters of it (so that it does not flap at
// the bound): it reloads them all, and the set is whole when nothing was
// left out during the reload. It logs when the set overflows and when it
// is whole again.
func mendOverflow(bg context.Context, st *store.Store, set *authn.RevocationSet, cfg revocationConfig, logger *slog.Logger) {
	every := cfg.mendEvery
	if every <= 0 {
		every = defaultMendEvery
	}
	limit := cfg.maxEntries
	if limit <= 0 {
		limit = authn.DefaultMaxRevocations
	}
	t := time.NewTicker(every)
	defer t.Stop()
	overflowed := false
	for {
		select {
		case <-bg.Done():
			return
		case <-t.C:
		}
		if !set.Overflowed() {
			if overflowed {
				logger.Info("the revoked tokens fit in memory again")
				overflowed = false
			}
			continue
		}
		if !overflowed {
			logger.Warn("more revoked tokens than the revocation set holds: the tokens it does not hold are looked up in the database until they fit again",
				"max_entries", limit)
			overflowed = true
		}
		n, err := st.CountLiveRevocations(bg)
		if err != nil {
			if bg.Err() == nil {
				logger.Warn("counting revoked tokens", "error", err)
			}
			continue
		}
		if n > limit/4*3 {
			continue
		}
		err = set.Reload(func(add func(string, time.Time)) error {
			return st.EachLiveRevocation(bg, func(rs []store.Revocation) {
				for _, r := range rs {
					add(r.TokenID, r.ExpiresAt)
				}
			})
		})
		if err != nil && bg.Err() == nil {
			logger.Warn("reloading revoked tokens", "error", err)
		}
	}
}
