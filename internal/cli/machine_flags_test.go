package cli

import (
	"errors"
	"strings"
	"testing"
)

func TestTokenMachineCredentialFlags(t *testing.T) {
	t.Parallel()
	base := map[string]string{"NSAUTH_CONFIG_DIR": "/cfg"}
	with := func(kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    machineCredentials
		wantErr string
	}{
		{name: "stored login", env: base, want: machineCredentials{Mode: storedLogin}},
		{name: "empty variables count as unset", env: with("NSAUTH_CLIENT_ID", " ", "NSAUTH_CLIENT_SECRET", "", "NSAUTH_ID_TOKEN", ""), want: machineCredentials{Mode: storedLogin}},
		{name: "secret in the environment", env: with("NSAUTH_CLIENT_ID", "ci", "NSAUTH_CLIENT_SECRET", "s"),
			want: machineCredentials{Mode: clientCredentials, ClientID: "ci", SecretEnv: "NSAUTH_CLIENT_SECRET"}},
		{name: "secret file, issuer and scopes", env: with("NSAUTH_CLIENT_ID", "ci", "NSAUTH_CLIENT_SECRET_FILE", "/run/s", "NSAUTH_ISSUER", "https://idp.example"), args: []string{"--scope", "a b"},
			want: machineCredentials{Mode: clientCredentials, ClientID: "ci", SecretFile: "/run/s", SecretFileSetting: "NSAUTH_CLIENT_SECRET_FILE", Issuer: "https://idp.example", Scopes: []string{"a", "b"}}},
		{name: "secret on stdin, --issuer wins", env: with("NSAUTH_CLIENT_ID", "ci", "NSAUTH_ISSUER", "https://env.example"), args: []string{"--client-secret-stdin", "--issuer", "https://flag.example"},
			want: machineCredentials{Mode: clientCredentials, ClientID: "ci", SecretStdin: true, Issuer: "https://flag.example"}},
		{name: "ID token file flag", env: base, args: []string{"--id-token-file", "/tmp/tok"},
			want: machineCredentials{Mode: tokenExchange, SecretFile: "/tmp/tok", SecretFileSetting: "--id-token-file"}},
		{name: "ID token file variable", env: with("NSAUTH_ID_TOKEN_FILE", "/tmp/tok"),
			want: machineCredentials{Mode: tokenExchange, SecretFile: "/tmp/tok", SecretFileSetting: "NSAUTH_ID_TOKEN_FILE"}},
		{name: "ID token variable", env: with("NSAUTH_ID_TOKEN", "eyJ"),
			want: machineCredentials{Mode: tokenExchange, SecretEnv: "NSAUTH_ID_TOKEN"}},
		{name: "client and ID token", env: with("NSAUTH_CLIENT_ID", "ci", "NSAUTH_CLIENT_SECRET", "s"), args: []string{"--id-token-file", "/tmp/tok"},
			wantErr: "both a machine client (NSAUTH_CLIENT_ID, NSAUTH_CLIENT_SECRET) and an ID token to exchange (--id-token-file) are given"},
		{name: "two ID tokens", env: with("NSAUTH_ID_TOKEN", "eyJ"), args: []string{"--id-token-file", "/tmp/tok"},
			wantErr: "--id-token-file, NSAUTH_ID_TOKEN are all ID tokens to exchange; give one"},
		{name: "two secrets", env: with("NSAUTH_CLIENT_ID", "ci", "NSAUTH_CLIENT_SECRET", "s", "NSAUTH_CLIENT_SECRET_FILE", "/run/s"),
			wantErr: "NSAUTH_CLIENT_SECRET, NSAUTH_CLIENT_SECRET_FILE all give the client secret"},
		{name: "client without secret", env: with("NSAUTH_CLIENT_ID", "ci"),
			wantErr: "NSAUTH_CLIENT_ID is set but no client secret is given: set NSAUTH_CLIENT_SECRET or NSAUTH_CLIENT_SECRET_FILE, or pass --client-secret-stdin"},
		{name: "secret without client", env: with("NSAUTH_CLIENT_SECRET", "s"),
			wantErr: "NSAUTH_CLIENT_SECRET gives a client secret but NSAUTH_CLIENT_ID is not set"},
		{name: "scope with a stored login", env: base, args: []string{"--scope", "x"}, wantErr: "--scope and --issuer apply to machine credentials only"},
		{name: "account with machine credentials", env: with("NSAUTH_ID_TOKEN", "eyJ"), args: []string{"--account", "bob"}, wantErr: "--account names a stored login"},
		{name: "bad issuer", env: with("NSAUTH_ID_TOKEN", "eyJ", "NSAUTH_ISSUER", "idp.example"), wantErr: `the issuer URL "idp.example" is not an absolute http(s) URL`},
		{name: "no --client-secret flag", env: with("NSAUTH_CLIENT_ID", "ci"), args: []string{"--client-secret", "s"}, wantErr: "unknown flag: --client-secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := execute(newTokenCommand, tc.env, tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				var ue *usageError
				if !errors.As(err, &ue) && !isCobraUsageError(err) {
					t.Errorf("err = %v is not a usage error", err)
				}
				if got != nil {
					t.Error("run was called despite the usage error")
				}
				return
			}
			if err != nil || got == nil {
				t.Fatalf("err = %v, run called: %v", err, got != nil)
			}
			m := got.Credentials
			if m.Mode != tc.want.Mode || m.ClientID != tc.want.ClientID || m.SecretEnv != tc.want.SecretEnv || m.SecretFile != tc.want.SecretFile ||
				m.SecretFileSetting != tc.want.SecretFileSetting || m.SecretStdin != tc.want.SecretStdin || m.Issuer != tc.want.Issuer ||
				strings.Join(m.Scopes, " ") != strings.Join(tc.want.Scopes, " ") {
				t.Errorf("credentials = %+v, want %+v", *m, tc.want)
			}
		})
	}
}

func TestWhoamiMachineCredentialFlags(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NSAUTH_CONFIG_DIR": "/cfg", "NSAUTH_CLIENT_ID": "ci", "NSAUTH_CLIENT_SECRET_FILE": "/run/s"}
	got, err := execute(newWhoamiCommand, env, nil)
	if err != nil || got.Credentials.Mode != clientCredentials || got.Credentials.SecretFile != "/run/s" {
		t.Fatalf("whoami with a machine client: %v, %+v", err, got)
	}
	if _, err := execute(newWhoamiCommand, env, []string{"--account", "bob"}); err == nil || !strings.Contains(err.Error(), "--account names a stored login") {
		t.Errorf("whoami --account with a machine client: %v", err)
	}
	if _, err := execute(newWhoamiCommand, env, []string{"--id-token-file", "/tmp/t"}); err == nil || !strings.Contains(err.Error(), "both a machine client") {
		t.Errorf("whoami with a machine client and an ID token: %v", err)
	}
}

// TestMachineCredentialsNeedNoConfigDir: with machine credentials nothing
// is stored, so the configuration directory is not looked for (a CI
// container may have no $HOME).
func TestMachineCredentialsNeedNoConfigDir(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NSAUTH_ID_TOKEN_FILE": "/run/ci/token"}
	got, err := execute(newTokenCommand, env, nil)
	if err != nil || got.client.ConfigDir != "" || got.Credentials.Mode != tokenExchange {
		t.Fatalf("token with an ID token file: %v; config dir %q", err, got.client.ConfigDir)
	}
	got, err = execute(newTokenCommand, map[string]string{}, nil)
	if err == nil && got.client.ConfigDir == "" {
		t.Error("token with a stored login resolved no configuration directory")
	}
}
