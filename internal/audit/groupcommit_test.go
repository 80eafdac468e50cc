package audit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
)

// batchSink is a memSink that also stores batches, each held until gate
// lets it through (nil: none is held), and remembers their sizes.
type batchSink struct {
	memSink
	gate    chan struct{}
	started chan int // receives each batch's size, before the gate
	batches []int
}

func newBatchSink(gated bool) *batchSink {
	s := &batchSink{started: make(chan int, 1024)}
	if gated {
		s.gate = make(chan struct{})
	}
	return s
}

func (s *batchSink) InsertAuditEvents(_ context.Context, es []audit.Event) error {
	s.started <- len(es)
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.batches = append(s.batches, len(es))
	s.events = append(s.events, es...)
	return nil
}

func (s *batchSink) stored() (events []audit.Event, batches []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]audit.Event(nil), s.events...), append([]int(nil), s.batches...)
}

// waitStarted waits until the writer of group commit has begun to store
// a batch in sink.
func waitStarted(t *testing.T, sink *batchSink) int {
	t.Helper()
	select {
	case n := <-sink.started:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no batch was stored")
		return 0
	}
}

// waitQueued waits until a's group commit holds n events queued.
func waitQueued(t *testing.T, a *audit.Auditor, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); a.Queued() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d events queued, want %d", a.Queued(), n)
		}
	}
}

// TestGroupCommitBatches: the events recorded while the writer stores a
// batch are stored together, in one batch, in the order they were
// recorded, each exactly as Record without group commit stores it, and
// each Record returns once its batch is stored.
func TestGroupCommitBatches(t *testing.T) {
	t.Parallel()
	for _, required := range []bool{false, true} {
		t.Run(fmt.Sprintf("required=%v", required), func(t *testing.T) {
			t.Parallel()
			sink := newBatchSink(true)
			a := newAuditor(t, audit.Config{Sink: sink, Replica: "r1", Required: required, GroupCommit: true})
			t.Cleanup(func() { _ = a.Close(context.Background()) })
			const n = 20
			errs := make(chan error, n+1)
			record := func(i int) {
				errs <- a.Record(context.Background(), audit.Event{Type: audit.ClientCredentialsGrant, ClientID: fmt.Sprintf("c%02d", i),
					Refs: map[string]string{audit.RefToken: a.Ref(fmt.Sprintf("token-%d", i))}})
			}
			go record(0)
			waitStarted(t, sink) // the writer holds event 0
			for i := 1; i <= n; i++ {
				go record(i)
				waitQueued(t, a, i) // one at a time, so that the order is known
			}
			close(sink.gate)
			for range n + 1 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			events, batches := sink.stored()
			if len(batches) != 2 || batches[0] != 1 || batches[1] != n {
				t.Errorf("batches %v, want [1 %d]", batches, n)
			}
			want := newBatchSink(false)
			plain := newAuditor(t, audit.Config{Sink: want, Replica: "r1"})
			for i := 0; i <= n; i++ {
				if err := plain.Record(context.Background(), audit.Event{Type: audit.ClientCredentialsGrant, ClientID: fmt.Sprintf("c%02d", i),
					Refs: map[string]string{audit.RefToken: plain.Ref(fmt.Sprintf("token-%d", i))}}); err != nil {
					t.Fatal(err)
				}
			}
			if fmt.Sprint(events) != fmt.Sprint(want.events) {
				t.Errorf("stored with group commit:\n%v\nwithout:\n%v", events, want.events)
			}
		})
	}
}

