package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/nsauth/nsauth/internal/config"
)

const committed = "../../../docs/configuration.md"

// TestCommittedDocIsFresh: docs/configuration.md is what the generator
// writes from today's table.
func TestCommittedDocIsFresh(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	render(&got, config.Settings())
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("docs/configuration.md is stale: run `go generate ./internal/config` and commit the result")
	}
}

// TestWritesTheFileNamed: -o writes the reference to a file, which
// go generate relies on; without it, the reference goes to standard output.
func TestWritesTheFileNamed(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "configuration.md")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-o", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	written, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if code := run(nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !bytes.Equal(written, stdout.Bytes()) || len(written) == 0 {
		t.Errorf("-o wrote %d bytes, standard output got %d: want the same reference", len(written), stdout.Len())
	}
	if !bytes.Contains(written, []byte("| `NSAUTH_ACCESS_TOKEN_TTL` | `--access-token-ttl` | `15m` |")) {
		t.Errorf("the reference has no row for NSAUTH_ACCESS_TOKEN_TTL with its flag and default 15m")
	}
	if code := run([]string{"-no-such-flag"}, &stdout, &stderr); code != 2 {
		t.Errorf("an unknown flag: exit %d, want 2", code)
	}
}
