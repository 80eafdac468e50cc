package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/ratelimit"
)

// RateLimit limits how often one client address may call some procedures.
// The zero value limits nothing.
type RateLimit struct {
	// Procedures are the limited procedures, such as
	// "/mgmt.v1alpha1.AuthService/LoginCli". They share one budget per
	// address.
	Procedures []string
	// PerMinute is the sustained number of calls allowed per address;
	// zero or less disables the limit.
	PerMinute float64
	// Burst is how many calls may come at once. Defaults to PerMinute
	// (rounded up), at least 1.
	Burst int
	// MaxClients bounds how many addresses are tracked (see
	// [ratelimit.Config]: an address is forgotten only once its budget is
	// whole again). Defaults to [ratelimit.DefaultMaxClients].
	MaxClients int
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Clients finds a call's client address (behind trusted proxies, from
	// X-Forwarded-For). Nil means the TCP peer.
	Clients *clientaddr.Resolver
}

// rateLimiter is a Connect interceptor enforcing a RateLimit by client
// address, grouped by [clientaddr.Key].
type rateLimiter struct {
	cfg     RateLimit
	limited map[string]bool
	limiter *ratelimit.Limiter
}

func newRateLimiter(cfg RateLimit) *rateLimiter {
	limiter := ratelimit.New(ratelimit.Config{PerMinute: cfg.PerMinute, Burst: cfg.Burst, MaxClients: cfg.MaxClients, Now: cfg.Now})
	if limiter == nil || len(cfg.Procedures) == 0 {
		return nil
	}
	rl := &rateLimiter{cfg: cfg, limited: make(map[string]bool), limiter: limiter}
	for _, p := range cfg.Procedures {
		rl.limited[p] = true
	}
	return rl
}

func (rl *rateLimiter) check(procedure string, peer connect.Peer, header http.Header) error {
	if !rl.limited[procedure] {
		return nil
	}
	ok, wait := rl.limiter.Allow(clientaddr.Key(rl.cfg.Clients.Addr(peer.Addr, header.Values("X-Forwarded-For"))))
	if ok {
		return nil
	}
	secs := ratelimit.RetryAfterSeconds(wait)
	err := connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("too many requests; retry in %d s", secs))
	err.Meta().Set("Retry-After", strconv.Itoa(secs))
	return err
}

func (rl *rateLimiter) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := rl.check(req.Spec().Procedure, req.Peer(), req.Header()); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (rl *rateLimiter) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (rl *rateLimiter) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := rl.check(conn.Spec().Procedure, conn.Peer(), conn.RequestHeader()); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
