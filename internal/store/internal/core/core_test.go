package core_test

import (
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/store/internal/core"
)

// TestNewIDIsNeverAFlag: one base64url id in 64 would begin with "-",
// which a command line reads as a flag (nsauth sessions revoke -x… failed
// so). 20,000 ids would show at least one such id with a probability of
// 1 - (63/64)^20000, indistinguishable from certainty.
func TestNewIDIsNeverAFlag(t *testing.T) {
	seen := map[string]bool{}
	for range 20000 {
		id := core.NewID()
		if strings.HasPrefix(id, "-") {
			t.Fatalf("NewID() = %q begins with -", id)
		}
		if len(id) != 22 || seen[id] {
			t.Fatalf("NewID() = %q: want 22 characters (128 bits), never repeated", id)
		}
		seen[id] = true
	}
}
