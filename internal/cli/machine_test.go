package cli_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

const (
	machineClientID = "ci-deployer"
	machineSecret   = "machine-secret-0c4f2e9a71"
)

// closedURL is a loopback URL nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// TestTokenWithMachineCredentials runs `nsauth token` as a program: a
// machine client or a CI job's ID token, against the fake provider over
// HTTP, with no login stored.
func TestTokenWithMachineCredentials(t *testing.T) {
	t.Parallel()
	type setup struct {
		p         *oidctest.Provider
		dir       string
		env       map[string]string
		args      []string
		stdin     string
		secrets   []string // must appear nowhere in the output
		wantSub   string   // the token's subject, on success
		wantErr   []string // on failure, in standard error
		wantCode  int
		wantCalls map[string]int // token requests by grant type
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, s *setup)
	}{
		{"client secret in the environment, issuer given", func(t *testing.T, s *setup) {
			s.env["NSAUTH_API_URL"] = closedURL(t) // the API server is not needed
			s.env["NSAUTH_ISSUER"] = s.p.Issuer
			s.env["NSAUTH_CLIENT_ID"], s.env["NSAUTH_CLIENT_SECRET"] = machineClientID, machineSecret
			s.wantSub = machineClientID
		}},
		{"client secret file, issuer from the API URL's origin", func(t *testing.T, s *setup) {
			path := filepath.Join(s.dir, "secret")
			if err := os.WriteFile(path, []byte(machineSecret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			s.env["NSAUTH_API_URL"] = s.p.Issuer + "/api"
			s.env["NSAUTH_CLIENT_ID"], s.env["NSAUTH_CLIENT_SECRET_FILE"] = machineClientID, path
			s.wantSub = machineClientID
		}},
		{"client secret on stdin, API URL localhost and issuer 127.0.0.1", func(t *testing.T, s *setup) {
			s.env["NSAUTH_API_URL"] = strings.Replace(s.p.Issuer, "127.0.0.1", "localhost", 1)
			s.env["NSAUTH_CLIENT_ID"] = machineClientID
			s.args, s.stdin = []string{"--client-secret-stdin", "--scope", "deploy"}, machineSecret+"\n"
			s.wantSub = machineClientID
		}},
		{"ID token file", func(t *testing.T, s *setup) {
			tok := s.p.MintSubjectToken(machineClientID, 5*time.Minute)
			path := filepath.Join(s.dir, "id-token")
			if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
				t.Fatal(err)
			}
			s.env["NSAUTH_API_URL"] = s.p.Issuer
			s.args, s.secrets = []string{"--id-token-file", path}, []string{tok}
			s.wantSub, s.wantCalls = machineClientID, map[string]int{oidctest.TokenExchangeGrantType: 1}
		}},
		{"ID token in the environment", func(t *testing.T, s *setup) {
			tok := s.p.MintSubjectToken(machineClientID, 5*time.Minute)
			s.env["NSAUTH_API_URL"] = s.p.Issuer
			s.env["NSAUTH_ID_TOKEN"], s.secrets = tok, []string{tok}
			s.wantSub, s.wantCalls = machineClientID, map[string]int{oidctest.TokenExchangeGrantType: 1}
		}},
		{"wrong secret", func(t *testing.T, s *setup) {
			s.env["NSAUTH_API_URL"] = s.p.Issuer
			s.env["NSAUTH_CLIENT_ID"], s.env["NSAUTH_CLIENT_SECRET"] = machineClientID, "wrong-"+machineSecret
			s.secrets = []string{"wrong-" + machineSecret}
			s.wantErr = []string{"the identity provider refused the machine client's credentials: the client ID (NSAUTH_CLIENT_ID=ci-deployer) or the secret (NSAUTH_CLIENT_SECRET) is wrong"}
			s.wantCalls = nil
		}},
		{"expired ID token", func(t *testing.T, s *setup) {
			tok := s.p.MintSubjectToken(machineClientID, -time.Minute)
			path := filepath.Join(s.dir, "id-token")
			if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
				t.Fatal(err)
			}
			s.env["NSAUTH_API_URL"] = s.p.Issuer
			s.env["NSAUTH_ID_TOKEN_FILE"], s.secrets = path, []string{tok}
			s.wantErr = []string{"the identity provider refused the ID token from NSAUTH_ID_TOKEN_FILE (" + path + "): it has expired, or it is trusted for no machine client; get a fresh token from your CI system", "invalid_grant"}
			s.wantCalls = map[string]int{oidctest.TokenExchangeGrantType: 1}
		}},
		{"no discovery document at the API server", func(t *testing.T, s *setup) {
			api := closedURL(t)
			s.env["NSAUTH_API_URL"] = api
			s.env["NSAUTH_CLIENT_ID"], s.env["NSAUTH_CLIENT_SECRET"] = machineClientID, machineSecret
			s.wantErr = []string{"finding the token endpoint from the API server " + api, "connection refused", "set NSAUTH_ISSUER to your identity provider's issuer URL"}
			s.wantCalls = map[string]int{"client_credentials": 0}
		}},
		{"the issuer's document names another issuer", func(t *testing.T, s *setup) {
			s.p.SetDiscoveredIssuer("https://idp.example")
			s.env["NSAUTH_ISSUER"] = s.p.Issuer
			s.env["NSAUTH_CLIENT_ID"], s.env["NSAUTH_CLIENT_SECRET"] = machineClientID, machineSecret
			s.wantErr = []string{`names the issuer "https://idp.example"`, "check NSAUTH_ISSUER"}
			s.wantCalls = map[string]int{"client_credentials": 0}
		}},
		{"token endpoint unreachable", func(t *testing.T, s *setup) {
			s.p.SetFailure(oidctest.PathToken, oidctest.Drop)
			s.env["NSAUTH_ISSUER"] = s.p.Issuer
			s.env["NSAUTH_CLIENT_ID"], s.env["NSAUTH_CLIENT_SECRET"] = machineClientID, machineSecret
			s.wantErr = []string{`getting a token for client "ci-deployer": Post "` + s.p.Issuer + `/token"`}
			s.wantCalls = nil
		}},
		{"token endpoint fails", func(t *testing.T, s *setup) {
			s.p.SetFailure(oidctest.PathToken, oidctest.Status500)
			s.env["NSAUTH_ISSUER"] = s.p.Issuer
			s.env["NSAUTH_CLIENT_ID"], s.env["NSAUTH_CLIENT_SECRET"] = machineClientID, machineSecret
			s.wantErr = []string{"the token endpoint refused the request (HTTP 500)"}
			s.wantCalls = nil
		}},
		{"rate limited", func(t *testing.T, s *setup) {
			s.p.FailNextGrant("client_credentials", http.StatusTooManyRequests, "slow_down")
			s.env["NSAUTH_ISSUER"] = s.p.Issuer
			s.env["NSAUTH_CLIENT_ID"], s.env["NSAUTH_CLIENT_SECRET"] = machineClientID, machineSecret
			s.wantErr = []string{"the identity provider is limiting token requests from here; try again in a while"}
		}},
		{"client secret file missing", func(t *testing.T, s *setup) {
			s.env["NSAUTH_ISSUER"] = s.p.Issuer
			s.env["NSAUTH_CLIENT_ID"], s.env["NSAUTH_CLIENT_SECRET_FILE"] = machineClientID, filepath.Join(s.dir, "nope")
			s.wantErr = []string{"reading NSAUTH_CLIENT_SECRET_FILE (" + filepath.Join(s.dir, "nope") + "): open"}
			s.wantCalls = map[string]int{"client_credentials": 0}
		}},
		{"empty stdin", func(t *testing.T, s *setup) {
			s.env["NSAUTH_ISSUER"] = s.p.Issuer
			s.env["NSAUTH_CLIENT_ID"] = machineClientID
			s.args = []string{"--client-secret-stdin"}
			s.wantErr = []string{"--client-secret-stdin is empty"}
			s.wantCalls = map[string]int{"client_credentials": 0}
		}},
		{"both kinds", func(t *testing.T, s *setup) {
			s.env["NSAUTH_CLIENT_ID"], s.env["NSAUTH_CLIENT_SECRET"] = machineClientID, machineSecret
			s.env["NSAUTH_ID_TOKEN"] = "eyJ-some-id-token"
			s.secrets = []string{"eyJ-some-id-token"}
			s.wantErr = []string{"both a machine client (NSAUTH_CLIENT_ID, NSAUTH_CLIENT_SECRET) and an ID token to exchange (NSAUTH_ID_TOKEN) are given"}
			s.wantCode = cli.ExitUsage
			s.wantCalls = map[string]int{"client_credentials": 0, oidctest.TokenExchangeGrantType: 0}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := oidctest.New(t)
			p.AddMachineClient(machineClientID, machineSecret)
			dir := t.TempDir()
			configDir := filepath.Join(dir, "config")
			s := &setup{p: p, dir: dir, env: map[string]string{"NSAUTH_CONFIG_DIR": configDir, "NSAUTH_API_URL": p.Issuer},
				wantCalls: map[string]int{"client_credentials": 1}}
			tc.prepare(t, s)
			if s.wantErr != nil && s.wantCode == 0 {
				s.wantCode = cli.ExitFailure
			}
			var out, errOut syncBuffer
			app := &cli.App{In: strings.NewReader(s.stdin), Out: &out, ErrOut: &errOut, Getenv: mapEnv(s.env), Now: time.Now}
			code := cli.Run(context.Background(), app, append([]string{"token"}, s.args...))
			if code != s.wantCode {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, s.wantCode, errOut.String())
			}
			for _, where := range []struct{ name, text string }{{"stdout", out.String()}, {"stderr", errOut.String()}} {
				mustNotContain(t, where.name, where.text, append(s.secrets, machineSecret, oidctest.LeakBait)...)
			}
			if s.wantErr != nil {
				mustContain(t, "stderr", errOut.String(), s.wantErr...)
				if out.String() != "" {
					t.Errorf("stdout = %q, want nothing", out.String())
				}
			} else {
				if errOut.String() != "" {
					t.Errorf("stderr = %q, want nothing", errOut.String())
				}
				tok, ok := strings.CutSuffix(out.String(), "\n")
				if !ok || strings.ContainsAny(tok, " \n") {
					t.Fatalf("stdout = %q, want one token and a newline", out.String())
				}
				claims, err := tokenstore.UnverifiedClaims(tok)
				if err != nil || claims["sub"] != s.wantSub {
					t.Errorf("the token's claims = %v (%v), want sub %q", claims, err, s.wantSub)
				}
			}
			for grant, n := range s.wantCalls {
				if got := p.GrantCount(grant); got != n {
					t.Errorf("%s requests = %d, want %d", grant, got, n)
				}
			}
			if _, err := os.Stat(configDir); !os.IsNotExist(err) {
				t.Errorf("machine credentials touched the configuration directory (%v): nothing may be stored", err)
			}
		})
	}
}

