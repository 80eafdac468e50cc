package storage_test

import (
	"testing"

	"github.com/nsauth/nsauth/internal/issuer/storage"
)

// TestNormalizeUserCode: a typed user code is accepted in any case, with
// dashes and spaces, and only as UserCodeLen letters of the alphabet.
func TestNormalizeUserCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typed, want string
		ok          bool
	}{
		{"BCDF-GHJK", "BCDFGHJK", true},
		{"bcdf ghjk", "BCDFGHJK", true},
		{" b-c-d-f-g-h-j-k\t", "BCDFGHJK", true},
		{"BCDF-GHJ", "", false},   // too short
		{"BCDF-GHJKL", "", false}, // too long
		{"ABCD-EFGH", "", false},  // vowels are not of the alphabet
		{"BCDF-GHJ0", "", false},  // nor digits
		{"BCDF-GHJÉ", "", false},  // nor other letters
		{"", "", false},           // nothing
		{string(make([]byte, 64)), "", false},
	} {
		got, ok := storage.NormalizeUserCode(tc.typed)
		if ok != tc.ok || got != tc.want {
			t.Errorf("NormalizeUserCode(%q) = %q, %v; want %q, %v", tc.typed, got, ok, tc.want, tc.ok)
		}
	}
}
