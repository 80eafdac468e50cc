package revocations

import (
	"context"
	"database/sql/driver"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Defaults for [FollowConfig].
const (
	// DefaultResyncInterval is how often a follower on PostgreSQL reads
	// again the revocations recorded since shortly before its last read:
	// the backstop for a notification that never arrived (one sent while
	// the listening connection was being replaced), and what keeps the
	// read after a reconnect short.
	DefaultResyncInterval = 30 * time.Second
	// DefaultPollInterval is how often a follower on SQLite looks for
	// revocations recorded by other processes on the file (`nsauth users`).
	DefaultPollInterval = 200 * time.Millisecond
)

// commitMargin is how far before the start of its previous read a
// follower on PostgreSQL reads revocations again, by revoked_at. A row a
// read did not see was committed after that read began; its revoked_at
// is the revoking server's clock before its transaction wrote anything,
// so it is at most this margin earlier than the read's start as long as
// the revoking transaction lasted less than the margin, less the two
// servers' clock difference. Revoking transactions are a few statements
// (milliseconds), and replicas' clocks are kept within milliseconds by
// NTP: a minute covers both many times over, and costs only the rows
// revoked in the last minute and a half at each read. A transaction slower
// than that whose notification was also lost would be missed; nothing else
// would.
const commitMargin = time.Minute

// listenBackoff bounds the wait between attempts to re-establish the
// PostgreSQL listening connection. The longest wait is short: after the
// database server restarts, a revocation must reach this replica within a
// second, and the next attempt's catch-up read is what brings it (a wait of
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
	// ResyncInterval is how often, on PostgreSQL, the revocations recorded
	// since shortly before the last read are read again. Defaults to
	// [DefaultResyncInterval]. SQLite needs none: its polling misses
	// nothing.
	ResyncInterval time.Duration
	// PollInterval is how often, on SQLite, new rows are looked for.
	// Defaults to [DefaultPollInterval]. PostgreSQL needs no polling: it
	// notifies.
	PollInterval time.Duration
	// OnError is told of each failure to read revocations or to listen
	// for them; following goes on regardless (retrying, and catching up
	// once it can). Defaults to ignoring them.
	OnError func(error)
}

// FollowRevocations calls apply with every live revocation (read in
// batches, so that a million of them are never held at once), then keeps
// calling it, until ctx ends, with every new one: those made through this
// store right after their transaction commits; and those of other
// processes (replicas on PostgreSQL, `nsauth users` on either backend) as
// they are learnt of.
//
// No read after the first is of every live revocation. On SQLite, the
// rows recorded after the highest seq seen are read every PollInterval:
// writers are serialised, so rows become visible in seq order and none is
// missed. On PostgreSQL, LISTEN/NOTIFY brings each revocation as its
// transaction commits; and every ResyncInterval, and each time the
// listening connection is re-established, the rows revoked since a minute
// before the previous read began are read again (a seq watermark would
// not do: a transaction may commit after another that took a later seq;
// see commitMargin for why a minute is enough).
//
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
	// The watermark and the start of the read are taken before the load,
	// so that what commits in between is read again rather than missed.
	seq, err := s.lastRevocationSeq(ctx)
	if err != nil {
		return err
	}
	start := s.db.NowMillis()
	if err := s.EachLiveRevocation(ctx, apply); err != nil {
		return err
	}
	s.hooks.follow(apply)
	if s.db.Dialect.Name == "postgres" {
		f := &catchUp{s: s, apply: apply, since: start}
		go f.every(ctx, cfg)
		go s.listen(ctx, cfg, f)
	} else {
		go s.poll(ctx, cfg, seq, apply)
	}
	return nil
}

// catchUp reads, on PostgreSQL, the revocations recorded since shortly
// before its last read.
type catchUp struct {
	s     *RevocationStore
	apply func([]Revocation)

	mu sync.Mutex
	// since is when (by this server's clock, Unix milliseconds) the last
	// read that succeeded began: it saw every row committed before then.
	since int64
}

// read applies the revocations revoked since commitMargin before the last
// read began. Reads may overlap: each sees what committed before it began,
// so the latest start of those that succeeded is where the next begins.
func (c *catchUp) read(ctx context.Context) error {
	c.mu.Lock()
	since := c.since
	c.mu.Unlock()
	start := c.s.db.NowMillis()
	if err := c.s.RevokedSince(ctx, since-commitMargin.Milliseconds(), c.apply); err != nil {
		return err
	}
	c.mu.Lock()
	c.since = max(c.since, start)
	c.mu.Unlock()
	return nil
}

func (c *catchUp) every(ctx context.Context, cfg FollowConfig) {
	t := time.NewTicker(cfg.ResyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.read(ctx); err != nil && ctx.Err() == nil {
				cfg.OnError(fmt.Errorf("reading recent revocations: %w", err))
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
		next, err := s.RevocationsAfter(ctx, seq, apply)
		if err != nil {
			if ctx.Err() == nil {
				cfg.OnError(fmt.Errorf("polling revocations: %w", err))
			}
			continue
		}
		seq = next
	}
}

// listen holds a PostgreSQL connection that LISTENs on the revocation
// channel, and re-establishes it (with backoff) whenever it fails.
func (s *RevocationStore) listen(ctx context.Context, cfg FollowConfig, c *catchUp) {
	backoff := minListenBackoff
	var reported time.Time
	for {
		started := time.Now()
		err := s.listenOnce(ctx, c)
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

// listenOnce takes a connection from the pool, LISTENs, catches up (reads
// what may have been notified while no connection listened: the rows
// revoked since shortly before the last read, not every live one), then
// applies each notification until the connection fails or ctx ends. The
// connection is never returned to the pool: it may still be listening.
func (s *RevocationStore) listenOnce(ctx context.Context, c *catchUp) error {
	conn, err := s.db.SQL.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var failed error
	_ = conn.Raw(func(dc any) error {
		failed = s.listenOn(ctx, dc, c)
		// Whatever happened, the connection may still be listening.
		return driver.ErrBadConn
	})
	return failed
}

func (s *RevocationStore) listenOn(ctx context.Context, dc any, c *catchUp) error {
	sc, ok := dc.(*stdlib.Conn)
	if !ok {
		return fmt.Errorf("unexpected driver connection %T", dc)
	}
	pc := sc.Conn()
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	if err := c.read(ctx); err != nil {
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
		c.apply(rs)
	}
}
