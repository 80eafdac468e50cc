package cli_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func runApps(env map[string]string, args ...string) usersResult {
	return runServerCommand(env, nil, append([]string{"apps"}, args...)...)
}

func mustApps(t *testing.T, env map[string]string, args ...string) usersResult {
	t.Helper()
	r := runApps(env, args...)
	if r.code != 0 {
		t.Fatalf("nsauth apps %s: exit %d\n%s", strings.Join(args, " "), r.code, r.errOut)
	}
	return r
}

// appCredentials is what `apps add --json` and `apps rotate-secret
// --json` print.
type appCredentials struct {
	ClientID     string  `json:"client_id"`
	ClientSecret *string `json:"client_secret"`
}

func decodeAppCredentials(t *testing.T, r usersResult) appCredentials {
	t.Helper()
	var c appCredentials
	if err := json.Unmarshal([]byte(r.out), &c); err != nil || c.ClientID == "" {
		t.Fatalf("output %q: %v", r.out, err)
	}
	if c.ClientSecret != nil && strings.Contains(r.errOut, *c.ClientSecret) {
		t.Fatal("the secret was printed on standard error")
	}
	return c
}

// shownApp is an app as `apps show --json` prints it.
type shownApp struct {
	ClientID               string   `json:"client_id"`
	DisplayName            string   `json:"display_name"`
	Disabled               bool     `json:"disabled"`
	Public                 bool     `json:"public"`
	Native                 bool     `json:"native"`
	ThirdParty             bool     `json:"third_party"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	Scopes                 []string `json:"scopes"`
	GrantTypes             []string `json:"grant_types"`
	Audiences              []string `json:"audiences"`
	AccessTokenTTL         string   `json:"access_token_ttl"`
	RefreshTokenTTL        string   `json:"refresh_token_ttl"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri"`
}

