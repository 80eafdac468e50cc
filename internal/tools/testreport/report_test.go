package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// Lines recorded from `go test -count=1 -json ./...` (Go 1.26) on a module
// with one passing, one failing and two skipping tests, a package that does
// not compile and one without tests; testdata/recorded.jsonl is the whole
// run.
const (
	passLines = `{"Action":"start","Package":"example.com/rec/a"}
{"Action":"run","Package":"example.com/rec/a","Test":"TestPass"}
{"Action":"output","Package":"example.com/rec/a","Test":"TestPass","Output":"=== RUN   TestPass\n"}
{"Action":"output","Package":"example.com/rec/a","Test":"TestPass","Output":"--- PASS: TestPass (0.00s)\n"}
{"Action":"pass","Package":"example.com/rec/a","Test":"TestPass","Elapsed":0}
{"Action":"output","Package":"example.com/rec/a","Output":"PASS\n"}
{"Action":"output","Package":"example.com/rec/a","Output":"ok  \texample.com/rec/a\t0.024s\n"}
{"Action":"pass","Package":"example.com/rec/a","Elapsed":0.026}
`
	failLines = `{"Action":"start","Package":"example.com/rec/a"}
{"Action":"run","Package":"example.com/rec/a","Test":"TestFail"}
{"Action":"output","Package":"example.com/rec/a","Test":"TestFail","Output":"=== RUN   TestFail\n"}
{"Action":"output","Package":"example.com/rec/a","Test":"TestFail","Output":"    a_test.go:6: context line\n"}
{"Action":"output","Package":"example.com/rec/a","Test":"TestFail","Output":"    a_test.go:6: boom\n"}
{"Action":"output","Package":"example.com/rec/a","Test":"TestFail","Output":"--- FAIL: TestFail (0.00s)\n"}
{"Action":"fail","Package":"example.com/rec/a","Test":"TestFail","Elapsed":0}
{"Action":"output","Package":"example.com/rec/a","Output":"FAIL\n"}
{"Action":"output","Package":"example.com/rec/a","Output":"FAIL\texample.com/rec/a\t0.024s\n"}
{"Action":"fail","Package":"example.com/rec/a","Elapsed":0.026}
`
	skipLines = `{"Action":"start","Package":"example.com/rec/a"}
{"Action":"run","Package":"example.com/rec/a","Test":"TestSkips"}
{"Action":"output","Package":"example.com/rec/a","Test":"TestSkips","Output":"=== RUN   TestSkips\n"}
{"Action":"run","Package":"example.com/rec/a","Test":"TestSkips/allowed_case"}
{"Action":"output","Package":"example.com/rec/a","Test":"TestSkips/allowed_case","Output":"=== RUN   TestSkips/allowed_case\n"}
{"Action":"output","Package":"example.com/rec/a","Test":"TestSkips/allowed_case","Output":"    a_test.go:8: needs a pty\n"}
{"Action":"output","Package":"example.com/rec/a","Test":"TestSkips/allowed_case","Output":"--- SKIP: TestSkips/allowed_case (0.00s)\n"}
{"Action":"skip","Package":"example.com/rec/a","Test":"TestSkips/allowed_case","Elapsed":0}
{"Action":"output","Package":"example.com/rec/a","Test":"TestSkips","Output":"--- PASS: TestSkips (0.00s)\n"}
{"Action":"pass","Package":"example.com/rec/a","Test":"TestSkips","Elapsed":0}
{"Action":"output","Package":"example.com/rec/a","Output":"ok  \texample.com/rec/a\t0.024s\n"}
{"Action":"pass","Package":"example.com/rec/a","Elapsed":0.026}
`
	otherSkipLines = `{"Action":"start","Package":"example.com/rec/d"}
{"Action":"run","Package":"example.com/rec/d","Test":"TestSkips/other"}
{"Action":"output","Package":"example.com/rec/d","Test":"TestSkips/other","Output":"    a_test.go:9: no reason\n"}
{"Action":"skip","Package":"example.com/rec/d","Test":"TestSkips/other","Elapsed":0}
{"Action":"output","Package":"example.com/rec/d","Output":"ok  \texample.com/rec/d\t0.024s\n"}
{"Action":"pass","Package":"example.com/rec/d","Elapsed":0.026}
`
	buildFailLines = `{"ImportPath":"example.com/rec/b [example.com/rec/b.test]","Action":"build-output","Output":"# example.com/rec/b [example.com/rec/b.test]\n"}
{"ImportPath":"example.com/rec/b [example.com/rec/b.test]","Action":"build-output","Output":"b/b_test.go:5:33: undefined: undefined\n"}
{"ImportPath":"example.com/rec/b [example.com/rec/b.test]","Action":"build-fail"}
{"Action":"start","Package":"example.com/rec/b"}
{"Action":"output","Package":"example.com/rec/b","Output":"FAIL\texample.com/rec/b [build failed]\n"}
{"Action":"fail","Package":"example.com/rec/b","Elapsed":0,"FailedBuild":"example.com/rec/b [example.com/rec/b.test]"}
`
	noTestsLines = `{"Action":"start","Package":"example.com/rec/c"}
{"Action":"output","Package":"example.com/rec/c","Output":"?   \texample.com/rec/c\t[no test files]\n"}
{"Action":"skip","Package":"example.com/rec/c","Elapsed":0}
`
	// A test binary that died (a timeout, os.Exit) mid-test.
	unfinishedLines = `{"Action":"start","Package":"example.com/rec/e"}
{"Action":"run","Package":"example.com/rec/e","Test":"TestHang"}
{"Action":"output","Package":"example.com/rec/e","Test":"TestHang","Output":"=== RUN   TestHang\n"}
`
)

