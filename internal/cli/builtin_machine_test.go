package cli_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/federation/federationtest"
)

// TestMachineTokenThroughTheBuiltinProvider: a machine client made with
// `nsauth clients add` gets a token from `nsauth token` with nothing but
// the API URL, its ID and its secret; the token endpoint is found through
// the API server's discovery document (reached here through a proxy, so
// the document names another origin, the issuer's, which is followed),
// and the server's CheckToken accepts the token as the machine's.
func TestMachineTokenThroughTheBuiltinProvider(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	serverURL := startServe(t, map[string]string{"NSAUTH_DATA_DIR": dataDir, "NSAUTH_ADMIN_PASSWORD": adminPassword})
	waitReady(t, serverURL)
	e := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
	e.apiURL = e.countingProxy(serverURL)

	run := func(environ map[string]string, stdin string, args ...string) result {
		var out, errOut syncBuffer
		app := &cli.App{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut, Getenv: mapEnv(environ), Now: time.Now}
		code := cli.Run(context.Background(), app, args, servercmd.Commands...)
		return result{code: code, out: out.String(), errOut: errOut.String()}
	}
	r := run(map[string]string{"NSAUTH_DATA_DIR": dataDir}, "", "clients", "add", "deployer", "--scopes", "deploy", "--json")
	if r.code != cli.ExitOK {
		t.Fatalf("clients add: exit %d; stderr:\n%s", r.code, r.errOut)
	}
	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(r.out), &created); err != nil || created.ClientSecret == "" {
		t.Fatalf("clients add --json printed %q: %v", r.out, err)
	}

	environ := e.environ()
	environ["NSAUTH_CLIENT_ID"] = created.ClientID
	r = run(environ, created.ClientSecret+"\n", "token", "--client-secret-stdin", "--scope", "deploy")
	if r.code != cli.ExitOK {
		t.Fatalf("token: exit %d; stderr:\n%s", r.code, r.errOut)
	}
	mustNotContain(t, "the output", r.out+r.errOut, created.ClientSecret)
	tok := strings.TrimSpace(r.out)
	check, err := e.checkToken(tok)
	if err != nil {
		t.Fatalf("CheckToken of the machine token: %v", err)
	}
	if !check.GetMachine() || check.GetClientId() != created.ClientID || check.GetSubject() != created.ClientID {
		t.Errorf("CheckToken = machine %v, client %q, subject %q; want the machine client %q", check.GetMachine(), check.GetClientId(), check.GetSubject(), created.ClientID)
	}

	// whoami with the same credentials shows what the server says.
	environ["NSAUTH_CLIENT_SECRET"] = created.ClientSecret
	r = run(environ, "", "whoami", "-o", "json")
	if r.code != cli.ExitOK {
		t.Fatalf("whoami: exit %d; stderr:\n%s", r.code, r.errOut)
	}
	var who struct {
		Account  string   `json:"account"`
		Subject  string   `json:"subject"`
		ClientID string   `json:"client_id"`
		Machine  bool     `json:"machine"`
		Scopes   []string `json:"scopes"`
	}
	if err := json.Unmarshal([]byte(r.out), &who); err != nil {
		t.Fatalf("whoami -o json printed %q: %v", r.out, err)
	}
	if !who.Machine || who.ClientID != created.ClientID || who.Subject != created.ClientID || who.Account != "" {
		t.Errorf("whoami = %+v, want the machine client %q and no account", who, created.ClientID)
	}
	r = run(environ, "", "whoami")
	mustContain(t, "whoami", r.out, "Client:", created.ClientID+" (machine)")
	mustNotContain(t, "whoami", r.out+r.errOut, created.ClientSecret)

	environ["NSAUTH_CLIENT_SECRET"] = "not-" + created.ClientSecret
	r = run(environ, "", "token")
	if r.code != cli.ExitFailure {
		t.Fatalf("token with a wrong secret: exit %d, want 1", r.code)
	}
	mustContain(t, "stderr", r.errOut, "the client ID (NSAUTH_CLIENT_ID="+created.ClientID+") or the secret (NSAUTH_CLIENT_SECRET) is wrong")
	mustNotContain(t, "the output", r.out+r.errOut, created.ClientSecret)
}