// TestAppsCommandRefusesBadSettings: every setting is checked before the
// store is touched, and the error names the flag at fault.
func TestAppsCommandRefusesBadSettings(t *testing.T) {
	t.Parallel()
	env, _ := usersEnv(t, storetest.Backend{Name: "sqlite"})
	const cb = "https://app.example.com/cb"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"name starting with a digit", []string{"add", "9lives", "--redirect-uri", cb}, "client name"},
		{"no name", []string{"add", "--redirect-uri", cb}, "exactly one argument"},
		{"no redirect URI for the code flow", []string{"add", "web"}, "--redirect-uri is required"},
		{"relative redirect URI", []string{"add", "web", "--redirect-uri", "/cb"}, "--redirect-uri"},
		{"http on a public host", []string{"add", "web", "--redirect-uri", "http://app.example.com/cb"}, "must use https"},
		{"custom scheme", []string{"add", "web", "--redirect-uri", "com.example.app:/cb"}, "--redirect-uri"},
		{"fragment", []string{"add", "web", "--redirect-uri", cb + "#x"}, "fragment"},
		{"user info", []string{"add", "web", "--redirect-uri", "https://u:p@app.example.com/cb"}, "user info"},
		{"not canonical", []string{"add", "web", "--redirect-uri", "HTTPS://app.example.com/cb"}, "canonically"},
		{"control character", []string{"add", "web", "--redirect-uri", cb + "\n"}, "control characters"},
		{"post-logout URI over http", []string{"add", "web", "--redirect-uri", cb, "--post-logout-redirect-uri", "http://app.example.com/"}, "--post-logout-redirect-uri"},
		{"back-channel URI over http", []string{"add", "web", "--redirect-uri", cb, "--backchannel-logout-uri", "http://app.example.com/bc"}, "--backchannel-logout-uri"},
		{"unknown grant type", []string{"add", "web", "--redirect-uri", cb, "--grant-type", "implicit"}, "--grant-type"},
		{"client credentials", []string{"add", "web", "--redirect-uri", cb, "--grant-type", "client_credentials"}, "machine client"},
		{"refresh alone", []string{"add", "web", "--redirect-uri", cb, "--grant-type", "refresh_token"}, "--grant-type refresh_token"},
		{"negative access TTL", []string{"add", "web", "--redirect-uri", cb, "--access-token-ttl", "-1m"}, "--access-token-ttl"},
		{"tiny refresh TTL", []string{"add", "web", "--redirect-uri", cb, "--refresh-token-ttl", "1ms"}, "--refresh-token-ttl"},
		{"TTL in fractions of a second", []string{"add", "web", "--redirect-uri", cb, "--access-token-ttl", "1500ms"}, "--access-token-ttl must be a whole number of seconds"},
		{"not a duration", []string{"add", "web", "--redirect-uri", cb, "--access-token-ttl", "soon"}, "access-token-ttl"},
		{"relative audience", []string{"add", "web", "--redirect-uri", cb, "--audience", "api"}, "--audience"},
		{"scope with a space", []string{"add", "web", "--redirect-uri", cb, "--scope", "a b"}, "--scope"},
		{"display name with a control character", []string{"add", "web", "--redirect-uri", cb, "--display-name", "Web\x1b[2J"}, "--display-name"},
		{"display name with a bidirectional override", []string{"add", "web", "--redirect-uri", cb, "--display-name", "Lap\u202Epotkcab"}, "--display-name"},
		{"host with a bidirectional override", []string{"add", "web", "--redirect-uri", "https://app\u202Eexample.com/cb"}, "U+202E"},
		{"audience with a bidirectional override", []string{"add", "web", "--redirect-uri", cb, "--audience", "https://api\u202E.example.com"}, "U+202E"},
		{"a secret on the command line", []string{"add", "web", "--redirect-uri", cb, "--secret", "s"}, "unknown flag"},
		{"update cannot make an app public", []string{"update", "web", "--public"}, "unknown flag"},
		{"update with no setting", []string{"update", "web"}, "none was given"},
		{"update with a bad URI", []string{"update", "web", "--redirect-uri", "http://app.example.com/cb"}, "--redirect-uri"},
		{"consent revoked without a user", []string{"consents", "revoke", "web"}, "--user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runApps(env, tc.args...)
			if r.code == 0 || !strings.Contains(r.errOut, tc.want) {
				t.Errorf("apps %q: exit %d, want an error with %q:\n%s", tc.args, r.code, tc.want, r.errOut)
			}
		})
	}
}

