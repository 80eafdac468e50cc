package server

import (
	"container/list"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"

	"github.com/nsauth/nsauth/internal/clientaddr"
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
	// MaxClients bounds how many addresses are tracked; the least recently
	// seen are forgotten first. Defaults to 10000.
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

	mu      sync.Mutex
	clients map[netip.Prefix]*list.Element
	lru     *list.List
}

type clientBucket struct {
	addr    netip.Prefix
	limiter *rate.Limiter
}

func newRateLimiter(cfg RateLimit) *rateLimiter {
	if cfg.PerMinute <= 0 || len(cfg.Procedures) == 0 {
		return nil
	}
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, int(math.Ceil(cfg.PerMinute)))
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	rl := &rateLimiter{cfg: cfg, limited: make(map[string]bool), clients: make(map[netip.Prefix]*list.Element), lru: list.New()}
	for _, p := range cfg.Procedures {
		rl.limited[p] = true
	}
	return rl
}

// allow reports whether the client may make a call now, and otherwise how
// long it should wait.
func (rl *rateLimiter) allow(key netip.Prefix) (bool, time.Duration) {
	now := rl.cfg.Now()
	rl.mu.Lock()
	defer rl.mu.Unlock()
	var b *clientBucket
	if el, ok := rl.clients[key]; ok {
		rl.lru.MoveToFront(el)
		b = el.Value.(*clientBucket)
	} else {
		b = &clientBucket{addr: key, limiter: rate.NewLimiter(rate.Limit(rl.cfg.PerMinute/60), rl.cfg.Burst)}
		rl.clients[key] = rl.lru.PushFront(b)
		for rl.lru.Len() > rl.cfg.MaxClients {
			oldest := rl.lru.Back()
			rl.lru.Remove(oldest)
			delete(rl.clients, oldest.Value.(*clientBucket).addr)
		}
	}
	r := b.limiter.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return false, delay
	}
	return true, 0
}

func (rl *rateLimiter) check(procedure string, peer connect.Peer, header http.Header) error {
	if !rl.limited[procedure] {
		return nil
	}
	ok, wait := rl.allow(clientaddr.Key(rl.cfg.Clients.Addr(peer.Addr, header.Values("X-Forwarded-For"))))
	if ok {
		return nil
	}
	secs := int(math.Ceil(wait.Seconds()))
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
