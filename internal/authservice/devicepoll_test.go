package authservice

import (
	"fmt"
	"testing"
	"time"
)

// TestPollGateIsBounded: the gate holds at most its bound of device
// logins, forgets the least recently polled first, and drops a login once
// its codes have expired.
func TestPollGateIsBounded(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_900_000_000, 0)
	g := newPollGate(func() time.Time { return now }, 3)
	for i := range 5 {
		g.started(fmt.Sprintf("dc-%d", i), 5, 60)
	}
	if n := g.len(); n != 3 {
		t.Fatalf("tracking %d logins, want the bound, 3", n)
	}
	// dc-0 was forgotten: its first poll is a first poll again.
	if ok, _ := g.admit("dc-0"); !ok {
		t.Error("a forgotten login's poll was refused")
	}
	if ok, _ := g.admit("dc-4"); !ok {
		t.Error("first poll refused")
	}
	if ok, interval := g.admit("dc-4"); ok || interval != 10 {
		t.Errorf("second poll at once = %v, %d; want refused with interval 10", ok, interval)
	}
	// Past their expiry (a minute for those started, half an hour for
	// dc-0, polled without a start), logins are dropped as new ones come.
	now = now.Add(31 * time.Minute)
	g.started("dc-new", 5, 60)
	if n := g.len(); n != 1 {
		t.Errorf("tracking %d logins after the others expired, want 1", n)
	}
	g.forget("dc-new")
	if n := g.len(); n != 0 {
		t.Errorf("tracking %d logins after forgetting the last, want 0", n)
	}
}
