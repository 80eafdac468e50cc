package main

import (
	"os/exec"
	"strings"
	"testing"
)

// deps lists the packages that pkg's binary links.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the binary's packages: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestNoTestCodeInTheBinaries: the shipped binaries link no test code.
// Fakes live in _test.go files and in internal/*test packages, which only
// tests may import; `nsauth bench` runs against the built-in provider.
func TestNoTestCodeInTheBinaries(t *testing.T) {
	t.Parallel()
	const module = "github.com/nsauth/nsauth/"
	for _, bin := range []string{module + "cmd/nsauth", module + "cmd/nsauth-server"} {
		t.Run(bin, func(t *testing.T) {
			t.Parallel()
			var bad []string
			for _, pkg := range deps(t, bin) {
				switch {
				case pkg == "testing", strings.HasPrefix(pkg, "testing/"), pkg == "net/http/httptest":
					bad = append(bad, pkg)
				case strings.HasPrefix(pkg, module+"internal/") && strings.HasSuffix(pkg, "test"):
					bad = append(bad, pkg)
				}
			}
			if len(bad) > 0 {
				t.Fatalf("%s links test code: %s", bin, strings.Join(bad, ", "))
			}
		})
	}
}

// TestTheClientLinksNoServer: nsauth, the terminal client, links none of
// the server. Package initialisation of the server's dependencies (the
// provider, the SQL drivers, metrics, gRPC reflection's descriptors) would
// take longer than all of `nsauth token`; nsauth runs nsauth-server for the
// server's commands instead.
func TestTheClientLinksNoServer(t *testing.T) {
	t.Parallel()
	server := []string{
		"github.com/nsauth/nsauth/internal/app",
		"github.com/nsauth/nsauth/internal/cli/servercmd",
		"github.com/nsauth/nsauth/internal/cli/servercmd/appscmd",
		"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd",
		"github.com/nsauth/nsauth/internal/issuer",
		"github.com/nsauth/nsauth/internal/store",
		"github.com/nsauth/nsauth/internal/server",
		"github.com/nsauth/nsauth/internal/bench",
		"github.com/zitadel/oidc/v3/pkg/op",
		"modernc.org/sqlite",
		"github.com/jackc/pgx/v5",
		"github.com/prometheus/client_golang/prometheus",
		"connectrpc.com/grpcreflect",
		"google.golang.org/protobuf/reflect/protodesc",
	}
	linked := map[string]bool{}
	for _, pkg := range deps(t, "github.com/nsauth/nsauth/cmd/nsauth") {
		linked[pkg] = true
	}
	for _, pkg := range server {
		if linked[pkg] {
			t.Errorf("cmd/nsauth links %s", pkg)
		}
	}
	if !linked["github.com/nsauth/nsauth/internal/cli"] {
		t.Error("cmd/nsauth does not link internal/cli: the list above is stale")
	}
}

// TestPublicPackagesImportNoInternal: what pkg/ offers other modules can
// be built by them, so it imports nothing from internal/.
func TestPublicPackagesImportNoInternal(t *testing.T) {
	t.Parallel()
	const internal = "github.com/nsauth/nsauth/internal/"
	var bad []string
	for _, pkg := range deps(t, "github.com/nsauth/nsauth/pkg/...") {
		if strings.HasPrefix(pkg, internal) {
			bad = append(bad, pkg)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("pkg/... imports %s", strings.Join(bad, ", "))
	}
}
