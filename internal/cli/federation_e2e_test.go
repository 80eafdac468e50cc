package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/federation/federationtest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func runFederation(env map[string]string, args ...string) usersResult {
	return runServerCommand(env, nil, append([]string{"federation"}, args...)...)
}

// openEnvStore opens another handle on the store env points nsauth at.
func openEnvStore(t *testing.T, env map[string]string) *store.Store {
	t.Helper()
	var st *store.Store
	var err error
	if u, ok := env["NSAUTH_DATABASE_URL"]; ok {
		st, err = store.OpenPostgres(context.Background(), u, store.Options{})
	} else {
		st, err = store.OpenSQLite(context.Background(), env["NSAUTH_DATA_DIR"], store.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// exchangeAt sends a token-exchange request to the server's token endpoint.
func exchangeAt(t *testing.T, issuer, subjectToken string) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(issuer+"/oauth/token", url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subjectToken},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := map[string]any{}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("HTTP %d, not JSON: %s", resp.StatusCode, body)
	}
	return resp.StatusCode, m
}

// TestKeylessCI is the keyless CI story through nsauth serve, on each
// backend: `nsauth federation add` trusts a fake CI provider's main-branch
// jobs as a machine client; a job's ID token is exchanged at the token
// endpoint; CheckToken accepts the access token as the client's; the
// built-in provider's own token is refused as a CI token; `federation
// delete` revokes what the policy yielded; no token reaches the logs, at
// debug level either.
func TestKeylessCI(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env := storeEnv(t, b)
		s := startBuiltinServe(t, env, nil, "--log-level", "debug")
		s.waitReady(t)
		ci := federationtest.NewIssuer(t)
		st := openEnvStore(t, env)
		client := &store.MachineClient{Name: "ci-deployer", SecretHash: store.HashSecret(store.NewMachineClientSecret()),
			Scopes: []string{"deploy"}, TokenTTL: 30 * time.Minute}
		if err := st.CreateMachineClient(context.Background(), client); err != nil {
			t.Fatal(err)
		}

		if r := runFederation(env, "add", "deploy-main", "--issuer", ci.URL, "--audience", s.issuer,
			"--subject", "repo:acme/*:ref:refs/heads/main", "--client", "ci-deployer", "--max-ttl", "10m"); r.code != 0 {
			t.Fatalf("federation add: exit %d\n%s", r.code, r.errOut)
		}
		for name, args := range map[string][]string{
			"a second policy of that name": {"deploy-main", "--client", "ci-deployer"},
			"an unknown client":            {"other", "--client", "nobody"},
		} {
			args = append(args, "--issuer", ci.URL, "--audience", s.issuer, "--subject", "repo:acme/app:pull_request")
			if r := runFederation(env, append([]string{"add"}, args...)...); r.code != 1 {
				t.Fatalf("federation add of %s: exit %d, want 1\n%s", name, r.code, r.errOut)
			}
		}
		if r := runFederation(env, "add", "glob-only", "--issuer", ci.URL, "--audience", s.issuer, "--subject", "*:*",
			"--client", "ci-deployer"); r.code != cli.ExitUsage {
			t.Fatalf("federation add of a pattern that trusts every subject: exit %d\n%s", r.code, r.errOut)
		}
		// The server's own issuer is refused, whether the command's
		// environment names it or not: the database records the issuer it
		// is served under (here derived from the listen address, which no
		// setting names).
		ownEnv := maps.Clone(env)
		ownEnv["NSAUTH_ISSUER"] = s.issuer
		for _, tc := range []struct {
			name   string
			env    map[string]string
			issuer string
		}{
			{"named by NSAUTH_ISSUER", ownEnv, s.issuer},
			{"without NSAUTH_ISSUER, from the database", env, s.issuer},
			{"without NSAUTH_ISSUER, with a trailing slash", env, s.issuer + "/"},
		} {
			if r := runFederation(tc.env, "add", "self", "--issuer", tc.issuer, "--audience", s.issuer, "--subject", "x",
				"--client", "ci-deployer"); r.code != cli.ExitUsage || !strings.Contains(r.errOut, "this server's own") {
				t.Fatalf("federation add of the server's own issuer, %s: exit %d\n%s", tc.name, r.code, r.errOut)
			}
		}
		if r := runFederation(env, "list"); r.code != 0 || !regexpLine(r.out, "deploy-main", ci.URL, "repo:acme/*:ref:refs/heads/main", "ci-deployer", "10m0s") {
			t.Fatalf("federation list: exit %d\n%s%s", r.code, r.out, r.errOut)
		}

		idToken := ci.Mint(t, ci.Claims(time.Now(), s.issuer, "repo:acme/app:ref:refs/heads/main"))
		status, answer := exchangeAt(t, s.issuer, idToken)
		if exp, _ := answer["expires_in"].(float64); status != http.StatusOK || answer["refresh_token"] != nil || exp < 590 || exp > 600 {
			t.Fatalf("exchange: HTTP %d, error %v, refresh token %t, expires_in %v (want the policy's 10 min)",
				status, answer["error"], answer["refresh_token"] != nil, answer["expires_in"])
		}
		access, _ := answer["access_token"].(string)
		checked, err := s.checkToken(access)
		if err != nil {
			t.Fatalf("CheckToken of the exchanged token: %v", err)
		}
		if checked.GetSubject() != client.ID || checked.GetClientId() != client.ID || !checked.GetMachine() || strings.Join(checked.GetScopes(), " ") != "deploy" {
			t.Fatalf("CheckToken: subject %q scopes %v, want the machine client %q", checked.GetSubject(), checked.GetScopes(), client.ID)
		}

		own := s.login(t)
		for name, tok := range map[string]string{"access token": own.GetAccessToken(), "ID token": own.GetIdToken()} {
			if status, answer := exchangeAt(t, s.issuer, tok); status != http.StatusBadRequest || answer["error"] != "invalid_grant" {
				t.Fatalf("the built-in provider's own %s as a CI token: HTTP %d %v", name, status, answer)
			}
		}
		other := ci.Mint(t, ci.Claims(time.Now(), s.issuer, "repo:evil/app:ref:refs/heads/main:x"))
		if status, answer := exchangeAt(t, s.issuer, other); status != http.StatusBadRequest || answer["error"] != "invalid_grant" {
			t.Fatalf("another subject: HTTP %d %v", status, answer)
		}

		if r := runFederation(env, "delete", "deploy-main"); r.code != 0 {
			t.Fatalf("federation delete: exit %d\n%s", r.code, r.errOut)
		}
		refusedWithin(t, s, access, revocationDeadline)
		if status, _ := exchangeAt(t, s.issuer, idToken); status != http.StatusBadRequest {
			t.Fatalf("exchange after the policy was deleted: HTTP %d", status)
		}
		if _, err := s.checkToken(access); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("CheckToken after the policy was deleted: %v", err)
		}
		logs := s.errOut.String()
		mustNotContain(t, "the server's debug logs", logs, idToken, access, other, own.GetAccessToken(), own.GetIdToken())
		mustContain(t, "the server's debug logs", logs, "token exchange refused", "token exchanged")
	})
}
