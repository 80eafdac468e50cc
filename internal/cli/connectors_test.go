package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func runConnectors(env map[string]string, stdin io.Reader, args ...string) usersResult {
	return runServerCommand(env, stdin, append([]string{"connectors"}, args...)...)
}

func mustRun(t *testing.T, r usersResult, what ...string) usersResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s", strings.Join(what, " "), r.code, r.errOut)
	}
	return r
}

// shownConnector is a connector as `connectors show --json` prints it.
type shownConnector struct {
	Name             string          `json:"name"`
	Type             string          `json:"type"`
	DisplayName      string          `json:"display_name"`
	Disabled         bool            `json:"disabled"`
	CreateUsers      bool            `json:"create_users"`
	TrustUpstreamMFA bool            `json:"trust_upstream_mfa"`
	Settings         json.RawMessage `json:"settings"`
	CallbackURL      string          `json:"callback_url"`
}

func decodeConnector(t *testing.T, out string) shownConnector {
	t.Helper()
	var c shownConnector
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Name == "" {
		t.Fatalf("output %q: %v", out, err)
	}
	return c
}

// connectorsEnv is usersEnv with the server's secret key and issuer URL
// set, as for nsauth serve.
func connectorsEnv(t *testing.T, b storetest.Backend) (map[string]string, *store.Store) {
	t.Helper()
	env, st := usersEnv(t, b)
	env["NSAUTH_SECRET_KEY"] = seal.GenerateKey()
	env["NSAUTH_ISSUER"] = "https://auth.example.com"
	return env, st
}