// TestAppsCommand: an app's whole life, as an operator runs it, on each
// backend: the secret shown once and stored as a digest, every setting
// stored and shown, list flags replaced by update, and every change
// audited without the secret.
func TestAppsCommand(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		ctx := context.Background()

		add := mustApps(t, env, "add", "Neosync", "--display-name", "Neosync",
			"--redirect-uri", "https://neosync.example.com/api/auth/callback/nsauth",
			"--post-logout-redirect-uri", "https://neosync.example.com",
			"--scope", "openid,profile", "--scope", "offline_access",
			"--audience", "https://neosync-api.example.com",
			"--access-token-ttl", "10m", "--refresh-token-ttl", "720h",
			"--backchannel-logout-uri", "https://neosync.example.com/api/auth/backchannel")
		var secret string
		for _, line := range strings.Split(add.out, "\n") {
			if v, ok := strings.CutPrefix(line, "client_secret:"); ok {
				secret = strings.TrimSpace(v)
			}
		}
		if !strings.Contains(add.out, "client_id:     neosync\n") || len(secret) < 43 {
			t.Fatalf("add printed %q", add.out)
		}
		if strings.Contains(add.errOut, secret) || !strings.Contains(add.errOut, "shown only this once") {
			t.Fatalf("standard error: %q", add.errOut)
		}
		a, err := st.ClientByID(ctx, "neosync")
		if err != nil {
			t.Fatal(err)
		}
		if !a.CheckSecret(secret) || a.Public || a.Native || a.ThirdParty {
			t.Fatalf("stored %+v", a)
		}

		public := decodeAppCredentials(t, mustApps(t, env, "add", "desktop", "--public", "--native", "--third-party",
			"--redirect-uri", "http://127.0.0.1/callback", "--grant-type", "authorization_code,device_code", "--json"))
		if public.ClientID != "desktop" || public.ClientSecret != nil {
			t.Errorf("public add --json = %+v", public)
		}

		tests := []struct {
			name string
			args []string
			want string
		}{
			{"name taken by an app", []string{"add", "neosync", "--redirect-uri", "https://x.example.com/cb"}, "taken"},
			{"unknown app shown", []string{"show", "nobody"}, `no app "nobody"`},
			{"unknown app disabled", []string{"disable", "nobody"}, `no app "nobody"`},
			{"public app's secret rotated", []string{"rotate-secret", "desktop"}, "public app"},
			{"code flow left without redirect URI", []string{"update", "neosync", "--redirect-uri", ""}, "--redirect-uri"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if r := runApps(env, tc.args...); r.code == 0 || !strings.Contains(r.errOut, tc.want) {
					t.Errorf("apps %q: exit %d, want %q:\n%s", tc.args, r.code, tc.want, r.errOut)
				}
			})
		}
		t.Run("name taken by a machine client", func(t *testing.T) {
			mustClients(t, env, "add", "deploy")
			if r := runApps(env, "add", "deploy", "--redirect-uri", "https://x.example.com/cb"); r.code == 0 || !strings.Contains(r.errOut, "taken") {
				t.Errorf("exit %d %q", r.code, r.errOut)
			}
			mustClients(t, env, "delete", "deploy")
		})

		show := func(name string) shownApp {
			t.Helper()
			r := mustApps(t, env, "show", name, "--json")
			var s shownApp
			if err := json.Unmarshal([]byte(r.out), &s); err != nil {
				t.Fatalf("show --json %q: %v", r.out, err)
			}
			return s
		}
		got := show("neosync")
		want := shownApp{ClientID: "neosync", DisplayName: "Neosync",
			RedirectURIs:           []string{"https://neosync.example.com/api/auth/callback/nsauth"},
			PostLogoutRedirectURIs: []string{"https://neosync.example.com"},
			Scopes:                 []string{"openid", "profile", "offline_access"}, GrantTypes: []string{"authorization_code", "refresh_token"},
			Audiences: []string{"https://neosync-api.example.com"}, AccessTokenTTL: "10m0s", RefreshTokenTTL: "720h0m0s",
			BackchannelLogoutURI: "https://neosync.example.com/api/auth/backchannel"}
		if !sameApp(got, want) {
			t.Errorf("show --json:\n got %+v\nwant %+v", got, want)
		}
		if d := show("desktop"); !d.Public || !d.Native || !d.ThirdParty || !slices.Equal(d.GrantTypes, []string{"authorization_code", "urn:ietf:params:oauth:grant-type:device_code"}) {
			t.Errorf("desktop: %+v", d)
		}
		text := mustApps(t, env, "show", "neosync").out
		for _, w := range []string{"client_id:", "neosync", "https://neosync-api.example.com", "10m0s", "confidential"} {
			if !strings.Contains(text, w) {
				t.Errorf("show does not say %q:\n%s", w, text)
			}
		}

		// update replaces the lists it is given and keeps everything else.
		mustApps(t, env, "update", "neosync", "--redirect-uri", "https://neosync.example.com/cb1", "--redirect-uri", "https://neosync.example.com/cb2",
			"--audience", "https://a.example.com", "--audience", "https://b.example.com", "--third-party", "--access-token-ttl", "0")
		want.RedirectURIs = []string{"https://neosync.example.com/cb1", "https://neosync.example.com/cb2"}
		want.Audiences = []string{"https://a.example.com", "https://b.example.com"}
		want.ThirdParty, want.AccessTokenTTL = true, ""
		if got := show("neosync"); !sameApp(got, want) {
			t.Errorf("after update:\n got %+v\nwant %+v", got, want)
		}
		if a, _ := st.ClientByID(ctx, "neosync"); !a.CheckSecret(secret) {
			t.Error("update changed the secret")
		}

		list := mustApps(t, env, "list").out
		if !regexpLine(list, "desktop", "enabled", "public,native,third-party") || !regexpLine(list, "neosync", "enabled", "confidential,third-party", "Neosync", "2") {
			t.Errorf("list:\n%s", list)
		}
		var listed []shownApp
		if err := json.Unmarshal([]byte(mustApps(t, env, "list", "--json").out), &listed); err != nil || len(listed) != 2 || listed[0].ClientID != "desktop" || listed[1].ClientID != "neosync" {
			t.Errorf("list --json = %+v, %v", listed, err)
		}

		mustApps(t, env, "disable", "neosync")
		if a, _ := st.ClientByID(ctx, "neosync"); !a.Disabled() || !show("neosync").Disabled {
			t.Error("not disabled")
		}
		mustApps(t, env, "enable", "neosync")
		if a, _ := st.ClientByID(ctx, "neosync"); a.Disabled() {
			t.Error("still disabled")
		}

		rotated := decodeAppCredentials(t, mustApps(t, env, "rotate-secret", "neosync", "--json"))
		if a, _ := st.ClientByID(ctx, "neosync"); rotated.ClientSecret == nil || a.CheckSecret(secret) || !a.CheckSecret(*rotated.ClientSecret) {
			t.Errorf("rotate-secret: %+v", rotated)
		}

		for _, out := range []string{mustApps(t, env, "list").out, mustApps(t, env, "list", "--json").out, mustApps(t, env, "show", "neosync", "--json").out} {
			if strings.Contains(out, secret) || strings.Contains(out, *rotated.ClientSecret) {
				t.Fatalf("a listing printed a secret:\n%s", out)
			}
		}

		mustApps(t, env, "delete", "desktop")
		if _, err := st.ClientByID(ctx, "desktop"); err == nil {
			t.Error("desktop still there after delete")
		}

		events, err := st.AuditEvents(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var trail []string
		for _, e := range events {
			if !strings.HasPrefix(string(e.Type), "app.") {
				continue
			}
			trail = append(trail, string(e.Type)+" "+e.ClientID)
			if e.Actor != audit.OSUser() {
				t.Errorf("%s: actor %q", e.Type, e.Actor)
			}
			j, _ := json.Marshal(e)
			if strings.Contains(string(j), secret) || strings.Contains(string(j), *rotated.ClientSecret) {
				t.Errorf("an audit record holds a secret: %s", j)
			}
		}
		wantTrail := []string{"app.added neosync", "app.added desktop", "app.updated neosync", "app.disabled neosync", "app.enabled neosync",
			"app.secret_rotated neosync", "app.deleted desktop"}
		if !slices.Equal(trail, wantTrail) {
			t.Errorf("events:\n  %s\nwant:\n  %s", strings.Join(trail, "\n  "), strings.Join(wantTrail, "\n  "))
		}
	})
}

