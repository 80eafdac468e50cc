package config_test

import (
	"strings"
	"testing"
)

func TestRequirePKCE(t *testing.T) {
	t.Parallel()
	external := func(kv ...string) map[string]string {
		m := map[string]string{"AUTH_BASEURL": "https://a.example", "AUTH_AUDIENCE": "x", "AUTH_CLI_CLIENT_ID": "c"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	builtin := func(kv ...string) map[string]string {
		m := map[string]string{"HOME": "/home/u"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		want    bool
		wantErr string // a substring of the error; empty when Load must succeed
	}{
		{"off by default, external provider", external(), nil, false, ""},
		{"off by default, built-in provider", builtin(), nil, false, ""},
		{"variable true", external("NSAUTH_REQUIRE_PKCE", "true"), nil, true, ""},
		{"variable false", external("NSAUTH_REQUIRE_PKCE", "false"), nil, false, ""},
		{"variable 1", external("NSAUTH_REQUIRE_PKCE", "1"), nil, true, ""},
		{"variable true, built-in provider", builtin("NSAUTH_REQUIRE_PKCE", "true"), nil, true, ""},
		{"flag alone", external(), []string{"--require-pkce"}, true, ""},
		{"flag true", external(), []string{"--require-pkce=true"}, true, ""},
		{"flag false beats the variable", external("NSAUTH_REQUIRE_PKCE", "true"), []string{"--require-pkce=false"}, false, ""},
		{"flag alone beats the variable", external("NSAUTH_REQUIRE_PKCE", "false"), []string{"--require-pkce"}, true, ""},
		{"bad variable", external("NSAUTH_REQUIRE_PKCE", "always"), nil, false, `NSAUTH_REQUIRE_PKCE (--require-pkce): "always" is not true or false`},
		{"bad variable, built-in provider", builtin("NSAUTH_REQUIRE_PKCE", "yes please"), nil, false, `NSAUTH_REQUIRE_PKCE (--require-pkce): "yes please" is not true or false`},
		{"bad flag", external(), []string{"--require-pkce=sometimes"}, false, `NSAUTH_REQUIRE_PKCE (--require-pkce): "sometimes" is not true or false`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(t, tc.env, tc.args...)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Load accepted the configuration: RequirePKCE=%v", cfg.Auth.RequirePKCE)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Auth.RequirePKCE != tc.want {
				t.Fatalf("RequirePKCE = %v, want %v", cfg.Auth.RequirePKCE, tc.want)
			}
		})
	}
}
