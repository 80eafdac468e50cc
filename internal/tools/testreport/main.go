// Command testreport reads the output of `go test -json` (the README's test
// command with -json), prints a readable summary, and exits non-zero when a
// test failed, a package did not build, or a test skipped without being on
// the allow-list. CI uses it so that "nothing may skip" is checked, not
// hoped for:
//
//	go test -race -count=1 -json ./... > "$log"
//	go run ./internal/tools/testreport -allow .ci/allowed-skips.txt "$log"
//
// It is a development tool: nothing in the product imports it.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main with its inputs injected; it returns the exit code: 0 when CI
// may pass, 1 when it must fail, 2 when the tool was misused.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	allowPath := fs.String("allow", "", "allow-list of tests that may skip: one name or regexp per line, each with a `# reason`")
	showPattern := fs.String("show", "", "also print, near the end, every line of the tests' output that matches this `regexp` (tallies)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: testreport [-allow FILE] [-show REGEXP] [LOG]   (LOG is `go test -json` output; default stdin)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	var allow []*allowedSkip
	if *allowPath != "" {
		f, err := os.Open(*allowPath)
		if err != nil {
			fmt.Fprintf(stderr, "testreport: %v\n", err)
			return 2
		}
		allow, err = parseAllowList(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "testreport: %s: %v\n", *allowPath, err)
			return 2
		}
	}
	var show *regexp.Regexp
	if *showPattern != "" {
		var err error
		if show, err = regexp.Compile(*showPattern); err != nil {
			fmt.Fprintf(stderr, "testreport: -show: %v\n", err)
			return 2
		}
	}
	in := stdin
	if fs.NArg() == 1 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			fmt.Fprintf(stderr, "testreport: %v\n", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	v, err := judge(in, allow, show, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "testreport: %v\n", err)
		return 2
	}
	if !v.ok() {
		return 1
	}
	return 0
}
