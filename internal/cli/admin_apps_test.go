package cli_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestAppsClientsFederationSessionsRemotely: nsauth apps, clients,
// federation and sessions work through --api-url from a directory with
// only `nsauth login` done as an administrator, and print exactly what the
// same command prints offline with the store; the audit trail names the
// administrator; apps consents refuses --api-url (it works on the store
// only).
func TestAppsClientsFederationSessionsRemotely(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		serverEnv := storeEnv(t, b)
		serverURL := startServe(t, serverEnv)
		waitReady(t, serverURL)
		st := openServedStore(t, serverEnv)
		admin, err := st.UserByUsername(ctx, "admin")
		if err != nil {
			t.Fatal(err)
		}
		// The first-start administrator is in the group admin already.
		if in, err := st.InGroup(ctx, admin.ID, "admin"); err != nil || !in {
			t.Fatalf("the first administrator in the group admin: %v, %v; want true", in, err)
		}
		e := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}, apiURL: serverURL}
		loginAs(t, e, "admin", biAdminPassword)
		remote := func(args ...string) result {
			t.Helper()
			r := e.run(ctx, strings.NewReader(""), append(args, "--api-url", serverURL)...)
			if r.code != 0 {
				t.Fatalf("%s through the API: exit %d\n%s", strings.Join(args, " "), r.code, r.errOut)
			}
			return r
		}
		offline := func(args ...string) usersResult {
			t.Helper()
			r := runServerCommand(serverEnv, nil, args...)
			if r.code != 0 {
				t.Fatalf("%s offline: exit %d\n%s", strings.Join(args, " "), r.code, r.errOut)
			}
			return r
		}

		added := remote("apps", "add", "web", "--display-name", "Web", "--redirect-uri", "https://web.example.com/cb", "--scope", "openid,groups",
			"--access-token-ttl", "10m", "--json")
		creds := decodeAppCredentials(t, usersResult(added))
		if creds.ClientSecret == nil || !strings.Contains(added.errOut, `Registered confidential app "web".`) {
			t.Fatalf("apps add through the API: %q\n%s", added.out, added.errOut)
		}
		remote("apps", "update", "web", "--third-party")
		client := remote("clients", "add", "ci-deployer", "--scopes", "deploy", "--json")
		remote("federation", "add", "deploy-main", "--issuer", "https://token.actions.githubusercontent.com", "--audience", serverURL,
			"--subject", "repo:acme/app:ref:refs/heads/main", "--client", "ci-deployer", "--max-ttl", "10m")

		for _, args := range [][]string{
			{"apps", "list"}, {"apps", "list", "--json"}, {"apps", "show", "web"}, {"apps", "show", "nsauth-cli"}, {"apps", "show", "web", "--json"},
			{"clients", "list"}, {"clients", "list", "--json"}, {"federation", "list"}, {"sessions", "list"}, {"sessions", "list", "--user", "admin", "--json"},
		} {
			r, o := remote(args...), offline(args...)
			if r.out != o.out || r.errOut != o.errOut {
				t.Errorf("%s prints through the API:\n%s%s\nand offline:\n%s%s", strings.Join(args, " "), r.out, r.errOut, o.out, o.errOut)
			}
		}
		machine := decodeCreated(t, usersResult(client))
		for _, out := range []string{remote("apps", "list", "--json").out, remote("clients", "list", "--json").out} {
			if strings.Contains(out, *creds.ClientSecret) || strings.Contains(out, machine.ClientSecret) {
				t.Errorf("a listing shows a secret:\n%s", out)
			}
		}

		// Refusals say the same remotely as offline.
		for _, args := range [][]string{
			{"apps", "show", "nobody"}, {"apps", "delete", "nsauth-cli"}, {"apps", "add", "web", "--redirect-uri", "https://x.example.com/cb"},
			{"clients", "disable", "nobody"}, {"federation", "delete", "nobody"}, {"sessions", "revoke", "no-such-session"},
			{"sessions", "list", "--user", "nobody"},
		} {
			r := e.run(ctx, strings.NewReader(""), append(args, "--api-url", serverURL)...)
			o := runServerCommand(serverEnv, nil, args...)
			if r.code == 0 || r.code != o.code || r.errOut != o.errOut {
				t.Errorf("%s refused through the API: exit %d\n%s\nand offline: exit %d\n%s", strings.Join(args, " "), r.code, r.errOut, o.code, o.errOut)
			}
		}
		if r := e.run(ctx, strings.NewReader(""), "apps", "consents", "list", "--api-url", serverURL); r.code != 2 || !strings.Contains(r.errOut, "only on the store") {
			t.Errorf("apps consents list --api-url: exit %d\n%s", r.code, r.errOut)
		}

		remote("federation", "delete", "deploy-main")
		remote("clients", "rotate-secret", "ci-deployer")
		remote("apps", "disable", "web")
		remote("apps", "delete", "web")
		// Last: ending the administrator's sessions revokes the tokens of
		// this very login.
		if r := remote("sessions", "revoke", "--user", "admin"); !strings.Contains(r.errOut, `session(s) of "admin"`) {
			t.Errorf("sessions revoke --user admin: %s", r.errOut)
		}
		events, err := st.AuditEvents(ctx, store.AuditFilter{Types: []audit.Type{audit.AppAdded, audit.AppUpdated, audit.AppDisabled, audit.AppDeleted,
			audit.ClientChanged, audit.FederationChanged, audit.SessionRevoked}})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 9 {
			t.Errorf("%d events, want 9: %+v", len(events), events)
		}
		for _, ev := range events {
			if ev.Actor != "admin" {
				t.Errorf("%s %s: actor %q, want admin", ev.Type, ev.Reason, ev.Actor)
			}
		}
	})
}