const allowList = `# tests that may skip in CI
TestSkips/allowed_.* # needs a pseudo-terminal, which this CI has not
`

func TestJudge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		log    string
		wantOK bool
		want   []string // in the report
	}{
		{"a pass", passLines, true, []string{"ok  \texample.com/rec/a", "1 passed, 0 failed, 0 skipped"}},
		{"a package without tests, alone", noTestsLines, false, []string{"[no test files]", "0 passed, 0 failed, 0 skipped", "no test passed"}},
		{"nothing at all", "", false, []string{"no test passed"}},
		{"a fail", failLines, false, []string{"--- FAIL example.com/rec/a TestFail", "a_test.go:6: boom", "FAIL\texample.com/rec/a", "0 passed, 1 failed"}},
		{"an allowed skip", skipLines, true, []string{"TestSkips/allowed_case: a_test.go:8: needs a pty (allow-list line 2: needs a pseudo-terminal", "1 passed, 0 failed, 1 skipped (1 allowed, 0 not allowed)"}},
		{"a skip not on the list", otherSkipLines, false, []string{"SKIP NOT ALLOWED example.com/rec/d TestSkips/other", "no reason", "1 skipped (0 allowed, 1 not allowed)"}},
		{"a package that does not build", buildFailLines, false, []string{"undefined: undefined", "FAIL\texample.com/rec/b [build failed]", "1 packages failed"}},
		{"a test that never ended", unfinishedLines, false, []string{"UNFINISHED example.com/rec/e TestHang"}},
		{"a line that is not JSON", "go: downloading example.com/x v1.0.0\n" + passLines, false, []string{"go: downloading"}},
		{"everything together", passLines + skipLines + noTestsLines, true, []string{"2 passed, 0 failed, 1 skipped"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			allow, err := parseAllowList(strings.NewReader(allowList))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			v, err := judge(strings.NewReader(tc.log), allow, nil, &out)
			if err != nil {
				t.Fatal(err)
			}
			if v.ok() != tc.wantOK {
				t.Errorf("ok = %v, want %v; report:\n%s", v.ok(), tc.wantOK, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// A parallel subtest that failed under its parent, with a long log after
// its error, and a tally line that -show picks out.
const subtestFailLines = `{"Action":"start","Package":"example.com/rec/f"}
{"Action":"run","Package":"example.com/rec/f","Test":"TestParent"}
{"Action":"run","Package":"example.com/rec/f","Test":"TestParent/leaf"}
{"Action":"output","Package":"example.com/rec/f","Test":"TestParent/leaf","Output":"=== RUN   TestParent/leaf\n"}
{"Action":"output","Package":"example.com/rec/f","Test":"TestParent/leaf","Output":"    f_test.go:20: connectors add: exit 1\n"}
{"Action":"output","Package":"example.com/rec/f","Test":"TestParent/leaf","Output":"        Error: the real reason\n"}
{"Action":"output","Package":"example.com/rec/f","Test":"TestParent/leaf","Output":"    f_test.go:30: checks: 3 passed of 4\n"}
{"Action":"output","Package":"example.com/rec/f","Test":"TestParent/leaf","Output":"    f_test.go:40: replica 0's log:\n        {\"msg\":\"one\"}\n        {\"msg\":\"two\"}\n"}
{"Action":"output","Package":"example.com/rec/f","Test":"TestParent/leaf","Output":"--- FAIL: TestParent/leaf (0.00s)\n"}
{"Action":"fail","Package":"example.com/rec/f","Test":"TestParent/leaf","Elapsed":0}
{"Action":"output","Package":"example.com/rec/f","Test":"TestParent","Output":"--- FAIL: TestParent (0.00s)\n"}
{"Action":"fail","Package":"example.com/rec/f","Test":"TestParent","Elapsed":0}
{"Action":"output","Package":"example.com/rec/f","Output":"FAIL\texample.com/rec/f\t0.024s\n"}
{"Action":"fail","Package":"example.com/rec/f","Elapsed":0.026}
`

// TestBrief: the report ends with each failed leaf test's first messages
// (not its parents', not its log's continuation lines), after the lines
// -show asked for.
func TestBrief(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	v, err := judge(strings.NewReader(passLines+subtestFailLines), nil, regexp.MustCompile(`checks: `), &out)
	if err != nil {
		t.Fatal(err)
	}
	if v.ok() {
		t.Errorf("a failed run judged ok:\n%s", out.String())
	}
	report := out.String()
	_, brief, found := strings.Cut(report, "--- failures in brief")
	if !found {
		t.Fatalf("no brief:\n%s", report)
	}
	want := "example.com/rec/f TestParent/leaf\n  f_test.go:20: connectors add: exit 1\n  f_test.go:30: checks: 3 passed of 4\n  f_test.go:40: replica 0's log:\n\n1 passed, 2 failed"
	if !strings.Contains(brief, want) {
		t.Errorf("brief is not\n%s\nreport:\n%s", want, report)
	}
	if strings.Contains(brief, "TestParent\n") {
		t.Errorf("the brief names the parent, which only failed because its subtest did:\n%s", brief)
	}
	if !strings.Contains(report, "--- lines matching checks: \n    f_test.go:30: checks: 3 passed of 4\n") {
		t.Errorf("-show's lines missing:\n%s", report)
	}
	long := strings.Repeat("x", 2*briefWidth)
	if got := firstMessages([]string{"    a_test.go:1: " + long + "\n"}, 1); len(got) != 1 || len(got[0]) > briefWidth+len(" …") {
		t.Errorf("a long message is not cut: %d bytes", len(got[0]))
	}
}

// TestRecordedRun judges a whole recorded run: its failure, build failure
// and unlisted skip each fail it, and the exit code says so.
func TestRecordedRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	allowPath := dir + "/allowed-skips.txt"
	if err := os.WriteFile(allowPath, []byte(allowList), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"-allow", allowPath, "testdata/recorded.jsonl"}, strings.NewReader(""), &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit code %d, want 1; stderr %s", code, stderr.String())
	}
	if want := "2 passed, 1 failed, 2 skipped (1 allowed, 1 not allowed), 2 packages failed"; !strings.Contains(stdout.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, stdout.String())
	}
	// The same stream, read from stdin, with the two failing packages and
	// the unlisted skip left out, passes.
	var kept []string
	for _, l := range strings.SplitAfter(string(mustRead(t, "testdata/recorded.jsonl")), "\n") {
		if !strings.Contains(l, "rec/b") && !strings.Contains(l, "TestFail") && !strings.Contains(l, "Skips/other") &&
			!strings.Contains(l, `"Package":"example.com/rec/a","Output"`) && !strings.Contains(l, `"fail","Package":"example.com/rec/a","Elapsed"`) {
			kept = append(kept, l)
		}
	}
	stdout.Reset()
	if code := run([]string{"-allow", allowPath}, strings.NewReader(strings.Join(kept, "")), &stdout, &stderr); code != 0 {
		t.Errorf("exit code %d, want 0; report:\n%s", code, stdout.String())
	}
}

func TestAllowList(t *testing.T) {
	t.Parallel()
	allow, err := parseAllowList(strings.NewReader("\n# only a comment\nTestA/case#01 # exact name with a hash\nTestB/.* # every subtest of TestB\nTestC(x # not a regexp, so only this exact name\n"))
	if err != nil {
		t.Fatal(err)
	}
	for test, want := range map[string]bool{
		"TestA/case#01": true, "TestA/case#02": false, "TestA": false,
		"TestB/x": true, "TestB": false, "TestBB/x": false, "XTestB/x": false,
		"TestC(x": true, "TestC": false,
	} {
		if got := allowedFor(allow, test) != nil; got != want {
			t.Errorf("%s allowed = %v, want %v", test, got, want)
		}
	}
	for _, bad := range []string{"TestA\n", "TestA #\n", "TestA# no space\n"} {
		if _, err := parseAllowList(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: accepted a pattern without a reason", bad)
		}
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"a", "b"}, strings.NewReader(""), &stdout, &stderr); code != 2 {
		t.Errorf("two logs: exit code %d, want 2", code)
	}
	if code := run([]string{"-allow", t.TempDir() + "/missing"}, strings.NewReader(""), &stdout, &stderr); code != 2 {
		t.Errorf("missing allow-list: exit code %d, want 2", code)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
