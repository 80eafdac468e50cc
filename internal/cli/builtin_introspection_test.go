package cli_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
)

// TestBuiltinIntrospectionRevokesAtOnce: with NSAUTH_TOKEN_MODE=introspection
// the built-in provider is asked about every token, so disabling a user
// makes CheckToken refuse their token at once, not when it expires.
func TestBuiltinIntrospectionRevokesAtOnce(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{
		"NSAUTH_ADMIN_PASSWORD":          biAdminPassword,
		"NSAUTH_DATA_DIR":                dataDir,
		"NSAUTH_TOKEN_MODE":              "introspection",
		"NSAUTH_INTROSPECTION_CACHE_TTL": "0s",
	}
	s := startBuiltinServe(t, env, time.Now)
	s.waitReady(t)
	tok := s.login(t)
	ct, err := s.checkToken(tok.GetAccessToken())
	if err != nil {
		t.Fatalf("CheckToken through introspection: %v", err)
	}
	if ct.GetSubject() == "" {
		t.Error("introspection gave no subject")
	}

	var errOut strings.Builder
	app := &cli.App{In: strings.NewReader(""), Out: &strings.Builder{}, ErrOut: &errOut, Getenv: mapEnv(map[string]string{"NSAUTH_DATA_DIR": dataDir}), Now: time.Now}
	if code := cli.Run(context.Background(), app, []string{"users", "disable", "admin"}, servercmd.Commands...); code != 0 {
		t.Fatalf("users disable: exit %d\n%s", code, errOut.String())
	}
	_, err = s.checkToken(tok.GetAccessToken())
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("CheckToken after the user was disabled: %v, want Unauthenticated", err)
	}
}
