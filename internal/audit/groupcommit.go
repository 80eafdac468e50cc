package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Group commit (Config.GroupCommit): the events Record is given are
// stored by one writer goroutine, as many as are waiting when it is free
// in one INSERT (one write transaction, [BatchSink]), rather than each in
// a write transaction of its own. On SQLite every write transaction takes
// the one write lock and ends with a commit, so a token request that
// recorded its token and then its event made two; with group commit the
// requests of a busy server share the commits of their events, and each
// makes one write transaction of its own, its token's.
//
// The audit trail keeps the same rows: each event is one row, in the
// order the events were queued. Record still returns once its row is
// committed (or could not be), required or not: a lone event is written
// at once, as before, and a batch forms only while the writer is busy.
// Not returning before the commit when recording is not required would
// save a request the wait for one commit, no CPU, and would cost what the
// trail promises: events queued when the process dies would be lost, and
// a reader (nsauth audit, the admin API, a test) would not find the event
// of an action that has returned.
//
// [Auditor.Close] writes what is still queued and stops the writer; the
// server calls it before it closes the store.

// BatchSink is a [Sink] that stores several events at once.
type BatchSink interface {
	Sink
	// InsertAuditEvents stores each of es as a row of its own, in the
	// order given, all or none.
	InsertAuditEvents(ctx context.Context, es []Event) error
}

// batchFailureNoter is a [BatchSink] that wants to know of the requests
// whose batch failed, under their contexts: the batch was written under
// a context of its own. The store reports an unavailable database to the
// request (store.WatchOutage), which then answers 503 as it would had it
// written the event itself.
type batchFailureNoter interface {
	NoteBatchFailure(ctx context.Context, err error)
}

// DefaultQueueLength is the default of Config.QueueLength.
const DefaultQueueLength = 4096

// MaxBatch is the most events the writer of group commit stores at once.
const MaxBatch = 64

// errQueueFull is the failure of an event that found no room in the
// queue within the write timeout.
var errQueueFull = errors.New("the audit queue is full")

// queued is an event waiting for the writer.
type queued struct {
	e Event
	// done receives the error of the batch the event was stored in.
	done chan error
}

// groupCommit is the queue and the writer of Config.GroupCommit.
type groupCommit struct {
	sink BatchSink
	// mu guards closed and sending on queue: Close closes queue once no
	// Record is sending.
	mu      sync.RWMutex
	closed  bool
	queue   chan queued
	stopped chan struct{} // closed when the writer has returned
}

// enqueue hands q to the writer, waiting at most wait for room. sent is
// false when the writer has stopped (Close): the caller then stores the
// event itself.
func (g *groupCommit) enqueue(q queued, wait time.Duration) (sent bool, err error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return false, nil
	}
	select {
	case g.queue <- q:
		return true, nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case g.queue <- q:
		return true, nil
	case <-t.C:
		return true, errQueueFull
	}
}

// recordGrouped is Record for a valid event under group commit; done is
// false when the writer has stopped and Record must store e itself.
func (a *Auditor) recordGrouped(ctx context.Context, e Event) (done bool, err error) {
	q := queued{e: e, done: make(chan error, 1)}
	start := time.Now()
	sent, err := a.group.enqueue(q, a.cfg.WriteTimeout)
	if !sent {
		return false, nil
	}
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("storing: %w", err))
	}
	if a.cfg.Stream != nil {
		if err := a.cfg.Stream.Write(e); err != nil {
			errs = append(errs, fmt.Errorf("streaming: %w", err))
		}
	}
	if err == nil {
		// The batch's own write is bounded by WriteTimeout; this bounds
		// the wait for the batches queued before it too.
		t := time.NewTimer(max(a.cfg.WriteTimeout-time.Since(start), 0) + a.cfg.WriteTimeout)
		select {
		case err := <-q.done:
			if err != nil {
				if n, ok := a.cfg.Sink.(batchFailureNoter); ok {
					n.NoteBatchFailure(ctx, err)
				}
				errs = append(errs, fmt.Errorf("storing: %w", err))
			}
		case <-t.C:
			errs = append(errs, errors.New("storing: the audit queue was not written in time"))
		}
		t.Stop()
	}
	return true, a.failed(ctx, e.Type, errs)
}

// commitLoop is the writer: it stores the queued events in batches of
// up to MaxBatch until Close has closed the queue and it is empty.
func (a *Auditor) commitLoop() {
	g := a.group
	defer close(g.stopped)
	batch := make([]queued, 0, MaxBatch)
	events := make([]Event, 0, MaxBatch)
	for {
		q, ok := <-g.queue
		if !ok {
			return
		}
		batch = append(batch[:0], q)
	fill:
		for len(batch) < MaxBatch {
			select {
			case q, ok := <-g.queue:
				if !ok {
					break fill
				}
				batch = append(batch, q)
			default:
				break fill
			}
		}
		events = events[:0]
		for _, q := range batch {
			events = append(events, q.e)
		}
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.WriteTimeout)
		err := g.sink.InsertAuditEvents(ctx, events)
		cancel()
		for i, q := range batch {
			q.done <- err // its Record logs and counts a failure
			batch[i] = queued{}
		}
	}
}

// Queued is how many events group commit holds queued, not counting the
// batch being stored: for metrics. Zero without group commit.
func (a *Auditor) Queued() int {
	if a.group == nil {
		return 0
	}
	return len(a.group.queue)
}

// Close stores the events group commit has queued and stops its writer;
// Record then stores each event itself, as without group commit. It
// returns when the queue is written, or with ctx's error when ctx ends
// first (the writer goes on until the queue is empty). Without group
// commit, or when already closed, it does nothing. The Sink must stay open
// until Close has returned.
func (a *Auditor) Close(ctx context.Context) error {
	g := a.group
	if g == nil {
		return nil
	}
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.queue)
	}
	g.mu.Unlock()
	select {
	case <-g.stopped:
		return nil
	default:
	}
	select {
	case <-g.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("writing the queued audit events: %w", ctx.Err())
	}
}
