package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/seal"
)

func runKeys(env map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	a := &cli.App{In: strings.NewReader(""), Out: &out, ErrOut: &errOut, Getenv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}
	code = cli.Run(context.Background(), a, append([]string{"keys"}, args...), servercmd.Commands...)
	return code, out.String(), errOut.String()
}

func TestKeysCommand(t *testing.T) {
	t.Parallel()
	code, out, _ := runKeys(nil, "generate-secret-key")
	if code != 0 {
		t.Fatalf("generate-secret-key: exit %d", code)
	}
	if _, err := seal.ParseKey(out); err != nil || !strings.HasSuffix(out, "=\n") || len(out) != 45 {
		t.Fatalf("generate-secret-key printed %d bytes that are not 32 bytes of padded base64 and a newline (%v)", len(out), err)
	}
	if _, again, _ := runKeys(nil, "generate-secret-key"); again == out {
		t.Fatal("two generated keys are equal")
	}

	dir := t.TempDir()
	key := seal.GenerateKey()
	for _, tc := range []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     string
	}{
		{"no new key", map[string]string{"NSAUTH_DATA_DIR": dir}, []string{"rotate-secret-key"}, 1, "no new secret key: set NSAUTH_SECRET_KEY or NSAUTH_SECRET_KEY_FILE"},
		{"no data", map[string]string{"NSAUTH_DATA_DIR": filepath.Join(dir, "none"), "NSAUTH_SECRET_KEY": key}, []string{"rotate-secret-key"}, 1, "no nsauth data in"},
		{"a bad key", map[string]string{"NSAUTH_DATA_DIR": dir, "NSAUTH_SECRET_KEY": "c2hvcnQ="}, []string{"rotate-secret-key"}, 1, "NSAUTH_SECRET_KEY: decodes to 5 bytes, not 32"},
		{"a bad second key", map[string]string{"NSAUTH_DATA_DIR": dir, "NSAUTH_SECRET_KEY": key + ",c2hvcnQ="}, []string{"rotate-secret-key"}, 1, "NSAUTH_SECRET_KEY: key 2 of 2 decodes to 5 bytes, not 32"},
		{"PostgreSQL without a key", map[string]string{"NSAUTH_DATABASE_URL": "postgres://nsauth@127.0.0.1:1/none"}, []string{"rotate-secret-key"}, 1,
			`no new secret key: set NSAUTH_SECRET_KEY or NSAUTH_SECRET_KEY_FILE to the new key followed by the one in use, newest first (NSAUTH_SECRET_KEY="<new key>,<current key>"`},
		{"a missing old key file", map[string]string{"NSAUTH_DATA_DIR": dir, "NSAUTH_SECRET_KEY": key}, []string{"rotate-secret-key", "--old-secret-key-file", filepath.Join(dir, "old.key")}, 1, "NSAUTH_OLD_SECRET_KEY_FILE (--old-secret-key-file): reading the key file"},
		{"an argument", nil, []string{"rotate-secret-key", "extra"}, 2, "takes no arguments"},
		{"a key on the command line", nil, []string{"rotate-secret-key", "--secret-key", key}, 2, "unknown flag: --secret-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runKeys(tc.env, tc.args...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.wantCode, tc.want)
			}
			if strings.Contains(out+errOut, key) {
				t.Fatal("the output shows the key")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "secret.key")); err == nil {
		t.Fatal("a failed rotation made a key file")
	}
}