// TestTokenMachineCredentialsWithABroker: a server that brokers an
// external provider serves no discovery document, so nsauth token asks for
// NSAUTH_ISSUER, and works with it.
func TestTokenMachineCredentialsWithABroker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fake.AddMachineClient(machineClientID, machineSecret)
	environ := e.environ()
	environ["NSAUTH_CLIENT_ID"], environ["NSAUTH_CLIENT_SECRET"] = machineClientID, machineSecret
	run := func() result {
		var out, errOut syncBuffer
		app := &cli.App{In: strings.NewReader(""), Out: &out, ErrOut: &errOut, Getenv: mapEnv(environ), Now: time.Now}
		code := cli.Run(context.Background(), app, []string{"token"})
		return result{code: code, out: out.String(), errOut: errOut.String()}
	}

	r := run()
	if r.code != cli.ExitFailure {
		t.Fatalf("without NSAUTH_ISSUER: exit %d, want 1; stderr:\n%s", r.code, r.errOut)
	}
	mustContain(t, "stderr", r.errOut, "/.well-known/openid-configuration: HTTP 404", "set NSAUTH_ISSUER to your identity provider's issuer URL")

	environ["NSAUTH_ISSUER"] = e.fake.Issuer
	r = run()
	if r.code != cli.ExitOK || r.out == "" {
		t.Fatalf("with NSAUTH_ISSUER: exit %d, stdout %q; stderr:\n%s", r.code, r.out, r.errOut)
	}
	// The server itself saw nothing but the discovery request.
	if n := e.totalCalls(); n != 1 {
		t.Errorf("requests that reached the API server = %d, want 1 (its discovery document)", n)
	}
	mustNotContain(t, "the output", r.out+r.errOut, machineSecret)
}