func sameApp(a, b shownApp) bool {
	eq := func(x, y []string) bool { return slices.Equal(x, y) || len(x) == 0 && len(y) == 0 }
	return a.ClientID == b.ClientID && a.DisplayName == b.DisplayName && a.Disabled == b.Disabled && a.Public == b.Public &&
		a.Native == b.Native && a.ThirdParty == b.ThirdParty && eq(a.RedirectURIs, b.RedirectURIs) &&
		eq(a.PostLogoutRedirectURIs, b.PostLogoutRedirectURIs) && eq(a.Scopes, b.Scopes) && eq(a.GrantTypes, b.GrantTypes) &&
		eq(a.Audiences, b.Audiences) && a.AccessTokenTTL == b.AccessTokenTTL && a.RefreshTokenTTL == b.RefreshTokenTTL &&
		a.BackchannelLogoutURI == b.BackchannelLogoutURI
}

// TestAppsCommandKeepsTheBrokersApp: nsauth-cli, whose secret the server
// keeps, can be updated but neither deleted nor given a new secret.
func TestAppsCommandKeepsTheBrokersApp(t *testing.T) {
	t.Parallel()
	env, st := usersEnv(t, storetest.Backend{Name: "sqlite"})
	// The server bootstraps with its secret key, which the commands do
	// not need.
	keyed, err := store.OpenSQLite(context.Background(), env["NSAUTH_DATA_DIR"], store.Options{Keyring: storetest.Keyring()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = issuer.Bootstrap(context.Background(), keyed, issuer.BootstrapConfig{AdminPassword: "correct-horse-battery"})
	_ = keyed.Close()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"delete", []string{"delete", "nsauth-cli"}, "cannot be deleted"},
		{"rotate-secret", []string{"rotate-secret", "nsauth-cli"}, "cannot be given another secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := runApps(env, tc.args...); r.code == 0 || !strings.Contains(r.errOut, tc.want) {
				t.Errorf("apps %q: exit %d, want %q:\n%s", tc.args, r.code, tc.want, r.errOut)
			}
		})
	}
	if out := mustApps(t, env, "show", "nsauth-cli").out; !strings.Contains(out, "any loopback URI") {
		t.Errorf("show nsauth-cli does not say whose redirect URIs it has:\n%s", out)
	}
	mustApps(t, env, "update", "nsauth-cli", "--access-token-ttl", "5m")
	if a, err := st.ClientByID(context.Background(), "nsauth-cli"); err != nil || a.AccessTokenTTL != 5*time.Minute {
		t.Errorf("nsauth-cli after update: %+v, %v", a, err)
	}
}

