// Package stringset turns lists of strings (allowlists from configuration)
// into sets, in one place for every layer that checks membership.
package stringset

// Of returns the set of the strings in list. An empty list gives an empty,
// non-nil set.
func Of(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, v := range list {
		m[v] = true
	}
	return m
}
