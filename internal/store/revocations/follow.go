package revocations

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Defaults for [FollowConfig].
const (
	// DefaultResyncInterval is how often a follower reloads every live
	// revocation: the backstop for a notification that never arrived (on
	// PostgreSQL, one sent while the listening connection was being
	// replaced).
	DefaultResyncInterval = 30 * time.Second
	// DefaultPollInterval is how often a follower on SQLite looks for
	// revocations recorded by other processes on the file (`nsauth users`).
	DefaultPollInterval = 200 * time.Millisecond
)

// listenBackoff bounds the wait between attempts to re-establish the
// PostgreSQL listening connection. The longest wait is short: after the
// database server restarts, a revocation must reach this replica within a
// second, and the next attempt's resync is what brings it (a wait of
// 5 s made it take up to 3 s in the soak test). Failures are reported at
// the start of an outage and then every listenReportInterval, not at
// every attempt.
const (
	minListenBackoff     = 100 * time.Millisecond
	maxListenBackoff     = 400 * time.Millisecond
	listenReportInterval = 30 * time.Second
	// listenHealthy is how long a listening connection must have lasted
	// for its failure to start a new outage.
	listenHealthy = 5 * time.Second
)

// FollowConfig configures [RevocationStore.FollowRevocations].
type FollowConfig struct {
	// ResyncInterval is how often every live revocation is reloaded.
	// Defaults to [DefaultResyncInterval].
	ResyncInterval time.Duration
	// PollInterval is how often, on SQLite, new rows are looked for.
	// Defaults to [DefaultPollInterval]. PostgreSQL needs no polling: it
	// notifies.
	PollInterval time.Duration
	// OnError is told of each failure to read revocations or to listen
	// for them; following goes on regardless (retrying, and resyncing once
	// it can). Defaults to ignoring them.
	OnError func(error)
}

// FollowRevocations calls apply with every live revocation, then keeps
// calling it, until ctx ends, with every new one: those made through this
// store right after their transaction commits; those of other processes
// (replicas on PostgreSQL, `nsauth users` on either backend) as they are
// learnt of, through LISTEN/NOTIFY on PostgreSQL, by polling every
// PollInterval on SQLite; and all live ones again every ResyncInterval,
// and on PostgreSQL each time the listening connection is re-established.
// apply may see a revocation more than once, and may be called
// concurrently: it must be idempotent and safe for concurrent use. It
// returns once the first load is done, with its error if it failed (and
// then follows nothing).
func (s *RevocationStore) FollowRevocations(ctx context.Context, cfg FollowConfig, apply func([]Revocation)) error {
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = DefaultResyncInterval
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.OnError == nil {
		cfg.OnError = func(error) {}
	}
	// The watermark is read before the load, so that what commits in
	// between is read again rather than missed.
	seq, err := s.lastRevocationSeq(ctx)
	if err != nil {
		return err
	}
	if err := s.resync(ctx, apply); err != nil {
		return err
	}
	s.hooks.follow(apply)
	go s.resyncEvery(ctx, cfg, apply)
	if s.db.Dialect.Name == "postgres" {
		go s.listen(ctx, cfg, apply)
	} else {
		go s.poll(ctx, cfg, seq, apply)
	}
	return nil
}

func (s *RevocationStore) resync(ctx context.Context, apply func([]Revocation)) error {
	rs, err := s.LiveRevocations(ctx)
	if err != nil {
		return err
	}
	if len(rs) > 0 {
		apply(rs)
	}
	return nil
}

func (s *RevocationStore) resyncEvery(ctx context.Context, cfg FollowConfig, apply func([]Revocation)) {
	t := time.NewTicker(cfg.ResyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.resync(ctx, apply); err != nil && ctx.Err() == nil {
				cfg.OnError(fmt.Errorf("resyncing revocations: %w", err))
			}
		}
	}
}

// poll reads, on SQLite, the rows recorded after seq every PollInterval.
// SQLite serialises writers, so rows become visible in seq order and a
// watermark misses none. The query is one index probe when there is
// nothing new.
func (s *RevocationStore) poll(ctx context.Context, cfg FollowConfig, seq int64, apply func([]Revocation)) {
	t := time.NewTicker(cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rs, next, err := s.revocationsAfter(ctx, seq)
		if err != nil {
			if ctx.Err() == nil {
				cfg.OnError(fmt.Errorf("polling revocations: %w", err))
			}
			continue
		}
		seq = next
		if len(rs) > 0 {
			apply(rs)
		}
	}
}

// listen holds a PostgreSQL connection that LISTENs on the revocation
// channel, and re-establishes it (with backoff) whenever it fails.
func (s *RevocationStore) listen(ctx context.Context, cfg FollowConfig, apply func([]Revocation)) {
	backoff := minListenBackoff
	var reported time.Time
	for {
		started := time.Now()
		err := s.listenOnce(ctx, apply)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > listenHealthy {
			backoff, reported = minListenBackoff, time.Time{}
		}
		if reported.IsZero() || time.Since(reported) >= listenReportInterval {
			cfg.OnError(fmt.Errorf("listening for revocations: %w", err))
			reported = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxListenBackoff)
	}
}

// listenOnce takes a connection from the pool, LISTENs, reloads every live
// revocation (what was notified while no connection listened), then
// applies each notification until the connection fails or ctx ends. The
// connection is never returned to the pool: it may still be listening.
func (s *RevocationStore) listenOnce(ctx context.Context, apply func([]Revocation)) error {
	conn, err := s.db.SQL.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var failed error
	_ = conn.Raw(func(dc any) error {
		failed = s.listenOn(ctx, dc, apply)
		// Whatever happened, the connection may still be listening.
		return driver.ErrBadConn
	})
	return failed
}

func (s *RevocationStore) listenOn(ctx context.Context, dc any, apply func([]Revocation)) error {
	sc, ok := dc.(*stdlib.Conn)
	if !ok {
		return fmt.Errorf("unexpected driver connection %T", dc)
	}
	pc := sc.Conn()
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	if err := s.resync(ctx, apply); err != nil {
		return err
	}
	for {
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		rs, err := decodeRevocations(n.Payload)
		if err != nil {
			return err
		}
		apply(rs)
	}
}
