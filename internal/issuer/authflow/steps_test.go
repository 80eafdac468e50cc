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

// source is the package's non-test source, parsed.
type source struct {
	structs map[string]*ast.StructType // the struct types, by name
	methods map[string][]*ast.FuncDecl // the methods, by receiver type
	funcs   []*ast.FuncDecl            // every function and method
}

func parseSource(t *testing.T, dir string) *source {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	src := &source{structs: map[string]*ast.StructType{}, methods: map[string][]*ast.FuncDecl{}}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, dir+"/"+e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.TypeSpec:
				if st, ok := n.Type.(*ast.StructType); ok {
					src.structs[n.Name.Name] = st
				}
			case *ast.FuncDecl:
				src.funcs = append(src.funcs, n)
				if n.Recv != nil && len(n.Recv.List) == 1 {
					if name := typeName(n.Recv.List[0].Type); name != "" {
						src.methods[name] = append(src.methods[name], n)
					}
				}
			}
			return true
		})
	}
	return src
}

// typeName is the name of a package-local type expression (T or *T); ""
// for any other.
func typeName(e ast.Expr) string {
	if star, ok := e.(*ast.StarExpr); ok {
		e = star.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// method returns the method m of type typ, or nil.
func (s *source) method(typ, m string) *ast.FuncDecl {
	for _, d := range s.methods[typ] {
		if d.Name.Name == m {
			return d
		}
	}
	return nil
}

// fieldType returns the type name of field name of struct typ.
func (s *source) fieldType(typ, name string) string {
	st := s.structs[typ]
	if st == nil {
		return ""
	}
	for _, f := range st.Fields.List {
		for _, n := range f.Names {
			if n.Name == name {
				return typeName(f.Type)
			}
		}
	}
	return ""
}

// answers says whether a function type takes an http.ResponseWriter and
// an *http.Request: whether it can answer a request, as a step does.
func answers(ft *ast.FuncType) bool {
	var w, r bool
	for _, p := range ft.Params.List {
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

// stepCalls returns the steps a method of the dispatcher reaches:
// recv.field.method(...) and recv.field.method as a value, as the type of
// the field and the method.
func (s *source) stepCalls(d *ast.FuncDecl, dispatcher string) [][2]string {
	var out [][2]string
	recv := ""
	if len(d.Recv.List[0].Names) == 1 {
		recv = d.Recv.List[0].Names[0].Name
	}
	ast.Inspect(d.Body, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		inner, ok := sel.X.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := inner.X.(*ast.Ident); ok && id.Name == recv {
			if typ := s.fieldType(dispatcher, inner.Sel.Name); typ != "" && s.method(typ, sel.Sel.Name) != nil {
				out = append(out, [2]string{typ, sel.Sel.Name})
			}
		}
		return true
	})
	return out
}

// stepRule checks the rule in the package in dir: the steps are the
// types whose methods serve the flow's routes (Flow.Routes) or that the
// dispatcher (Flow.next) hands a flow to; no step holds, directly or
// through the types it holds, another step, the dispatcher, or a
// function that answers requests other than the dispatcher's (dispatch);
// and no step, nor anything it holds, makes one. So a step reaches the
// next only by handing the flow to next. It returns what breaks the rule.
func stepRule(t *testing.T, dir string) []string {
	t.Helper()
	src := parseSource(t, dir)
	const dispatcher = "Flow"
	next, routes := src.method(dispatcher, "next"), src.method(dispatcher, "Routes")
	if next == nil || routes == nil {
		t.Fatal("no dispatcher (Flow.next) or route table (Flow.Routes) found")
	}
	handlers := src.stepCalls(routes, dispatcher)
	var steps []string
	for _, c := range handlers {
		if !slices.Contains(steps, c[0]) {
			steps = append(steps, c[0])
		}
	}
	dispatched := 0
	for _, c := range src.stepCalls(next, dispatcher) {
		if m := src.method(c[0], c[1]); m != nil && answers(m.Type) {
			dispatched++
			if !slices.Contains(steps, c[0]) {
				steps = append(steps, c[0])
			}
		}
	}
	if len(handlers) < 10 || len(steps) < 5 || dispatched < 3 {
		t.Fatalf("found %d route handlers, %d steps, %d steps the dispatcher sends to: the source walk is broken", len(handlers), len(steps), dispatched)
	}
	var broken []string
	for _, step := range steps {
		// What step holds, transitively, by its fields' types.
		seen := map[string]bool{step: true}
		queue := []string{step}
		for len(queue) > 0 {
			typ := queue[0]
			queue = queue[1:]
			st := src.structs[typ]
			if st == nil {
				continue
			}
			for _, f := range st.Fields.List {
				if ft, ok := f.Type.(*ast.FuncType); ok && answers(ft) {
					broken = append(broken, "step "+step+" holds a function that answers requests (in "+typ+"): only next may")
				}
				held := typeName(f.Type)
				switch {
				case held == "" || seen[held]:
				case held == dispatcher:
					broken = append(broken, "step "+step+" holds the dispatcher (in "+typ+"): it may only call next")
				case slices.Contains(steps, held):
					broken = append(broken, "step "+step+" holds step "+held+" (in "+typ+")")
				default:
					if src.structs[held] != nil {
						seen[held] = true
						queue = append(queue, held)
					}
				}
			}
		}
		// Nothing step holds, nor step itself, makes another step.
		for typ := range seen {
			for _, m := range src.methods[typ] {
				ast.Inspect(m.Body, func(n ast.Node) bool {
					if lit, ok := n.(*ast.CompositeLit); ok {
						if made := typeName(lit.Type); made != typ && (made == dispatcher || slices.Contains(steps, made)) {
							broken = append(broken, "step "+step+" makes "+made+" (in "+typ+"."+m.Name.Name+")")
						}
					}
					return true
				})
			}
		}
	}
	return broken
}

// TestStepsNeverCallOneAnother reads the package's source and proves that
// no step reaches another but by handing the flow to the dispatcher.
func TestStepsNeverCallOneAnother(t *testing.T) {
	t.Parallel()
	for _, b := range stepRule(t, ".") {
		t.Error(b)
	}
}

// TestStepRuleFindsViolations plants steps that reach one another in a
// copy of the package and proves that the rule finds each.
func TestStepRuleFindsViolations(t *testing.T) {
	t.Parallel()
	for name, plant := range map[string]struct{ old, new string }{
		"a step held by another":  {"type passkeyStep struct{ *deps }", "type passkeyStep struct {\n\t*deps\n\tpw *passwordStep\n}"},
		"a step held by a helper": {"type stepForms struct{ *deps }", "type stepForms struct {\n\t*deps\n\tpk *passkeyStep\n}"},
		"the dispatcher held":     {"type passkeyStep struct{ *deps }", "type passkeyStep struct {\n\t*deps\n\tflow *Flow\n}"},
		"a step's function held":  {"type passkeyStep struct{ *deps }", "type passkeyStep struct {\n\t*deps\n\task func(http.ResponseWriter, *http.Request, int)\n}"},
		"a step made":             {"\tnext     dispatch\n}", "\tnext     dispatch\n}\n\nfunc (d *deps) leak() any { return &passwordStep{deps: d} }\n"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			entries, err := os.ReadDir(".")
			if err != nil {
				t.Fatal(err)
			}
			planted := false
			for _, e := range entries {
				if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
					continue
				}
				b, err := os.ReadFile(e.Name())
				if err != nil {
					t.Fatal(err)
				}
				text := string(b)
				if strings.Contains(text, plant.old) {
					text, planted = strings.Replace(text, plant.old, plant.new, 1), true
				}
				if err := os.WriteFile(dir+"/"+e.Name(), []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if !planted {
				t.Fatalf("the source no longer has %q to plant a violation in", plant.old)
			}
			if broken := stepRule(t, dir); len(broken) == 0 {
				t.Errorf("the rule found nothing wrong with %s", name)
			} else {
				t.Log(broken)
			}
		})
	}
}
