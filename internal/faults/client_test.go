package faults_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/store"
)

// endpoint is a replica as clients see it.
type endpoint struct {
	r   *replica
	api mgmtv1alpha1connect.AuthServiceClient
	// refreshing counts RefreshCli calls in flight to it, so that a kill
	// can be timed to land while refreshes are being served.
	refreshing atomic.Int64
}

// outcome names what a call got: "ok", the code of an answer from the
// server, or a transport failure and whether its replica was down.
type outcome string

const (
	outcomeOK            outcome = "ok"
	outcomeTransportDown outcome = "transport error, replica down"
	outcomeTransportUp   outcome = "transport error, replica up"
)

// Call budgets. The per-call deadline is long enough for a replica whose
// database is cut to answer Unavailable; a session failing for longer than
// giveUp is declared lost.
const (
	callTimeout = 15 * time.Second
	giveUp      = 90 * time.Second
	maxBackoff  = time.Second
)

// session is one client: a login it keeps alive by refreshing, as
// `nsauth token` would, and checks with CheckToken after every refresh.
// Only its goroutine touches it until run returns.
type session struct {
	id        int
	home      int // index of the replica it talks to first
	endpoints []*endpoint
	db        *sql.DB // the database directly, for the lost-answer diagnosis
	rng       *rand.Rand
	pause     time.Duration

	refreshToken, accessToken string

	// Results, read after run returns.
	calls       map[string]int  // "RefreshCli ok", "CheckToken unavailable", …
	refreshes   int             // successful refreshes
	violations  []string        // answers other than OK and Unavailable, transport errors to a live replica
	refused     int             // refreshes refused with Unauthenticated: the session is over, as for `nsauth token`
	lostAnswers map[outcome]int // failed refreshes whose rotation had been committed, by what the client got
	lost        string          // why the session ended early, if it did
	longestGap  time.Duration   // longest time from a failed call to the next success
	failingFrom time.Time

	// For the soak (nil in TestReplicaFaults): observe is told of every
	// call; clockJumps counts the replicas' clock jumps, and tokenJumps is
	// its value when the current access token was asked for, so that a
	// token a jump has expired is refreshed, not taken for a failure.
	observe    func(method string, start time.Time, took time.Duration, o outcome)
	clockJumps *atomic.Int64
	tokenJumps int64
	expired    int // CheckToken refusals of a token a clock jump expired
	callStart  time.Time
}

// jumpedSinceToken reports whether the replicas' clock jumped since the
// current access token was asked for.
func (s *session) jumpedSinceToken() bool {
	return s.clockJumps != nil && s.clockJumps.Load() > s.tokenJumps
}

// run loops until stop, then returns; a refresh under way at stop is
// carried to its end.
func (s *session) run(ctx context.Context, stop time.Time) {
	for time.Now().Before(stop) && s.lost == "" && ctx.Err() == nil {
		if !s.refresh(ctx) {
			return
		}
		s.check(ctx)
		sleep(ctx, s.pause/2+time.Duration(s.rng.Int64N(int64(s.pause)+1)))
	}
}

// refresh rotates the session's refresh token. Until it gets an answer it
// retries the same token, as a client that never saw the answer must,
// alternating replicas: the first retry of a refresh whose answer a killed
// replica never sent goes to the other one. It returns false when the
// session is lost.
func (s *session) refresh(ctx context.Context) bool {
	target := s.home
	committedSeen := false
	for attempt := 0; ; attempt++ {
		ep := s.endpoints[target]
		epoch := ep.r.epoch.Load()
		ep.refreshing.Add(1)
		if s.clockJumps != nil {
			// An odd count is a jump under way: the token may come from
			// either clock, so it counts as asked for before the jump.
			s.tokenJumps = s.clockJumps.Load() &^ 1
		}
		s.callStart = time.Now()
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		resp, err := ep.api.RefreshCli(callCtx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: s.refreshToken}))
		cancel()
		ep.refreshing.Add(-1)
		o := s.record("RefreshCli", ep, epoch, err)
		if o == outcomeOK {
			tok := resp.Msg.GetAccessToken()
			s.refreshToken, s.accessToken = tok.GetRefreshToken(), tok.GetAccessToken()
			if s.refreshToken == "" || s.accessToken == "" {
				s.lost = "RefreshCli answered without a refresh or access token"
				return false
			}
			s.refreshes++
			return true
		}
		if ctx.Err() != nil {
			s.lost = "test ended during a refresh"
			return false
		}
		if o == outcome(connect.CodeUnauthenticated.String()) {
			s.refused++
			s.lost = fmt.Sprintf("RefreshCli refused the current refresh token (Unauthenticated) on replica %s after %d attempt(s)", ep.r.name, attempt+1)
			return false
		}
		if !committedSeen && s.rotated() {
			// The rotation is in the database, but its answer never came
			// back: the retry below presents a token that is already used.
			committedSeen = true
			s.lostAnswers[o]++
		}
		if time.Since(s.failingFrom) > giveUp {
			s.lost = fmt.Sprintf("no refresh succeeded for %v", giveUp)
			return false
		}
		target = (target + 1) % len(s.endpoints)
		sleep(ctx, backoff(s.rng, attempt))
	}
}