// waitReady waits until serverURL's /readyz answers 200.
func waitReady(t *testing.T, serverURL string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(serverURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the built-in provider did not become ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKeylessCITokenThroughTheBuiltinProvider: a CI job's ID token, in a
// file, becomes a machine client's access token with `nsauth token
// --id-token-file` and nothing else but the API URL, as docs/machine-clients.md's GitHub
// Actions job does; an expired one is refused with a message that says so.
func TestKeylessCITokenThroughTheBuiltinProvider(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NSAUTH_DATA_DIR": filepath.Join(t.TempDir(), "data"), "NSAUTH_ADMIN_PASSWORD": adminPassword}
	s := startBuiltinServe(t, env, nil)
	s.waitReady(t)
	ci := federationtest.NewIssuer(t)

	run := func(environ map[string]string, args ...string) result {
		var out, errOut syncBuffer
		app := &cli.App{In: strings.NewReader(""), Out: &out, ErrOut: &errOut, Getenv: mapEnv(environ), Now: time.Now}
		code := cli.Run(context.Background(), app, args, servercmd.Commands...)
		return result{code: code, out: out.String(), errOut: errOut.String()}
	}
	r := run(env, "clients", "add", "ci-deployer", "--scopes", "deploy", "--json")
	var created struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal([]byte(r.out), &created); r.code != cli.ExitOK || err != nil {
		t.Fatalf("clients add: exit %d, %v\n%s", r.code, err, r.errOut)
	}
	const subject = "repo:acme/app:ref:refs/heads/main"
	if r := run(env, "federation", "add", "deploy-main", "--issuer", ci.URL, "--audience", s.issuer,
		"--subject", subject, "--client", "ci-deployer"); r.code != cli.ExitOK {
		t.Fatalf("federation add: exit %d\n%s", r.code, r.errOut)
	}

	dir := t.TempDir()
	client := map[string]string{"NSAUTH_API_URL": s.url, "NSAUTH_CONFIG_DIR": filepath.Join(dir, "config")}
	tests := []struct {
		name    string
		issued  time.Time
		wantErr string
	}{
		{name: "fresh ID token", issued: time.Now()},
		{name: "expired ID token", issued: time.Now().Add(-30 * time.Minute),
			wantErr: "the identity provider refused the ID token from --id-token-file"},
	}
	for _, tc := range tests {
		idToken := ci.Mint(t, ci.Claims(tc.issued, s.issuer, subject))
		path := filepath.Join(dir, "id-token")
		if err := os.WriteFile(path, []byte(idToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := run(client, "token", "--id-token-file", path)
		mustNotContain(t, tc.name+": stderr", r.errOut, idToken)
		if tc.wantErr != "" {
			if r.code != cli.ExitFailure || r.out != "" {
				t.Fatalf("%s: exit %d, stdout %q; want 1 and nothing", tc.name, r.code, r.out)
			}
			mustContain(t, tc.name+": stderr", r.errOut, tc.wantErr, "get a fresh token from your CI system")
			continue
		}
		if r.code != cli.ExitOK {
			t.Fatalf("%s: exit %d\n%s", tc.name, r.code, r.errOut)
		}
		checked, err := s.checkToken(strings.TrimSpace(r.out))
		if err != nil {
			t.Fatalf("%s: CheckToken: %v", tc.name, err)
		}
		if !checked.GetMachine() || checked.GetClientId() != created.ClientID {
			t.Errorf("%s: CheckToken = machine %v, client %q; want %q", tc.name, checked.GetMachine(), checked.GetClientId(), created.ClientID)
		}
	}
	if _, err := os.Stat(client["NSAUTH_CONFIG_DIR"]); !os.IsNotExist(err) {
		t.Errorf("nsauth token --id-token-file touched the configuration directory (%v)", err)
	}
}