// TestGroupCommitRequiredWaits: Record does not return before its row is
// stored, and under NSAUTH_AUDIT_REQUIRED a batch that cannot be stored
// fails the Record of every event in it.
func TestGroupCommitRequiredWaits(t *testing.T) {
	t.Parallel()
	t.Run("stored", func(t *testing.T) {
		t.Parallel()
		sink := newBatchSink(false)
		a := newAuditor(t, audit.Config{Sink: sink, Required: true, GroupCommit: true})
		t.Cleanup(func() { _ = a.Close(context.Background()) })
		if err := a.Record(context.Background(), audit.Event{Type: audit.LoginSucceeded, Username: "alice"}); err != nil {
			t.Fatal(err)
		}
		if events, _ := sink.stored(); len(events) != 1 || events[0].Username != "alice" {
			t.Fatalf("stored when Record returned: %v", events)
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		sink := newBatchSink(false)
		sink.err = errors.New("disk full")
		a := newAuditor(t, audit.Config{Sink: sink, Required: true, GroupCommit: true})
		t.Cleanup(func() { _ = a.Close(context.Background()) })
		const n = 5
		errs := make(chan error, n)
		for range n {
			go func() { errs <- a.Record(context.Background(), audit.Event{Type: audit.LoginSucceeded}) }()
		}
		for range n {
			if err := <-errs; !errors.Is(err, audit.ErrNotRecorded) {
				t.Errorf("Record = %v, want ErrNotRecorded", err)
			}
		}
		if got := a.Failures(); got != n {
			t.Errorf("Failures = %d, want %d", got, n)
		}
	})
}

// TestGroupCommitQueueFull: an event that finds no room in the queue
// within the write timeout is not stored, and that is the failure path of
// any event not recorded: logged and counted, and without
// NSAUTH_AUDIT_REQUIRED the request goes on.
func TestGroupCommitQueueFull(t *testing.T) {
	t.Parallel()
	sink := newBatchSink(true)
	var logs lockedLog
	a := newAuditor(t, audit.Config{Sink: sink, GroupCommit: true, QueueLength: 2, WriteTimeout: 200 * time.Millisecond, Logger: slogTo(&logs)})
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	errs := make(chan error, 3)
	record := func(i int) {
		errs <- a.Record(context.Background(), audit.Event{Type: audit.LoginSucceeded, Username: fmt.Sprint(i)})
	}
	go record(0)
	waitStarted(t, sink) // the writer holds it; two more fill the queue
	go record(1)
	go record(2)
	waitQueued(t, a, 2)
	if err := a.Record(context.Background(), audit.Event{Type: audit.LoginSucceeded, Username: "3"}); err != nil {
		t.Fatal(err)
	}
	if got := a.Failures(); got != 1 {
		t.Errorf("Failures = %d, want 1", got)
	}
	if !logs.contains("audit event not recorded") || !logs.contains("queue is full") {
		t.Errorf("the dropped event was not logged: %q", logs.String())
	}
	close(sink.gate)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if events, _ := sink.stored(); len(events) != 3 {
		t.Errorf("stored %d events, want 3", len(events))
	}
}

// TestCloseWritesTheQueue: Close returns once every queued event is
// stored; after it, Record stores each event itself.
func TestCloseWritesTheQueue(t *testing.T) {
	t.Parallel()
	sink := newBatchSink(true)
	a := newAuditor(t, audit.Config{Sink: sink, GroupCommit: true})
	const n = 3 * audit.MaxBatch
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- a.Record(context.Background(), audit.Event{Type: audit.LoginSucceeded, Username: fmt.Sprint(i)})
		}()
	}
	held := waitStarted(t, sink)
	waitQueued(t, a, n-held)
	closed := make(chan error, 1)
	go func() { closed <- a.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with the queue unwritten", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(sink.gate)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	events, batches := sink.stored()
	if len(events) != n {
		t.Fatalf("stored %d events at Close, want %d", len(events), n)
	}
	for _, b := range batches {
		if b > audit.MaxBatch {
			t.Errorf("a batch of %d events, more than MaxBatch", b)
		}
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Record(context.Background(), audit.Event{Type: audit.LoginSucceeded, Username: "after"}); err != nil {
		t.Fatal(err)
	}
	if events, _ := sink.stored(); len(events) != n+1 {
		t.Errorf("an event recorded after Close was not stored at once")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Close(ctx); err != nil {
		t.Errorf("a second Close = %v", err)
	}
}

// lockedLog is a log buffer safe for the writer goroutine.
type lockedLog struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

func (l *lockedLog) contains(s string) bool { return strings.Contains(l.String(), s) }

// noterSink is a batchSink that keeps the contexts NoteBatchFailure was
// told of.
type noterSink struct {
	*batchSink
	mu    sync.Mutex
	noted []context.Context
}

func (s *noterSink) NoteBatchFailure(ctx context.Context, _ error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noted = append(s.noted, ctx)
}

type requestKey struct{}

// TestGroupCommitFailureReachesTheRequest: a batch that fails is reported
// to the sink under the context of each Record whose event it held, so
// that the store can tell the request its database is unavailable.
func TestGroupCommitFailureReachesTheRequest(t *testing.T) {
	t.Parallel()
	sink := &noterSink{batchSink: newBatchSink(false)}
	sink.err = errors.New("the database is unreachable")
	a := newAuditor(t, audit.Config{Sink: sink, Required: true, GroupCommit: true})
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	ctx := context.WithValue(context.Background(), requestKey{}, "request-1")
	if err := a.Record(ctx, audit.Event{Type: audit.LoginSucceeded}); !errors.Is(err, audit.ErrNotRecorded) {
		t.Fatalf("Record = %v, want ErrNotRecorded", err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.noted) != 1 || sink.noted[0].Value(requestKey{}) != "request-1" {
		t.Errorf("the failure was noted under %v, want the Record's context", sink.noted)
	}
}
