package authflow_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestStepsNeverCallOneAnother reads the package's source: every handler
// of a route (http.HandlerFunc(i.X)) and every step the dispatcher (next)
// sends a login to (a method of its that answers the request) is a step,
// and no step reaches another, directly or through the methods it calls,
// except by handing the flow to next.
func TestStepsNeverCallOneAnother(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]*ast.FuncDecl{} // the methods of *core
	var handlers []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if n.Recv != nil && len(n.Recv.List) == 1 {
					if star, ok := n.Recv.List[0].Type.(*ast.StarExpr); ok {
						if id, ok := star.X.(*ast.Ident); ok && id.Name == "core" {
							methods[n.Name.Name] = n
						}
					}
				}
			case *ast.CallExpr:
				if fn, ok := n.Fun.(*ast.SelectorExpr); ok && fn.Sel.Name == "HandlerFunc" && len(n.Args) == 1 {
					if sel, ok := n.Args[0].(*ast.SelectorExpr); ok {
						if id, ok := sel.X.(*ast.Ident); ok && id.Name == "i" {
							handlers = append(handlers, sel.Sel.Name)
						}
					}
				}
			}
			return true
		})
	}
	// calls lists the methods of *core that m calls (or passes on as
	// values) in its body.
	calls := func(m string) []string {
		var out []string
		d := methods[m]
		if d == nil || d.Body == nil {
			return nil
		}
		ast.Inspect(d.Body, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == d.Recv.List[0].Names[0].Name {
					if _, ok := methods[sel.Sel.Name]; ok && !slices.Contains(out, sel.Sel.Name) {
						out = append(out, sel.Sel.Name)
					}
				}
			}
			return true
		})
		return out
	}
	if methods["next"] == nil {
		t.Fatal("no dispatcher (core.next) found")
	}
	// A step answers the request: it takes the ResponseWriter and the
	// Request. The dispatcher's other calls are helpers (reading factors,
	// rendering a message).
	answers := func(m string) bool {
		var w, r bool
		for _, p := range methods[m].Type.Params.List {
			switch typ := p.Type.(type) {
			case *ast.SelectorExpr:
				w = w || typ.Sel.Name == "ResponseWriter"
			case *ast.StarExpr:
				if sel, ok := typ.X.(*ast.SelectorExpr); ok {
					r = r || sel.Sel.Name == "Request"
				}
			}
		}
		return w && r
	}
	steps := slices.Clone(handlers)
	for _, m := range calls("next") {
		if answers(m) && !slices.Contains(steps, m) {
			steps = append(steps, m)
		}
	}
	if len(handlers) < 10 || len(steps) <= len(handlers) {
		t.Fatalf("found %d route handlers and %d steps: the source walk is broken", len(handlers), len(steps))
	}
	for _, s := range steps {
		seen := map[string]bool{s: true}
		queue := []string{s}
		for len(queue) > 0 {
			m := queue[0]
			queue = queue[1:]
			for _, c := range calls(m) {
				if c == "next" || seen[c] {
					continue
				}
				if slices.Contains(steps, c) {
					t.Errorf("step %s reaches step %s (through %s) without the dispatcher", s, c, m)
					continue
				}
				seen[c] = true
				queue = append(queue, c)
			}
		}
	}
}
