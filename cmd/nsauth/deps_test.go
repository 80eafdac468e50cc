package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoTestCodeInTheBinary: the shipped binary links no test code. Fakes
// live in _test.go files and in internal/*test packages, which only tests
// may import; `nsauth bench` runs against the built-in provider.
func TestNoTestCodeInTheBinary(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the binary's packages: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/nsauth/nsauth/"
	var bad []string
	for _, pkg := range strings.Fields(string(out)) {
		switch {
		case pkg == "testing", strings.HasPrefix(pkg, "testing/"), pkg == "net/http/httptest":
			bad = append(bad, pkg)
		case strings.HasPrefix(pkg, module+"internal/") && strings.HasSuffix(pkg, "test"):
			bad = append(bad, pkg)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("cmd/nsauth links test code: %s", strings.Join(bad, ", "))
	}
}
