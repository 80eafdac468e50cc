package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// event is one line of `go test -json` (see `go doc test2json`). Build
// events name the package in ImportPath; test events in Package.
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	Elapsed     float64
	ImportPath  string
	FailedBuild string
}

// testKey names one test or subtest; Test is empty for the package itself.
type testKey struct{ pkg, test string }

// verdict is what a `go test -json` stream says, judged against the
// allow-list.
type verdict struct {
	passed, failed, skipped, allowed int
	failures                         []testKey // failed tests, in order
	disallowed                       []testKey // skips not on the allow-list
	allowedSkips                     []testKey
	failedPackages                   []string // packages whose run or build failed
	unfinished                       []testKey
	unreadable                       []string // lines that are not test2json events
}

// ok reports whether CI may pass.
func (v *verdict) ok() bool {
	return v.passed > 0 && v.failed == 0 && len(v.failedPackages) == 0 && len(v.disallowed) == 0 &&
		len(v.unfinished) == 0 && len(v.unreadable) == 0
}

// judge reads a `go test -json` stream and writes a readable report to w:
// every failure with its output, every skip with its reason, the per-package
// ok/FAIL lines, and a closing count. A test that fails, a package that does
// not build or fails outside any test, a skip whose test name is on no line
// of allow, a test that starts and never ends, and a line that is not JSON
// all make the verdict not ok; so does a stream in which no test passed,
// which is not the output of a real run.
//
// Lines of output that match show (when not nil) are printed together
// before the count, and the count is preceded by each failed test's
// first messages in brief, so that the report's last lines say what
// failed even when only its tail is seen.
func judge(r io.Reader, allow []*allowedSkip, show *regexp.Regexp, w io.Writer) (*verdict, error) {
	v := &verdict{}
	output := map[testKey][]string{}
	buildOutput := map[string][]string{}
	running := map[testKey]bool{}
	var order []testKey // tests in the order they started, for unfinished ones
	var summary, shown []string

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			v.unreadable = append(v.unreadable, string(line))
			continue
		}
		k := testKey{e.Package, e.Test}
		switch e.Action {
		case "build-output":
			buildOutput[e.ImportPath] = append(buildOutput[e.ImportPath], e.Output)
		case "build-fail":
			// The package's own "fail" event (with FailedBuild) follows.
		case "run":
			running[k] = true
			order = append(order, k)
		case "output":
			output[k] = append(output[k], e.Output)
			if show != nil && show.MatchString(e.Output) {
				shown = append(shown, e.Output)
			}
			if e.Test == "" && isPackageSummary(e.Output) {
				summary = append(summary, e.Output)
			}
		case "pass", "fail", "skip":
			delete(running, k)
			if e.Test == "" {
				// A package: "skip" means it has no tests, "fail" that
				// it did not build or failed outside any single test.
				if e.Action == "fail" {
					v.failedPackages = append(v.failedPackages, e.Package)
				}
				continue
			}
			switch e.Action {
			case "pass":
				v.passed++
			case "fail":
				v.failed++
				v.failures = append(v.failures, k)
			case "skip":
				v.skipped++
				if a := allowedFor(allow, e.Test); a != nil {
					a.used++
					v.allowed++
					v.allowedSkips = append(v.allowedSkips, k)
				} else {
					v.disallowed = append(v.disallowed, k)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the test log: %w", err)
	}
	for _, k := range order {
		if running[k] {
			v.unfinished = append(v.unfinished, k)
		}
	}

	section := func(title string) { fmt.Fprintf(w, "\n--- %s\n", title) }
	if len(v.unreadable) > 0 {
		section("lines that are not go test -json events")
		for _, l := range v.unreadable {
			fmt.Fprintln(w, l)
		}
	}
	if len(buildOutput) > 0 {
		section("build failures")
		paths := make([]string, 0, len(buildOutput))
		for p := range buildOutput {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		for _, p := range paths {
			fmt.Fprint(w, strings.Join(buildOutput[p], ""))
		}
	}
	for _, k := range v.failures {
		section(fmt.Sprintf("FAIL %s %s", k.pkg, k.test))
		fmt.Fprint(w, strings.Join(output[k], ""))
	}
	for _, pkg := range v.failedPackages {
		// Output outside any test: a panic, a timeout, TestMain, the build.
		if out := output[testKey{pkg, ""}]; len(out) > 0 && !onlySummary(out) {
			section("FAIL " + pkg + " (outside any test)")
			fmt.Fprint(w, strings.Join(out, ""))
		}
	}
	for _, k := range v.unfinished {
		section(fmt.Sprintf("UNFINISHED %s %s (started, never passed, failed or skipped)", k.pkg, k.test))
		fmt.Fprint(w, strings.Join(output[k], ""))
	}
	for _, k := range v.disallowed {
		section(fmt.Sprintf("SKIP NOT ALLOWED %s %s (add it to the allow-list with a reason, or make it run)", k.pkg, k.test))
		fmt.Fprint(w, strings.Join(output[k], ""))
	}
	if len(v.allowedSkips) > 0 {
		section("allowed skips")
		for _, k := range v.allowedSkips {
			a := allowedFor(allow, k.test)
			fmt.Fprintf(w, "%s %s: %s (allow-list line %d: %s)\n", k.pkg, k.test, skipMessage(output[k]), a.line, a.reason)
		}
	}
	for _, a := range allow {
		if a.used == 0 {
			fmt.Fprintf(w, "note: allow-list line %d (%s) matched no skip in this run\n", a.line, a.pattern)
		}
	}
	section("packages")
	fmt.Fprint(w, strings.Join(summary, ""))
	if show != nil {
		section("lines matching " + show.String())
		fmt.Fprint(w, strings.Join(shown, ""))
	}
	if leaves := failedLeaves(v.failures); len(leaves) > 0 {
		section("failures in brief (each failed test's first messages; its whole output is above)")
		for _, k := range leaves {
			fmt.Fprintf(w, "%s %s\n", k.pkg, k.test)
			for _, l := range firstMessages(output[k], briefMessages) {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
	}
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped (%d allowed, %d not allowed)", v.passed, v.failed, v.skipped, v.allowed, len(v.disallowed))
	if n := len(v.failedPackages); n > 0 {
		fmt.Fprintf(w, ", %d packages failed", n)
	}
	fmt.Fprintln(w)
	if v.passed == 0 {
		fmt.Fprintln(w, "no test passed: this is not the log of a test run")
	}
	return v, nil
}

func allowedFor(allow []*allowedSkip, test string) *allowedSkip {
	for _, a := range allow {
		if a.matches(test) {
			return a
		}
	}
	return nil
}

// isPackageSummary recognises the line `go test` prints last for each
// package: "ok  \tpkg\t1.2s", "FAIL\tpkg ...", "?   \tpkg\t[no test files]".
func isPackageSummary(s string) bool {
	return strings.HasPrefix(s, "ok  \t") || strings.HasPrefix(s, "FAIL\t") || strings.HasPrefix(s, "?   \t")
}

func onlySummary(out []string) bool {
	for _, s := range out {
		if !isPackageSummary(s) && s != "FAIL\n" && s != "PASS\n" {
			return false
		}
	}
	return true
}

// skipMessage is what the test gave as its reason to skip: its output
// without the === and --- framing lines.
func skipMessage(out []string) string {
	var msg []string
	for _, s := range out {
		t := strings.TrimSpace(s)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		msg = append(msg, t)
	}
	if len(msg) == 0 {
		return "(no message)"
	}
	return strings.Join(msg, " ")
}

// briefMessages is how many of a failed test's messages the brief shows,
// and briefWidth how much of each.
const (
	briefMessages = 6
	briefWidth    = 300
)

// messageLine matches what t.Log and t.Error print ("    x_test.go:12: …"),
// and the race detector's and the runtime's reports.
var messageLine = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: |WARNING: DATA RACE|race detected|^panic: |test timed out`)

// failedLeaves are the failed tests none of whose subtests failed: where
// the failure was reported.
func failedLeaves(failed []testKey) []testKey {
	var leaves []testKey
	for _, k := range failed {
		leaf := true
		for _, o := range failed {
			if o.pkg == k.pkg && strings.HasPrefix(o.test, k.test+"/") {
				leaf = false
				break
			}
		}
		if leaf {
			leaves = append(leaves, k)
		}
	}
	return leaves
}

// firstMessages returns up to n message lines of out, trimmed and cut to
// briefWidth.
func firstMessages(out []string, n int) []string {
	var msgs []string
	for _, o := range out {
		for _, l := range strings.Split(strings.TrimRight(o, "\n"), "\n") {
			if len(msgs) == n {
				return msgs
			}
			if !messageLine.MatchString(l) {
				continue
			}
			l = strings.TrimSpace(l)
			if len(l) > briefWidth {
				l = l[:briefWidth] + " …"
			}
			msgs = append(msgs, l)
		}
	}
	return msgs
}