// openedSecret reads a connector's secret as the server does, with the
// key of env.
func openedSecret(t *testing.T, env map[string]string, name string) string {
	t.Helper()
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	keys, err := config.LoadSecretKeys(nil, getenv)
	if err != nil {
		t.Fatal(err)
	}
	st, err := app.OpenKeyedStore(context.Background(), config.Store{DataDir: env["NSAUTH_DATA_DIR"], DatabaseURL: env["NSAUTH_DATABASE_URL"]}, *keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.ConnectorByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return c.Secret
}

// TestConnectorsCommandRefusesBadSettings: settings are checked before
// the store is touched, and the error names the flag at fault.
func TestConnectorsCommandRefusesBadSettings(t *testing.T) {
	t.Parallel()
	env, _ := connectorsEnv(t, storetest.Backend{Name: "sqlite"})
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bigFile := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(bigFile, []byte(strings.Repeat("s", 4097)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	oidc := []string{"add", "google", "--type", "oidc", "--issuer", "https://accounts.google.com", "--client-id", "id", "--client-secret-file", secretFile}
	ldap := []string{"add", "corp", "--type", "ldap", "--url", "ldaps://ldap.example.com", "--user-base-dn", "ou=people,dc=example,dc=com",
		"--user-filter", "(uid=%s)", "--bind-dn", "cn=nsauth,dc=example,dc=com", "--bind-password-file", secretFile}
	with := func(base []string, more ...string) []string { return slices.Concat(base, more) }
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"no type", []string{"add", "google"}, "", "--type is required"},
		{"unknown type", []string{"add", "google", "--type", "saml"}, "", "--type"},
		{"upper-case name", []string{"add", "Google", "--type", "oidc"}, "", "connector name"},
		{"name starting with a digit", []string{"add", "9x", "--type", "oidc"}, "", "connector name"},
		{"name too long", []string{"add", strings.Repeat("a", 33), "--type", "oidc"}, "", "connector name"},
		{"no name", []string{"add", "--type", "oidc"}, "", "exactly one argument"},
		{"oidc without issuer", []string{"add", "google", "--type", "oidc", "--client-id", "id", "--client-secret-file", secretFile}, "", "--issuer is required"},
		{"oidc without client id", []string{"add", "google", "--type", "oidc", "--issuer", "https://accounts.google.com", "--client-secret-file", secretFile}, "", "--client-id is required"},
		{"oidc without secret", []string{"add", "google", "--type", "oidc", "--issuer", "https://accounts.google.com", "--client-id", "id"}, "", "--client-secret-file or --client-secret-stdin is required"},
		{"both secret flags", with(oidc, "--client-secret-stdin"), "s\n", "not both"},
		{"a secret on the command line", with(oidc, "--client-secret", "s"), "", "unknown flag"},
		{"secret file missing", []string{"add", "google", "--type", "oidc", "--issuer", "https://accounts.google.com", "--client-id", "id", "--client-secret-file", secretFile + ".missing"}, "", "--client-secret-file"},
		{"secret too long", []string{"add", "google", "--type", "oidc", "--issuer", "https://accounts.google.com", "--client-id", "id", "--client-secret-file", bigFile}, "", "longer than 4096 bytes"},
		{"empty secret on stdin", []string{"add", "google", "--type", "oidc", "--issuer", "https://accounts.google.com", "--client-id", "id", "--client-secret-stdin"}, "\n", "no secret"},
		{"a GitHub flag on oidc", with(oidc, "--org", "acme"), "", "--org: not a setting of a connector of type oidc"},
		{"an LDAP flag on github", []string{"add", "gh", "--type", "github", "--client-id", "id", "--client-secret-file", secretFile, "--user-filter", "(uid=%s)"}, "", "--user-filter: not a setting"},
		{"oidc creating users for anyone", with(oidc, "--create-users"), "", "--create-users"},
		{"github creating users for anyone", []string{"add", "gh", "--type", "github", "--client-id", "id", "--client-secret-file", secretFile, "--create-users"}, "", "--org, --team"},
		{"team without org", []string{"add", "gh", "--type", "github", "--client-id", "id", "--client-secret-file", secretFile, "--team", "ops"}, "", "--team"},
		{"API URL over http", []string{"add", "gh", "--type", "github", "--client-id", "id", "--client-secret-file", secretFile, "--api-url", "http://ghe.example.com/api/v3"}, "", "--api-url (setting api_url)"},
		{"plain LDAP to a remote host", []string{"add", "corp", "--type", "ldap", "--url", "ldap://ldap.example.com", "--user-base-dn", "dc=x", "--user-filter", "(uid=%s)", "--bind-dn", "cn=x", "--bind-password-file", secretFile}, "", "--url (setting url): plain ldap://"},
		{"user filter without %s", with(ldap, "--user-filter", "(uid=alice)"), "", "--user-filter (setting user_filter)"},
		{"StartTLS on ldaps", with(ldap, "--start-tls"), "", "--start-tls (setting start_tls)"},
		{"issuer over http", []string{"add", "google", "--type", "oidc", "--issuer", "http://accounts.example.com", "--client-id", "id", "--client-secret-file", secretFile}, "", "--issuer (setting issuer)"},
		{"display name with a control character", with(oidc, "--display-name", "G\x1b[2J"), "", "--display-name"},
		{"display name with a bidirectional override", with(oidc, "--display-name", "Goo\u202Eelg"), "", "--display-name"},
		{"domain with a space", with(oidc, "--allowed-domains", "a b"), "", "--allowed-domains"},
		{"upstream MFA on ldap", with(ldap, "--trust-upstream-mfa"), "", "--trust-upstream-mfa"},
		{"ldap without url", []string{"add", "corp", "--type", "ldap", "--user-base-dn", "dc=x", "--user-filter", "(uid=%s)"}, "", "--url is required"},
		{"ldap without filter", []string{"add", "corp", "--type", "ldap", "--url", "ldaps://ldap.example.com", "--user-base-dn", "dc=x"}, "", "--user-filter is required"},
		{"ldap bind DN without password", []string{"add", "corp", "--type", "ldap", "--url", "ldaps://ldap.example.com", "--user-base-dn", "dc=x", "--user-filter", "(uid=%s)", "--bind-dn", "cn=x"}, "", "--bind-password-file or --bind-password-stdin is required"},
		{"ldap without bind DN", []string{"add", "corp", "--type", "ldap", "--url", "ldaps://ldap.example.com", "--user-base-dn", "dc=x", "--user-filter", "(uid=%s)", "--bind-password-file", secretFile}, "", "--bind-dn is required"},
		{"zero check interval", with(ldap, "--check-interval", "0s"), "", "--check-interval"},
		{"not a duration", with(ldap, "--check-interval", "soon"), "", "check-interval"},
		{"update with no setting", []string{"update", "google"}, "", "none was given"},
		{"update of no connector", []string{"update", "nosuch", "--display-name", "X"}, "", `no connector "nosuch"`},
		{"show of no connector", []string{"show", "nosuch"}, "", `no connector "nosuch"`},
		{"delete of no connector", []string{"delete", "nosuch"}, "", `no connector "nosuch"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runConnectors(env, strings.NewReader(tc.stdin), tc.args...)
			if r.code == 0 || !strings.Contains(r.errOut, tc.want) {
				t.Errorf("connectors %q: exit %d, want an error with %q:\n%s", tc.args, r.code, tc.want, r.errOut)
			}
			if strings.Contains(r.out+r.errOut, "s3cret") {
				t.Errorf("the secret was printed:\n%s%s", r.out, r.errOut)
			}
		})
	}
}

// TestConnectorsCommand: add (each type), list, show, update, disable,
// enable and delete through the real command and store; secrets sealed,
// never printed nor audited; users linked and unlinked.
func TestConnectorsCommand(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		env, st := connectorsEnv(t, b)
		const googleSecret, githubSecret, bindPassword = "google-secret-4f1c", "github-secret-9a2e", "bind-password-77d0"
		secretFile := filepath.Join(t.TempDir(), "github")
		if err := os.WriteFile(secretFile, []byte(githubSecret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		secrets := []string{googleSecret, githubSecret, bindPassword}
		noSecret := func(r usersResult, what string) {
			t.Helper()
			for _, s := range secrets {
				if strings.Contains(r.out+r.errOut, s) {
					t.Fatalf("%s printed a secret:\n%s%s", what, r.out, r.errOut)
				}
			}
		}

		r := mustRun(t, runConnectors(env, strings.NewReader(googleSecret+"\n"), "add", "google", "--type", "oidc", "--display-name", "Google",
			"--issuer", "https://accounts.google.com", "--client-id", "1234.apps.googleusercontent.com", "--client-secret-stdin",
			"--allowed-domains", "Example.com,example.org", "--create-users", "--trust-upstream-mfa", "--json"), "add google")
		noSecret(r, "add google")
		google := decodeConnector(t, r.out)
		var gs struct {
			Issuer         string   `json:"issuer"`
			ClientID       string   `json:"client_id"`
			AllowedDomains []string `json:"allowed_domains"`
		}
		if err := json.Unmarshal(google.Settings, &gs); err != nil {
			t.Fatal(err)
		}
		if google.Type != "oidc" || google.DisplayName != "Google" || !google.CreateUsers || !google.TrustUpstreamMFA ||
			gs.Issuer != "https://accounts.google.com" || gs.ClientID != "1234.apps.googleusercontent.com" ||
			!slices.Equal(gs.AllowedDomains, []string{"example.com", "example.org"}) ||
			google.CallbackURL != "https://auth.example.com/login/connector/google/callback" {
			t.Fatalf("added %+v (settings %s)", google, google.Settings)
		}
		if got := openedSecret(t, env, "google"); got != googleSecret {
			t.Fatalf("stored secret %q", got)
		}

		r = mustRun(t, runConnectors(env, nil, "add", "github", "--type", "github", "--client-id", "Iv1.0123", "--client-secret-file", secretFile,
			"--org", "acme", "--team", "acme/ops", "--api-url", "https://ghe.example.com/api/v3", "--json"), "add github")
		noSecret(r, "add github")
		gh := decodeConnector(t, r.out)
		var ghs struct {
			Org     string   `json:"org"`
			Teams   []string `json:"teams"`
			APIURL  string   `json:"api_url"`
			BaseURL string   `json:"base_url"`
		}
		if err := json.Unmarshal(gh.Settings, &ghs); err != nil {
			t.Fatal(err)
		}
		if ghs.Org != "acme" || !slices.Equal(ghs.Teams, []string{"acme/ops"}) || ghs.APIURL != "https://ghe.example.com/api/v3" {
			t.Fatalf("github settings %s", gh.Settings)
		}
		if show := mustRun(t, runConnectors(env, nil, "show", "github"), "show github").out; !regexpLine(show, "web URL:", "https://ghe.example.com") {
			t.Errorf("show github does not derive the web URL of the API URL:\n%s", show)
		}
		if got := openedSecret(t, env, "github"); got != githubSecret {
			t.Fatalf("stored secret %q", got)
		}

		r = mustRun(t, runConnectors(env, strings.NewReader(bindPassword+"\n"), "add", "corp", "--type", "ldap", "--display-name", "Corporate directory",
			"--url", "ldaps://ldap.example.com", "--bind-dn", "cn=nsauth,ou=services,dc=example,dc=com", "--bind-password-stdin",
			"--user-base-dn", "ou=people,dc=example,dc=com", "--user-filter", "(&(objectClass=person)(uid=%s))",
			"--group-base-dn", "ou=groups,dc=example,dc=com", "--group-filter", "(&(objectClass=groupOfNames)(member=%s))",
			"--check-interval", "10m", "--create-users"), "add corp")
		noSecret(r, "add corp")
		if strings.Contains(r.out, "callback") || !strings.Contains(r.out, "cn=nsauth,ou=services,dc=example,dc=com") {
			t.Errorf("add corp printed:\n%s", r.out)
		}
		if got := openedSecret(t, env, "corp"); got != bindPassword {
			t.Fatalf("stored bind password %q", got)
		}
		if r := runConnectors(env, strings.NewReader("x\n"), "add", "google", "--type", "oidc", "--issuer", "https://accounts.google.com",
			"--client-id", "x", "--client-secret-stdin"); r.code == 0 || !strings.Contains(r.errOut, "already") {
			t.Errorf("a second google: exit %d\n%s", r.code, r.errOut)
		}

		list := mustRun(t, runConnectors(env, nil, "list"), "list")
		noSecret(list, "list")
		if !regexpLine(list.out, "corp", "ldap", "enabled", "Corporate directory", "yes") || !regexpLine(list.out, "github", "github", "enabled", "no") ||
			!regexpLine(list.out, "google", "oidc", "enabled", "Google", "yes") {
			t.Errorf("list:\n%s", list.out)
		}
		var listed []shownConnector
		lj := mustRun(t, runConnectors(env, nil, "list", "--json"), "list --json")
		noSecret(lj, "list --json")
		if err := json.Unmarshal([]byte(lj.out), &listed); err != nil || len(listed) != 3 || listed[0].Name != "corp" {
			t.Fatalf("list --json: %v\n%s", err, lj.out)
		}
		show := mustRun(t, runConnectors(env, nil, "show", "google"), "show")
		noSecret(show, "show")
		for _, want := range []string{"https://auth.example.com/login/connector/google/callback", "https://accounts.google.com", "example.com,example.org", "sealed"} {
			if !strings.Contains(show.out, want) {
				t.Errorf("show lacks %q:\n%s", want, show.out)
			}
		}

		// update: only what is given changes; a secret flag replaces the
		// secret, and needs the key only then.
		keyless := map[string]string{}
		for k, v := range env {
			if k != "NSAUTH_SECRET_KEY" {
				keyless[k] = v
			}
		}
		mustRun(t, runConnectors(keyless, nil, "update", "google", "--display-name", "Google Workspace"), "update google")
		after := decodeConnector(t, mustRun(t, runConnectors(env, nil, "show", "google", "--json"), "show").out)
		if after.DisplayName != "Google Workspace" || string(after.Settings) != string(google.Settings) || !after.CreateUsers || !after.TrustUpstreamMFA {
			t.Errorf("after update: %+v, settings %s (were %s)", after, after.Settings, google.Settings)
		}
		if got := openedSecret(t, env, "google"); got != googleSecret {
			t.Fatalf("update without a secret changed it to %q", got)
		}
		if r := runConnectors(keyless, strings.NewReader("new\n"), "update", "google", "--client-secret-stdin"); r.code == 0 || !strings.Contains(r.errOut, "NSAUTH_SECRET_KEY") {
			t.Errorf("a new secret without the key: exit %d\n%s", r.code, r.errOut)
		}
		mustRun(t, runConnectors(env, strings.NewReader(googleSecret+"-2\n"), "update", "google", "--client-secret-stdin"), "update secret")
		if got := openedSecret(t, env, "google"); got != googleSecret+"-2" {
			t.Fatalf("replaced secret %q", got)
		}
		if r := runConnectors(env, nil, "update", "google", "--allowed-domains", ""); r.code == 0 || !strings.Contains(r.errOut, "--create-users") {
			t.Errorf("dropping the domains of a connector that creates users: exit %d\n%s", r.code, r.errOut)
		}
		mustRun(t, runConnectors(env, nil, "update", "google", "--allowed-domains", "", "--create-users=false"), "update to no domain")
		if r := runConnectors(env, nil, "update", "google", "--org", "acme"); r.code == 0 || !strings.Contains(r.errOut, "--org") {
			t.Errorf("a github flag on update of an oidc connector: exit %d\n%s", r.code, r.errOut)
		}

		mustRun(t, runConnectors(env, nil, "disable", "github"), "disable")
		if c := decodeConnector(t, mustRun(t, runConnectors(env, nil, "show", "github", "--json"), "show").out); !c.Disabled {
			t.Error("github not disabled")
		}
		mustRun(t, runConnectors(env, nil, "enable", "github"), "enable")
		if c := decodeConnector(t, mustRun(t, runConnectors(env, nil, "show", "github", "--json"), "show").out); c.Disabled {
			t.Error("github still disabled")
		}

		// Users bound to identities.
		mustRun(t, runUsers(env, strings.NewReader("first-password\n"), "add", "alice"), "users add alice")
		mustRun(t, runUsers(env, strings.NewReader("first-password\n"), "add", "bob"), "users add bob")
		mustRun(t, runUsers(env, nil, "link", "alice", "--connector", "google", "--subject", "110248495921238986420"), "link alice")
		alice, err := st.UserByUsername(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if id, err := st.IdentityBySubject(ctx, "google", "110248495921238986420"); err != nil || id.UserID != alice.ID {
			t.Fatalf("identity %+v, %v", id, err)
		}
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"the same identity to another user", []string{"link", "bob", "--connector", "google", "--subject", "110248495921238986420"}, "linked to another user"},
			{"a second identity of a connector", []string{"link", "alice", "--connector", "google", "--subject", "42"}, "unlink"},
			{"no such connector", []string{"link", "bob", "--connector", "gitlab", "--subject", "42"}, `no connector "gitlab"`},
			{"no such user", []string{"link", "carol", "--connector", "google", "--subject", "42"}, `no user "carol"`},
			{"no subject", []string{"link", "bob", "--connector", "google"}, "--subject is required"},
			{"no connector", []string{"link", "bob", "--subject", "42"}, "--connector is required"},
			{"a subject with a control character", []string{"link", "bob", "--connector", "google", "--subject", "4\x1b2"}, "--subject"},
			{"unlink of no identity", []string{"unlink", "bob", "--connector", "google"}, "has no identity"},
			{"no password without an identity", []string{"add", "dave", "--no-password"}, "--connector and --subject"},
			{"an identity with a password", []string{"add", "dave", "--connector", "google", "--subject", "7"}, "--no-password"},
		} {
			if r := runUsers(env, nil, tc.args...); r.code == 0 || !strings.Contains(r.errOut, tc.want) {
				t.Errorf("%s: users %q: exit %d, want %q:\n%s", tc.name, tc.args, r.code, tc.want, r.errOut)
			}
		}
		mustRun(t, runUsers(env, nil, "add", "carol", "--no-password", "--connector", "corp", "--subject", "b1946ac9-2d1e-4c1b-9e0b-1d1f2c3e4a5b", "--email", "carol@example.com"), "add carol")
		carol, err := st.UserByUsername(ctx, "carol")
		if err != nil {
			t.Fatal(err)
		}
		if carol.PasswordHash != "" || carol.Email != "carol@example.com" {
			t.Errorf("carol = %+v", carol)
		}
		if ids, err := st.IdentitiesOfUser(ctx, carol.ID); err != nil || len(ids) != 1 || ids[0].Connector != "corp" {
			t.Errorf("carol's identities %+v, %v", ids, err)
		}
		mustRun(t, runUsers(env, nil, "unlink", "alice", "--connector", "google"), "unlink alice")
		if _, err := st.IdentityBySubject(ctx, "google", "110248495921238986420"); err == nil {
			t.Error("alice still linked")
		}
		mustRun(t, runUsers(env, nil, "link", "bob", "--connector", "google", "--subject", "110248495921238986420"), "link bob")

		mustRun(t, runConnectors(env, nil, "delete", "google"), "delete")
		if _, err := st.IdentityBySubject(ctx, "google", "110248495921238986420"); err == nil {
			t.Error("bob's google identity outlived its connector")
		}
		if _, err := st.UserByUsername(ctx, "bob"); err != nil {
			t.Errorf("bob went with the connector: %v", err)
		}

		events, err := st.AuditEvents(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var trail []string
		for _, e := range events {
			if !strings.HasPrefix(string(e.Type), "connector.") && !strings.HasPrefix(string(e.Type), "user.") {
				continue
			}
			trail = append(trail, strings.Join(strings.Fields(string(e.Type)+" "+e.Username+" "+e.Target+" "+e.Reason), " "))
			if e.Actor != audit.OSUser() {
				t.Errorf("%s: actor %q", e.Type, e.Actor)
			}
			j, _ := json.Marshal(e)
			for _, s := range secrets {
				if strings.Contains(string(j), s) {
					t.Errorf("an audit record holds a secret: %s", j)
				}
			}
		}
		wantTrail := []string{
			"connector.added google oidc", "connector.added github github", "connector.added corp ldap",
			"connector.updated google settings_changed", "connector.updated google secret_replaced", "connector.updated google settings_changed",
			"connector.disabled github github", "connector.enabled github github",
			"user.linked alice google", "user.linked carol corp", "user.unlinked alice google", "user.linked bob google",
			"connector.deleted google oidc",
		}
		if !slices.Equal(trail, wantTrail) {
			t.Errorf("events:\n  %s\nwant:\n  %s", strings.Join(trail, "\n  "), strings.Join(wantTrail, "\n  "))
		}
	})
}

// TestConnectorsCallbackURLAndKey: show builds the callback from the
// issuer the data was last served under (else NSAUTH_ISSUER, else says it
// is unknown), and add refuses to store a secret without the server's
// key, naming the setting, and stores nothing.
func TestConnectorsCallbackURLAndKey(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := connectorsEnv(t, b)
		delete(env, "NSAUTH_ISSUER")
		keyless := map[string]string{}
		for k, v := range env {
			if k != "NSAUTH_SECRET_KEY" {
				keyless[k] = v
			}
		}
		add := []string{"add", "okta", "--type", "oidc", "--issuer", "https://acme.okta.com", "--client-id", "0oa1", "--client-secret-stdin"}
		r := runConnectors(keyless, strings.NewReader("okta-secret\n"), add...)
		if r.code == 0 || !strings.Contains(r.errOut, "NSAUTH_SECRET_KEY") || strings.Contains(r.out+r.errOut, "okta-secret") {
			t.Fatalf("add without the key: exit %d\n%s%s", r.code, r.out, r.errOut)
		}
		if all, err := st.Connectors(context.Background()); err != nil || len(all) != 0 {
			t.Fatalf("stored %v, %v", all, err)
		}
		mustRun(t, runConnectors(env, strings.NewReader("okta-secret\n"), add...), "add")
		if show := mustRun(t, runConnectors(env, nil, "show", "okta"), "show").out; !strings.Contains(show, "unknown until nsauth serve") {
			t.Errorf("show without an issuer:\n%s", show)
		}
		env["NSAUTH_ISSUER"] = "https://auth.example.com/"
		if c := decodeConnector(t, mustRun(t, runConnectors(env, nil, "show", "okta", "--json"), "show").out); c.CallbackURL != "https://auth.example.com/login/connector/okta/callback" {
			t.Errorf("callback from NSAUTH_ISSUER: %q", c.CallbackURL)
		}
		if _, err := st.RecordServedIssuer(context.Background(), "https://id.example.org"); err != nil {
			t.Fatal(err)
		}
		if c := decodeConnector(t, mustRun(t, runConnectors(env, nil, "show", "okta", "--json"), "show").out); c.CallbackURL != "https://id.example.org/login/connector/okta/callback" {
			t.Errorf("callback from the served issuer: %q", c.CallbackURL)
		}
	})
}
