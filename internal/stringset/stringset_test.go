package stringset_test

import (
	"maps"
	"slices"
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

func TestUnique(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []string
		want []string
	}{
		{"empty", nil, nil},
		{"no repeats", []string{"b", "a"}, []string{"b", "a"}},
		{"repeats keep the first place", []string{"b", "a", "b", "c", "a"}, []string{"b", "a", "c"}},
		{"case matters", []string{"A", "a"}, []string{"A", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stringset.Unique(tc.in); !slices.Equal(got, tc.want) || (tc.want == nil) != (got == nil) {
				t.Errorf("Unique(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