// check calls CheckToken with the current access token, retrying on
// failure on the other replica, and reports whether it succeeded. A token
// it cannot get checked within giveUp is a violation but does not end the
// session.
func (s *session) check(ctx context.Context) bool {
	target := s.home
	for attempt := 0; ctx.Err() == nil; attempt++ {
		ep := s.endpoints[target]
		epoch := ep.r.epoch.Load()
		req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
		req.Header().Set("Authorization", "Bearer "+s.accessToken)
		s.callStart = time.Now()
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err := ep.api.CheckToken(callCtx, req)
		cancel()
		o := s.record("CheckToken", ep, epoch, err)
		if o == outcomeOK {
			return true
		}
		if o == outcome(connect.CodeUnauthenticated.String()) && s.jumpedSinceToken() {
			// The clock jumped past the token's life: the next refresh
			// brings a new one.
			s.expired++
			return true
		}
		if time.Since(s.failingFrom) > giveUp {
			s.violations = append(s.violations, fmt.Sprintf("CheckToken failed for %v", giveUp))
			return false
		}
		target = (target + 1) % len(s.endpoints)
		sleep(ctx, backoff(s.rng, attempt))
	}
	return false
}

// record counts a call's outcome, keeps violations, and tracks how long the
// session has been without a successful call.
func (s *session) record(method string, ep *endpoint, epoch int64, err error) outcome {
	now := time.Now()
	var o outcome
	switch {
	case err == nil:
		o = outcomeOK
		if !s.failingFrom.IsZero() {
			s.longestGap = max(s.longestGap, now.Sub(s.failingFrom))
			s.failingFrom = time.Time{}
		}
	case connect.IsWireError(err):
		o = outcome(connect.CodeOf(err).String())
	case ep.r.down.Load() || ep.r.epoch.Load() != epoch:
		o = outcomeTransportDown
	default:
		o = outcomeTransportUp
	}
	s.calls[method+" "+string(o)]++
	if s.observe != nil {
		s.observe(method, s.callStart, now.Sub(s.callStart), o)
	}
	expiredByJump := method == "CheckToken" && o == outcome(connect.CodeUnauthenticated.String()) && s.jumpedSinceToken()
	if err != nil && !expiredByJump && s.failingFrom.IsZero() {
		s.failingFrom = now
	}
	switch {
	case o == outcomeOK, o == outcomeTransportDown, o == outcome(connect.CodeUnavailable.String()):
	case method == "RefreshCli" && o == outcome(connect.CodeUnauthenticated.String()):
		// The session's end: refresh counts it.
	case expiredByJump:
		// Expired by the clock: check counts it.
	default:
		// Connect errors carry the server's fixed message or the transport's
		// error, never the request: no token reaches the log.
		s.violations = append(s.violations, fmt.Sprintf("%s %s on replica %s: %v", now.Format("15:04:05.000"), method, ep.r.name, err))
	}
	return o
}

// rotated reports whether the session's current refresh token is marked
// used in the database: a refresh whose answer was lost after its commit.
// It is a diagnosis for the summary, never a pass/fail criterion, so a
// query that fails (say, after a schema change) counts as "not seen".
func (s *session) rotated() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var used bool
	err := s.db.QueryRowContext(ctx, `SELECT used_at IS NOT NULL FROM nsauth_refresh_tokens WHERE token_hash = $1`, store.HashSecret(s.refreshToken)).Scan(&used)
	return err == nil && used
}

// backoff is the pause before retry attempt+1: 50 ms doubling to a second,
// with jitter so that clients do not retry in step.
func backoff(rng *rand.Rand, attempt int) time.Duration {
	d := min(50*time.Millisecond<<min(attempt, 5), maxBackoff)
	return d/2 + time.Duration(rng.Int64N(int64(d/2)+1))
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