// TestAppsCommandWithServe: an app added with nsauth apps authenticates at
// a running server's revocation endpoint with the secret printed once, and
// disable, enable, rotate-secret and delete take effect at once; no secret
// reaches the server's log.
func TestAppsCommandWithServe(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env := storeEnv(t, b)
		s := startBuiltinServe(t, env, nil)
		s.waitReady(t)
		created := decodeAppCredentials(t, mustApps(t, env, "add", "web", "--redirect-uri", "https://web.example.com/cb", "--json"))
		if created.ClientSecret == nil {
			t.Fatal("no secret for a confidential app")
		}
		revoke := func(secret string) int {
			t.Helper()
			req, _ := http.NewRequest(http.MethodPost, s.issuer+"/oauth/revoke", strings.NewReader(url.Values{"token": {"not-a-token"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(url.QueryEscape(created.ClientID), url.QueryEscape(secret))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			return resp.StatusCode
		}
		first := *created.ClientSecret
		var rotated string
		steps := []struct {
			name    string
			command []string
			secret  func() string
			want    int
		}{
			{"added", nil, func() string { return first }, http.StatusOK},
			{"wrong secret", nil, func() string { return first + "x" }, http.StatusUnauthorized},
			{"disabled", []string{"disable", "web"}, func() string { return first }, http.StatusUnauthorized},
			{"enabled", []string{"enable", "web"}, func() string { return first }, http.StatusOK},
			{"old secret after rotation", []string{"rotate-secret", "web", "--json"}, func() string { return first }, http.StatusUnauthorized},
			{"new secret after rotation", nil, func() string { return rotated }, http.StatusOK},
			{"deleted", []string{"delete", "web"}, func() string { return rotated }, http.StatusUnauthorized},
		}
		for _, step := range steps {
			if step.command != nil {
				r := mustApps(t, env, step.command...)
				if step.command[0] == "rotate-secret" {
					c := decodeAppCredentials(t, r)
					if c.ClientSecret == nil {
						t.Fatal("rotate-secret printed no secret")
					}
					rotated = *c.ClientSecret
				}
			}
			if got := revoke(step.secret()); got != step.want {
				t.Errorf("%s: the revocation endpoint answered HTTP %d, want %d", step.name, got, step.want)
			}
		}
		for _, secret := range []string{first, rotated} {
			if strings.Contains(s.errOut.String(), secret) {
				t.Error("an app's secret appears in the server's log")
			}
		}
	})
}
