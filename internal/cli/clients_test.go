package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/internal/store/storetest"
)

func runClients(env map[string]string, args ...string) usersResult {
	return runServerCommand(env, nil, append([]string{"clients"}, args...)...)
}

// createdClient is what `clients add --json` and `clients rotate-secret
// --json` print.
type createdClient struct {
	Name         string `json:"name"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

func mustClients(t *testing.T, env map[string]string, args ...string) usersResult {
	t.Helper()
	r := runClients(env, args...)
	if r.code != 0 {
		t.Fatalf("nsauth clients %s: exit %d\n%s", strings.Join(args, " "), r.code, r.errOut)
	}
	return r
}

func decodeCreated(t *testing.T, r usersResult) createdClient {
	t.Helper()
	var c createdClient
	if err := json.Unmarshal([]byte(r.out), &c); err != nil || c.ClientID == "" || c.ClientSecret == "" {
		t.Fatalf("output %q: %v", r.out, err)
	}
	if strings.Contains(r.errOut, c.ClientSecret) {
		t.Fatal("the secret was printed on standard error")
	}
	if !strings.Contains(r.errOut, "shown only this once") {
		t.Errorf("no warning on standard error: %q", r.errOut)
	}
	return c
}

func TestClientsCommand(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		ctx := context.Background()

		add := mustClients(t, env, "add", "Deploy", "--scopes", "read,write", "--token-ttl", "10m")
		if !strings.Contains(add.out, "client_id:") || !strings.Contains(add.out, "client_secret:") {
			t.Fatalf("add printed %q", add.out)
		}
		c, err := st.MachineClientByName(ctx, "deploy")
		if err != nil {
			t.Fatal(err)
		}
		var secret string
		for _, line := range strings.Split(add.out, "\n") {
			if v, ok := strings.CutPrefix(line, "client_secret:"); ok {
				secret = strings.TrimSpace(v)
			}
		}
		if !c.CheckSecret(secret) || len(secret) < 43 || !strings.Contains(add.out, c.ID) || c.TokenTTL != 10*time.Minute || strings.Join(c.Scopes, " ") != "read write" {
			t.Fatalf("stored %+v for output %q", c, add.out)
		}
		if strings.Contains(add.errOut, secret) {
			t.Fatal("the secret was printed on standard error")
		}

		if r := runClients(env, "add", "deploy"); r.code == 0 || !strings.Contains(r.errOut, "already exists") {
			t.Errorf("a second deploy: exit %d %q", r.code, r.errOut)
		}
		for _, bad := range [][]string{{"add", "9lives"}, {"add", "x", "--token-ttl", "-1m"}, {"add", "x", "--token-ttl", "1500ms"}, {"add"}, {"add", "x", "--secret", "s"}, {"disable", "nobody"}} {
			if r := runClients(env, bad...); r.code == 0 {
				t.Errorf("clients %v succeeded", bad)
			}
		}

		list := mustClients(t, env, "list")
		if !strings.Contains(list.out, "CLIENT ID") || !regexpLine(list.out, "deploy", c.ID, "enabled", "read,write", "10m0s") {
			t.Errorf("list:\n%s", list.out)
		}
		if strings.Contains(list.out, secret) {
			t.Fatal("list printed the secret")
		}

		mustClients(t, env, "disable", "deploy")
		var listed []struct {
			Name     string   `json:"name"`
			ClientID string   `json:"client_id"`
			Disabled bool     `json:"disabled"`
			Scopes   []string `json:"scopes"`
		}
		if err := json.Unmarshal([]byte(mustClients(t, env, "list", "--json").out), &listed); err != nil {
			t.Fatal(err)
		}
		if len(listed) != 1 || !listed[0].Disabled || listed[0].ClientID != c.ID {
			t.Errorf("list --json after disable = %+v", listed)
		}
		// By client id as well as by name.
		mustClients(t, env, "enable", c.ID)
		if got, _ := st.MachineClientByID(ctx, c.ID); got.Disabled() {
			t.Error("still disabled after enable")
		}

		rot := decodeCreated(t, mustClients(t, env, "rotate-secret", "deploy", "--json"))
		got, _ := st.MachineClientByID(ctx, c.ID)
		if rot.ClientID != c.ID || rot.ClientSecret == secret || got.CheckSecret(secret) || !got.CheckSecret(rot.ClientSecret) {
			t.Errorf("rotate-secret: %+v", rot)
		}

		mustClients(t, env, "delete", "deploy")
		if _, err := st.MachineClientByID(ctx, c.ID); err == nil {
			t.Error("still there after delete")
		}
		if out := mustClients(t, env, "list", "--json").out; strings.TrimSpace(out) != "[]" {
			t.Errorf("list --json of none = %q", out)
		}
	})
}

// machineToken obtains a client-credentials token from s's provider.
func machineToken(t *testing.T, s *biServer, id, secret string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.issuer+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tr struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	_ = json.Unmarshal(body, &tr)
	if tr.RefreshToken != "" {
		t.Error("a machine token came with a refresh token")
	}
	return resp.StatusCode, tr.AccessToken
}

// TestMachineTokenCheckToken is the acceptance of issue 13's machine
// clients through `nsauth serve`, on each backend: a client-credentials
// token is accepted by CheckToken, which says it is a machine's, and is
// refused within a second of the client being disabled, its secret
// rotated or it being deleted; a user's token is not a machine's.
func TestMachineTokenCheckToken(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env := storeEnv(t, b)
		s := startBuiltinServe(t, env, nil)
		s.waitReady(t)
		c := decodeCreated(t, mustClients(t, env, "add", "ci", "--scopes", "read", "--json"))

		issue := func(secret string) string {
			t.Helper()
			status, tok := machineToken(t, s, c.ClientID, secret)
			if status != http.StatusOK || tok == "" {
				t.Fatalf("client credentials: HTTP %d", status)
			}
			return tok
		}
		tok := issue(c.ClientSecret)
		resp, err := s.checkToken(tok)
		if err != nil {
			t.Fatalf("CheckToken: %v", err)
		}
		if resp.GetSubject() != c.ClientID || resp.GetClientId() != c.ClientID || !resp.GetMachine() || strings.Join(resp.GetScopes(), " ") != "read" {
			t.Errorf("CheckToken = %v", resp)
		}

		user, err := s.checkToken(s.login(t).GetAccessToken())
		if err != nil {
			t.Fatal(err)
		}
		if user.GetMachine() || user.GetClientId() == "" || user.GetClientId() == user.GetSubject() || user.Machine == nil {
			t.Errorf("CheckToken of a user's token = %v", user)
		}

		if status, _ := machineToken(t, s, c.ClientID, c.ClientSecret+"x"); status != http.StatusUnauthorized {
			t.Errorf("wrong secret: HTTP %d", status)
		}

		mustClients(t, env, "disable", "ci")
		t.Logf("refused %v after disable", refusedWithin(t, s, tok, revocationDeadline))
		if status, _ := machineToken(t, s, c.ClientID, c.ClientSecret); status != http.StatusUnauthorized {
			t.Errorf("disabled client: HTTP %d", status)
		}

		mustClients(t, env, "enable", "ci")
		tok = issue(c.ClientSecret)
		rot := decodeCreated(t, mustClients(t, env, "rotate-secret", "ci", "--json"))
		t.Logf("refused %v after rotate-secret", refusedWithin(t, s, tok, revocationDeadline))
		if status, _ := machineToken(t, s, c.ClientID, c.ClientSecret); status != http.StatusUnauthorized {
			t.Errorf("old secret after rotation: HTTP %d", status)
		}
		tok = issue(rot.ClientSecret)
		if _, err := s.checkToken(tok); err != nil {
			t.Fatalf("CheckToken with the new secret's token: %v", err)
		}

		mustClients(t, env, "delete", "ci")
		t.Logf("refused %v after delete", refusedWithin(t, s, tok, revocationDeadline))
		if status, _ := machineToken(t, s, c.ClientID, rot.ClientSecret); status != http.StatusUnauthorized {
			t.Errorf("deleted client: HTTP %d", status)
		}

		for _, secret := range []string{c.ClientSecret, rot.ClientSecret} {
			if strings.Contains(s.errOut.String(), secret) {
				t.Error("a client secret appears in the server's log")
			}
		}
	})
}

// TestMachineTokenIntrospection: with NSAUTH_TOKEN_MODE=introspection the
// server introspects a machine token as the broker's client, CheckToken
// still says it is a machine's, and disabling the client refuses it at
// once.
func TestMachineTokenIntrospection(t *testing.T) {
	t.Parallel()
	env := storeEnv(t, storetest.Backends()[0])
	env["NSAUTH_TOKEN_MODE"] = "introspection"
	env["NSAUTH_INTROSPECTION_CACHE_TTL"] = "0s"
	s := startBuiltinServe(t, env, time.Now)
	s.waitReady(t)
	c := decodeCreated(t, mustClients(t, env, "add", "ci", "--scopes", "read", "--json"))
	status, tok := machineToken(t, s, c.ClientID, c.ClientSecret)
	if status != http.StatusOK {
		t.Fatalf("client credentials: HTTP %d", status)
	}
	resp, err := s.checkToken(tok)
	if err != nil {
		t.Fatalf("CheckToken through introspection: %v", err)
	}
	if resp.GetSubject() != c.ClientID || resp.GetClientId() != c.ClientID || !resp.GetMachine() {
		t.Errorf("CheckToken = %v", resp)
	}
	mustClients(t, env, "disable", "ci")
	if _, err := s.checkToken(tok); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("CheckToken after disable: %v, want Unauthenticated", err)
	}
}
