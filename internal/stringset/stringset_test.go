package stringset_test

import (
	"maps"
	"testing"

	"github.com/nsauth/nsauth/internal/stringset"
)

func TestOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want map[string]bool
	}{
		{"nil", nil, map[string]bool{}},
		{"duplicates collapse", []string{"a", "b", "a"}, map[string]bool{"a": true, "b": true}},
		{"empty string is a member like any other", []string{""}, map[string]bool{"": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := stringset.Of(tt.in)
			if got == nil || !maps.Equal(got, tt.want) {
				t.Fatalf("Of(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
