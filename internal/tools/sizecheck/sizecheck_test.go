package main

import (
	"bytes"
	"maps"
	"strings"
	"testing"
)

// The expected figures below were counted by hand from the fixtures under
// testdata (each fixture's doc comment states them), not computed by the
// code under test.

func TestMeasureFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pkg     string
		name    string
		lines   int
		methods map[string]int
	}{
		// small.go only: small_test.go is a test file, generated.go carries
		// the DO NOT EDIT mark, excluded.go is behind a build constraint.
		{"./testdata/small", "internal/tools/sizecheck/testdata/small", 12, map[string]int{"T": 2}},
		// Pointer and value receivers, type parameters, methods over two files.
		{"./testdata/generic", "internal/tools/sizecheck/testdata/generic", 22 + 5, map[string]int{"List": 3, "Pair": 2, "Plain": 2}},
		{"./testdata/big", "internal/tools/sizecheck/testdata/big", 35, map[string]int{"Wide": 6, "Narrow": 1}},
		// "Code generated" without "DO NOT EDIT." is hand-written code.
		{"./testdata/almost", "internal/tools/sizecheck/testdata/almost", 8, map[string]int{"A": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			t.Parallel()
			pkgs, err := listPackages([]string{tt.pkg})
			if err != nil {
				t.Fatal(err)
			}
			if len(pkgs) != 1 {
				t.Fatalf("go list found %d packages, want 1", len(pkgs))
			}
			got, err := measure(pkgs[0])
			if err != nil {
				t.Fatal(err)
			}
			if got.name != tt.name {
				t.Errorf("name = %q, want %q", got.name, tt.name)
			}
			if got.lines != tt.lines {
				t.Errorf("lines = %d, want %d", got.lines, tt.lines)
			}
			if !maps.Equal(got.methods, tt.methods) {
				t.Errorf("methods = %v, want %v", got.methods, tt.methods)
			}
		})
	}
}

func TestCountLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want int
	}{
		{"", 0},
		{"\n", 1},
		{"package x\n", 1},
		{"package x", 1},
		{"package x\n\nvar y int", 3},
		{"a\nb\nc\n", 3},
	}
	for _, tt := range tests {
		if got := countLines([]byte(tt.src)); got != tt.want {
			t.Errorf("countLines(%q) = %d, want %d", tt.src, got, tt.want)
		}
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	const prefix = "internal/tools/sizecheck/testdata/"
	tests := []struct {
		name      string
		args      []string
		code      int
		stdout    []string // each must appear, in this order
		stderr    []string // each must appear
		notStderr []string // none may appear
		emptyOut  bool
		emptyErr  bool
	}{
		{
			name:     "within the default limits",
			args:     []string{"./testdata/small", "./testdata/generic", "./testdata/big"},
			code:     0,
			emptyOut: true,
			emptyErr: true,
		},
		{
			name: "a package one line over",
			args: []string{"-max-lines", "34", "./testdata/big", "./testdata/small"},
			code: 1,
			stderr: []string{
				"package " + prefix + "big has 35 non-test lines, above the limit of 34",
				"1 package(s) or type(s) above the size limits",
			},
			notStderr: []string{prefix + "small"},
		},
		{
			name:     "a package exactly at the limit passes",
			args:     []string{"-max-lines", "35", "./testdata/big"},
			code:     0,
			emptyOut: true, emptyErr: true,
		},
		{
			name: "a type one method over",
			args: []string{"-max-methods", "5", "./testdata/big", "./testdata/generic"},
			code: 1,
			stderr: []string{
				"type " + prefix + "big.Wide has 6 methods, above the limit of 5",
				"1 package(s) or type(s) above the size limits",
			},
			notStderr: []string{"Narrow", "List", "Pair", "Plain"},
		},
		{
			name: "every type and package over, named each",
			args: []string{"-max-methods", "1", "-max-lines", "20", "./testdata/generic", "./testdata/small"},
			code: 1,
			stderr: []string{
				"package " + prefix + "generic has 27 non-test lines, above the limit of 20",
				"type " + prefix + "generic.List has 3 methods, above the limit of 1",
				"type " + prefix + "generic.Pair has 2 methods, above the limit of 1",
				"type " + prefix + "generic.Plain has 2 methods, above the limit of 1",
				"type " + prefix + "small.T has 2 methods, above the limit of 1",
				"5 package(s) or type(s) above the size limits",
			},
		},
		{
			name: "report: every package, biggest first, with its largest type",
			args: []string{"-report", "./testdata/small", "./testdata/almost", "./testdata/big", "./testdata/generic"},
			code: 0,
			stdout: []string{
				"  lines methods  package (type with the most methods)\n",
				"     35       6  " + prefix + "big (Wide)\n",
				"     27       3  " + prefix + "generic (List)\n",
				"     12       2  " + prefix + "small (T)\n",
				"      8       1  " + prefix + "almost (A)\n",
				"     82          4 packages\n",
			},
			emptyErr: true,
		},
		{
			name:   "report still fails on a package over the limit",
			args:   []string{"-report", "-max-lines", "30", "./testdata/big"},
			code:   1,
			stdout: []string{"     35       6  " + prefix + "big (Wide)\n"},
			stderr: []string{"package " + prefix + "big has 35 non-test lines, above the limit of 30"},
		},
		{
			name:   "go list fails: a usage error, not a pass",
			args:   []string{"./testdata/nosuchpackage"},
			code:   2,
			stderr: []string{"sizecheck: go list ./testdata/nosuchpackage"},
		},
		{
			name:   "unknown flag",
			args:   []string{"-nosuchflag"},
			code:   2,
			stderr: []string{"usage: sizecheck"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			out := stdout.String()
			rest := out
			for _, want := range tt.stdout {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Errorf("stdout lacks %q (in this order); stdout:\n%s", want, out)
					break
				}
				rest = rest[i+len(want):]
			}
			if tt.emptyOut && out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q; stderr:\n%s", want, stderr.String())
				}
			}
			for _, unwanted := range tt.notStderr {
				if strings.Contains(stderr.String(), unwanted) {
					t.Errorf("stderr names %q; stderr:\n%s", unwanted, stderr.String())
				}
			}
			if tt.emptyErr && stderr.Len() > 0 {
				t.Errorf("stderr = %q, want nothing", stderr.String())
			}
		})
	}
}
