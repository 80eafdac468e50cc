package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"sort"
)

// packageSize is what sizecheck measured of one package.
type packageSize struct {
	name  string
	lines int
	// methods counts the declared methods per receiver base type name.
	methods map[string]int
}

// largestType is the type with the most methods, ties broken by name so the
// report is stable; ok is false when the package declares no method.
func (s packageSize) largestType() (name string, methods int, ok bool) {
	for n, m := range s.methods {
		if m > methods || m == methods && n < name {
			name, methods, ok = n, m, true
		}
	}
	return name, methods, ok
}

// measure counts the lines and methods of a package's non-generated files.
func measure(p listedPackage) (packageSize, error) {
	s := packageSize{name: p.name(), methods: map[string]int{}}
	fset := token.NewFileSet()
	for _, path := range p.files() {
		src, err := os.ReadFile(path)
		if err != nil {
			return s, err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return s, fmt.Errorf("parsing %s: %w", path, err)
		}
		if ast.IsGenerated(f) {
			continue
		}
		s.lines += countLines(src)
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || len(fn.Recv.List) == 0 {
				continue
			}
			if name := receiverBase(fn.Recv.List[0].Type); name != "" {
				s.methods[name]++
			}
		}
	}
	return s, nil
}

// countLines counts lines as wc -l does, plus a last line without a newline.
func countLines(src []byte) int {
	n := bytes.Count(src, []byte("\n"))
	if len(src) > 0 && src[len(src)-1] != '\n' {
		n++
	}
	return n
}

// receiverBase names the type a receiver belongs to: T for T, *T, T[K] and
// *T[K, V], looking through parentheses.
func receiverBase(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.Ident:
			return t.Name
		case *ast.StarExpr:
			e = t.X
		case *ast.ParenExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		default:
			return ""
		}
	}
}

// sortBySize orders packages biggest first, then by name.
func sortBySize(sizes []packageSize) {
	sort.Slice(sizes, func(i, j int) bool {
		if sizes[i].lines != sizes[j].lines {
			return sizes[i].lines > sizes[j].lines
		}
		return sizes[i].name < sizes[j].name
	})
}
