package main

import (
	"fmt"
	"io"
	"sort"
)

// judge lists every package and type above the limits, in the order of
// sizes and then by type name.
func judge(sizes []packageSize, maxLines, maxMethods int) []string {
	var problems []string
	for _, s := range sizes {
		if s.lines > maxLines {
			problems = append(problems, fmt.Sprintf("package %s has %d non-test lines, above the limit of %d", s.name, s.lines, maxLines))
		}
		var types []string
		for name, n := range s.methods {
			if n > maxMethods {
				types = append(types, name)
			}
		}
		sort.Strings(types)
		for _, name := range types {
			problems = append(problems, fmt.Sprintf("type %s.%s has %d methods, above the limit of %d", s.name, name, s.methods[name], maxMethods))
		}
	}
	return problems
}

// writeReport prints one row per package: lines, the most methods on one
// type and that type, in the order of sizes, then the total.
func writeReport(w io.Writer, sizes []packageSize) {
	fmt.Fprintf(w, "%7s %7s  %s\n", "lines", "methods", "package (type with the most methods)")
	total := 0
	for _, s := range sizes {
		total += s.lines
		name, n, ok := s.largestType()
		typ := ""
		if ok {
			typ = " (" + name + ")"
		}
		fmt.Fprintf(w, "%7d %7d  %s%s\n", s.lines, n, s.name, typ)
	}
	fmt.Fprintf(w, "%7d %7s  %d packages\n", total, "", len(sizes))
}
