package core

import (
	"context"
	"sync"
)

// Outage records the first error that [IsUnavailable] recognises among the
// store calls made under a context of [WatchOutage]: what lets an edge
// that only sees a handler's "internal error" (an HTTP status 500 written
// far from the store call) tell a database that cannot be reached from a
// fault of the server's. Its methods are safe for concurrent use.
type Outage struct {
	mu  sync.Mutex
	err error
}

type outageKey struct{}

// WatchOutage returns ctx with an Outage that the store calls made under
// it (directly or under contexts derived from it) report to.
func WatchOutage(ctx context.Context) (context.Context, *Outage) {
	o := &Outage{}
	return context.WithValue(ctx, outageKey{}, o), o
}

// Err is the first unavailable error a store call under the Outage's
// context met, or nil.
func (o *Outage) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// noteOutage tells ctx's Outage, if any, about err when it is an
// unavailable error. It returns err.
func noteOutage(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	o, ok := ctx.Value(outageKey{}).(*Outage)
	if !ok || !IsUnavailable(err) {
		return err
	}
	o.mu.Lock()
	if o.err == nil {
		o.err = err
	}
	o.mu.Unlock()
	return err
}

// NoteOutage is noteOutage for a sub-store that writes, on a context of
// its own, what a request under ctx is waiting for (the audit trail's
// batches): ctx's Outage learns of an unavailable database as if the
// request had written itself.
func NoteOutage(ctx context.Context, err error) { noteOutage(ctx, err) }
