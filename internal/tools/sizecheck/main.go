// Command sizecheck fails when a package under internal/ or pkg/ grows
// past what a reader can hold in a sitting: more than 3,000 non-test lines
// of Go, or a named type with more than 30 declared methods (STYLE.md,
// rule 14). CI runs it from the module's root:
//
//	go run ./internal/tools/sizecheck
//
// Lines are the lines of a package's GoFiles and CgoFiles as `go list`
// reports them (so _test.go files and files excluded by build constraints
// do not count), leaving out generated files: those marked with the
// standard "// Code generated ... DO NOT EDIT." line, which nobody edits by
// hand. Methods are the function declarations with a receiver, counted per
// receiver base type (T and *T are one type), in the same files.
//
// With -report it also prints every package's lines and its largest type,
// biggest first, for the record of a restructure.
//
// It is a development tool: nothing in the product imports it.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

// The limits of STYLE.md, rule 14.
const (
	defaultMaxLines   = 3000
	defaultMaxMethods = 30
)

// defaultPatterns are the packages the size rule covers.
var defaultPatterns = []string{"./internal/...", "./pkg/..."}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its inputs injected; it returns the exit code: 0 when
// every package is within the limits, 1 when one is not, 2 when the tool
// was misused or `go list` or a file could not be read.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sizecheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	report := fs.Bool("report", false, "print every package's non-test lines and its type with the most methods, biggest first")
	maxLines := fs.Int("max-lines", defaultMaxLines, "most non-test, non-generated Go lines a package may have")
	maxMethods := fs.Int("max-methods", defaultMaxMethods, "most methods a named type may declare")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sizecheck [-report] [-max-lines N] [-max-methods N] [packages]   (default ./internal/... ./pkg/...)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	patterns := fs.Args()
	if len(patterns) == 0 {
		patterns = defaultPatterns
	}
	pkgs, err := listPackages(patterns)
	if err != nil {
		fmt.Fprintf(stderr, "sizecheck: %v\n", err)
		return 2
	}
	var sizes []packageSize
	for _, p := range pkgs {
		s, err := measure(p)
		if err != nil {
			fmt.Fprintf(stderr, "sizecheck: %v\n", err)
			return 2
		}
		sizes = append(sizes, s)
	}
	sortBySize(sizes)
	if *report {
		writeReport(stdout, sizes)
	}
	problems := judge(sizes, *maxLines, *maxMethods)
	for _, p := range problems {
		fmt.Fprintf(stderr, "sizecheck: %s\n", p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "sizecheck: %d package(s) or type(s) above the size limits (STYLE.md, rule 14): split by job, not by file size\n", len(problems))
		return 1
	}
	return 0
}
