package attempts

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestHashGate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := NewHashGate(2, 2) // 2 running, 2 waiting; one address holds at most 1

	leaveA1, err := g.Enter(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	// A second attempt from a waits (a holds its share), but b gets the
	// other slot at once.
	waitingA := make(chan func(), 1)
	go func() {
		leave, err := g.Enter(ctx, "a")
		if err != nil {
			t.Error(err)
		}
		waitingA <- leave
	}()
	waitUntil(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.keys["a"] != nil && g.keys["a"].users == 2 })
	// a's second attempt is registered; with a's share full it cannot run
	// until the first leaves.
	if n := len(g.running); n != 1 {
		t.Fatalf("%d running with a's second attempt waiting, want 1", n)
	}
	leaveB, err := enterWithin(g, "b", time.Second)
	if err != nil {
		t.Fatalf("b could not hash while a waited for its share: %v", err)
	}
	// Queue: a1, b running; a2 waiting; one more fits, the next is refused
	// at once.
	cctx, cancel := context.WithCancel(ctx)
	cancelled := make(chan error, 1)
	go func() {
		_, err := g.Enter(cctx, "c")
		cancelled <- err
	}()
	waitUntil(t, func() bool { return len(g.admitted) == 4 })
	if _, err := g.Enter(ctx, "d"); !errors.Is(err, ErrHashBusy) {
		t.Fatalf("a full queue answered %v, want ErrHashBusy", err)
	}
	// A waiter that gives up frees its place in the queue.
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if n := len(g.admitted); n != 3 {
		t.Fatalf("%d admitted after a waiter left, want 3", n)
	}
	// Freeing a's slot lets its waiting attempt run.
	leaveA1()
	leaveA2 := <-waitingA
	leaveA2()
	leaveB()
	if len(g.admitted) != 0 || len(g.running) != 0 || len(g.keys) != 0 {
		t.Fatalf("gate not empty after everyone left: admitted %d running %d keys %d", len(g.admitted), len(g.running), len(g.keys))
	}
}

func enterWithin(g *HashGate, key string, d time.Duration) (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return g.Enter(ctx, key)
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
