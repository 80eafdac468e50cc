package cli_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestAdminCommandsAudit: every change made with nsauth users, clients and
// federation records one event naming the operating-system user who ran
// it, and none holds a password or a client secret.
func TestAdminCommandsAudit(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		users := func(stdin string, args ...string) {
			t.Helper()
			if r := runUsers(env, strings.NewReader(stdin), args...); r.code != 0 {
				t.Fatalf("nsauth users %s: exit %d\n%s", strings.Join(args, " "), r.code, r.errOut)
			}
		}
		users("bob-first-password\n", "add", "bob")
		users("bob-second-password\n", "passwd", "bob")
		users("", "disable", "bob")
		users("", "enable", "bob")
		users("", "unlock", "bob")
		created := decodeCreated(t, mustClients(t, env, "add", "deploy", "--json"))
		rotated := decodeCreated(t, mustClients(t, env, "rotate-secret", "deploy", "--json"))
		mustClients(t, env, "disable", "deploy")
		if r := runFederation(env, "add", "ci", "--issuer", "https://token.actions.githubusercontent.com", "--audience", "https://nsauth.example.com",
			"--subject", "repo:acme/app:ref:refs/heads/main", "--client", "deploy"); r.code != 0 {
			t.Fatalf("federation add: exit %d\n%s", r.code, r.errOut)
		}
		if r := runFederation(env, "delete", "ci"); r.code != 0 {
			t.Fatalf("federation delete: exit %d\n%s", r.code, r.errOut)
		}
		mustClients(t, env, "delete", "deploy")
		users("", "delete", "bob")

		events, err := st.AuditEvents(context.Background(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events {
			who := e.Username + e.ClientID
			if e.Type == audit.FederationChanged {
				who = e.Target
			}
			got = append(got, string(e.Type)+" "+who+" "+e.Reason)
			if e.Actor != audit.OSUser() || e.Outcome != audit.Success {
				t.Errorf("%s %s: actor %q outcome %s, want %q and success", e.Type, e.Reason, e.Actor, e.Outcome, audit.OSUser())
			}
			j, _ := json.Marshal(e)
			for _, secret := range []string{"bob-first-password", "bob-second-password", created.ClientSecret, rotated.ClientSecret} {
				if strings.Contains(string(j), secret) {
					t.Errorf("an audit record holds a secret: %s", j)
				}
			}
		}
		id := created.ClientID
		want := []string{
			"admin.user bob added", "admin.user bob password_changed", "admin.user bob disabled", "admin.user bob enabled", "admin.user bob unlocked",
			"admin.client " + id + " added", "admin.client " + id + " secret_rotated", "admin.client " + id + " disabled",
			"admin.federation ci added", "admin.federation ci deleted",
			"admin.client " + id + " deleted", "admin.user bob deleted",
		}
		if !slices.Equal(got, want) {
			t.Errorf("events:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	})
}
