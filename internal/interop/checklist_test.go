//go:build interop

package interop_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// checklist counts named checks of one relying-party library against
// nsauth, fails the test for each that fails, and prints the tally the
// issue's closing note compares: "RP checks: N passed of M (library)",
// where library names the backend too ("…, postgres, 2 replicas").
type checklist struct {
	library string

	mu     sync.Mutex
	names  []string
	failed []string
}

func newChecklist(t *testing.T, library string) *checklist {
	t.Helper()
	c := &checklist{library: library}
	t.Cleanup(func() { t.Log(c.Tally()) })
	return c
}

// Check records one check; a failure is reported with detail.
func (c *checklist) Check(t *testing.T, name string, ok bool, detail string, args ...any) bool {
	t.Helper()
	c.mu.Lock()
	c.names = append(c.names, name)
	if !ok {
		c.failed = append(c.failed, name)
	}
	c.mu.Unlock()
	if !ok {
		t.Errorf("%s: %s: %s", c.library, name, fmt.Sprintf(detail, args...))
	}
	return ok
}

// Tally is the one line the test logs at its end.
func (c *checklist) Tally() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := fmt.Sprintf("RP checks: %d passed of %d (%s)", len(c.names)-len(c.failed), len(c.names), c.library)
	if len(c.failed) > 0 {
		s += "; failed: " + strings.Join(c.failed, ", ")
	}
	return s
}
