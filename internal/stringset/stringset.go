// Package stringset turns lists of strings (allowlists from configuration)
// into sets, and drops their repeats, in one place for every layer that
// checks membership or keeps such a list.
package stringset

import "slices"

// Of returns the set of the strings in list. An empty list gives an empty,
// non-nil set.
func Of(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, v := range list {
		m[v] = true
	}
	return m
}

// Unique returns the strings of list without repeats, each where it first
// appears; nil when list is empty.
func Unique(list []string) []string {
	var out []string
	for _, v := range list {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
