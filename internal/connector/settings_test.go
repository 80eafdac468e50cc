package connector_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/connector"
)

func TestParseSettingsDefaults(t *testing.T) {
	t.Parallel()
	got, err := connector.ParseSettings("oidc", []byte(`{"issuer":"https://login.microsoftonline.com/tenant/v2.0","client_id":"abc","allowed_domains":["@Example.COM","example.com"]}`))
	if err != nil {
		t.Fatal(err)
	}
	o := got.(*connector.OIDCSettings)
	if !slices.Equal(o.Scopes, []string{"profile", "email"}) || o.GroupsClaim != "groups" || !slices.Equal(o.AllowedDomains, []string{"example.com"}) {
		t.Errorf("OIDC settings = %+v", o)
	}
	got, err = connector.ParseSettings("oidc", []byte(`{"issuer":"http://127.0.0.1:5556","client_id":"abc","scopes":["openid","groups"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if o := got.(*connector.OIDCSettings); !slices.Equal(o.Scopes, []string{"openid", "groups"}) {
		t.Errorf("scopes = %q, want them as given", o.Scopes)
	}

	got, err = connector.ParseSettings("github", []byte(`{"client_id":"x","api_url":"https://ghe.example.com/api/v3/"}`))
	if err != nil {
		t.Fatal(err)
	}
	if g := got.(*connector.GitHubSettings); g.BaseURL != "https://ghe.example.com" || g.APIURL != "https://ghe.example.com/api/v3" {
		t.Errorf("GitHub Enterprise URLs = %q, %q", g.BaseURL, g.APIURL)
	}
	got, err = connector.ParseSettings("github", []byte(`{"client_id":"x","base_url":"https://ghe.example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	if g := got.(*connector.GitHubSettings); g.APIURL != "https://ghe.example.com/api/v3" {
		t.Errorf("API URL = %q", g.APIURL)
	}
	got, err = connector.ParseSettings("github", []byte(`{"client_id":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if g := got.(*connector.GitHubSettings); g.APIURL != "" || g.BaseURL != "" {
		t.Errorf("github.com URLs = %q, %q, want empty", g.BaseURL, g.APIURL)
	}

	got, err = connector.ParseSettings("ldap", []byte(`{"url":"ldaps://ldap.example.com","bind_dn":"cn=nsauth,dc=example,dc=com","user_base_dn":"ou=people,dc=example,dc=com","user_filter":"(&(objectClass=person)(uid=%s))"}`))
	if err != nil {
		t.Fatal(err)
	}
	l := got.(*connector.LDAPSettings)
	if l.UsernameAttr != "uid" || l.IDAttr != "entryUUID" || l.NameAttr != "cn" || l.EmailAttr != "mail" || l.GroupNameAttr != "cn" || l.CheckInterval != "5m0s" {
		t.Errorf("LDAP settings = %+v", l)
	}
}

// TestParseSettingsRefuses: each error names the setting at fault.
func TestParseSettingsRefuses(t *testing.T) {
	t.Parallel()
	const ldapOK = `"url":"ldaps://ldap.example.com","bind_dn":"cn=x","user_base_dn":"dc=x","user_filter":"(uid=%s)"`
	for _, tc := range []struct {
		name, typ, json, want string
	}{
		{"unknown type", "saml", `{}`, `type "saml"`},
		{"not JSON", "oidc", `nope`, "not a JSON object"},
		{"data after", "oidc", `{"issuer":"https://a.example","client_id":"x"} {}`, "data after"},
		{"unknown field", "oidc", `{"issuer":"https://a.example","client_id":"x","client_secret":"s"}`, `"client_secret"`},
		{"wrong type", "oidc", `{"issuer":"https://a.example","client_id":"x","scopes":"email"}`, "scopes"},
		{"too long", "oidc", `{"issuer":"https://a.example","client_id":"` + strings.Repeat("x", 20000) + `"}`, "longer than"},
		{"no issuer", "oidc", `{"client_id":"x"}`, "issuer"},
		{"http issuer", "oidc", `{"issuer":"http://idp.example.com","client_id":"x"}`, "issuer"},
		{"issuer with query", "oidc", `{"issuer":"https://idp.example.com?x=1","client_id":"x"}`, "issuer"},
		{"no client id", "oidc", `{"issuer":"https://idp.example.com"}`, "client_id"},
		{"client id with space", "oidc", `{"issuer":"https://idp.example.com","client_id":"a b"}`, "client_id"},
		{"bad scope", "oidc", `{"issuer":"https://idp.example.com","client_id":"x","scopes":["a\"b"]}`, "scopes"},
		{"bad domain", "oidc", `{"issuer":"https://idp.example.com","client_id":"x","allowed_domains":["*.example.com"]}`, "allowed_domains"},
		{"bare domain", "oidc", `{"issuer":"https://idp.example.com","client_id":"x","allowed_domains":["com"]}`, "allowed_domains"},
		{"bad groups claim", "oidc", `{"issuer":"https://idp.example.com","client_id":"x","groups_claim":"a b"}`, "groups_claim"},
		{"github no client id", "github", `{}`, "client_id"},
		{"github bad org", "github", `{"client_id":"x","org":"-acme"}`, "org"},
		{"github bad team", "github", `{"client_id":"x","teams":["acme"]}`, "teams"},
		{"github team of another org", "github", `{"client_id":"x","org":"acme","teams":["other/devs"]}`, "teams"},
		{"github http api", "github", `{"client_id":"x","api_url":"http://ghe.example.com/api/v3"}`, "api_url"},
		{"github base url with path", "github", `{"client_id":"x","base_url":"https://ghe.example.com/x"}`, "base_url"},
		{"ldap no url", "ldap", `{"bind_dn":"cn=x","user_base_dn":"dc=x","user_filter":"(uid=%s)"}`, "url"},
		{"ldap wrong scheme", "ldap", `{"url":"http://ldap.example.com","bind_dn":"cn=x","user_base_dn":"dc=x","user_filter":"(uid=%s)"}`, "url"},
		{"ldap plain to a remote host", "ldap", `{"url":"ldap://ldap.example.com","bind_dn":"cn=x","user_base_dn":"dc=x","user_filter":"(uid=%s)"}`, "url"},
		{"ldap start_tls with ldaps", "ldap", `{` + ldapOK + `,"start_tls":true}`, "start_tls"},
		{"ldap skip verify and CA", "ldap", `{` + ldapOK + `,"insecure_skip_verify":true,"root_ca_file":"/ca.pem"}`, "insecure_skip_verify"},
		{"ldap no bind dn", "ldap", `{"url":"ldaps://l.example","user_base_dn":"dc=x","user_filter":"(uid=%s)"}`, "bind_dn"},
		{"ldap no user base", "ldap", `{"url":"ldaps://l.example","bind_dn":"cn=x","user_filter":"(uid=%s)"}`, "user_base_dn"},
		{"ldap filter without %s", "ldap", `{"url":"ldaps://l.example","bind_dn":"cn=x","user_base_dn":"dc=x","user_filter":"(uid=alice)"}`, "user_filter"},
		{"ldap filter with two %s", "ldap", `{"url":"ldaps://l.example","bind_dn":"cn=x","user_base_dn":"dc=x","user_filter":"(|(uid=%s)(mail=%s))"}`, "user_filter"},
		{"ldap filter with another verb", "ldap", `{"url":"ldaps://l.example","bind_dn":"cn=x","user_base_dn":"dc=x","user_filter":"(uid=%s%d)"}`, "user_filter"},
		{"ldap unbalanced filter", "ldap", `{"url":"ldaps://l.example","bind_dn":"cn=x","user_base_dn":"dc=x","user_filter":"(&(uid=%s)"}`, "user_filter"},
		{"ldap group filter without base", "ldap", `{` + ldapOK + `,"group_filter":"(member=%s)"}`, "group_base_dn"},
		{"ldap group base without filter", "ldap", `{` + ldapOK + `,"group_base_dn":"ou=groups"}`, "group_filter"},
		{"ldap bad attribute", "ldap", `{` + ldapOK + `,"username_attr":"u id"}`, "username_attr"},
		{"ldap bad interval", "ldap", `{` + ldapOK + `,"check_interval":"forever"}`, "check_interval"},
		{"ldap negative interval", "ldap", `{` + ldapOK + `,"check_interval":"-1m"}`, "check_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := connector.ParseSettings(tc.typ, []byte(tc.json))
			if err == nil {
				t.Fatalf("ParseSettings = %+v, want an error naming %s", got, tc.want)
			}
			if got != nil {
				t.Errorf("ParseSettings returned %+v with its error", got)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

func TestParseSettingsAcceptsLoopbackPlainLDAP(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"ldap://127.0.0.1:3389", "ldap://localhost:389", "ldap://[::1]:389"} {
		js := `{"url":"` + u + `","bind_dn":"cn=x","user_base_dn":"dc=x","user_filter":"(uid=%s)"}`
		if _, err := connector.ParseSettings("ldap", []byte(js)); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	js := `{"url":"ldap://ldap.example.com","insecure_plaintext":true,"bind_dn":"cn=x","user_base_dn":"dc=x","user_filter":"(uid=%s)"}`
	if _, err := connector.ParseSettings("ldap", []byte(js)); err != nil {
		t.Errorf("insecure_plaintext: %v", err)
	}
	js = `{"url":"ldap://ldap.example.com","start_tls":true,"bind_dn":"cn=x","user_base_dn":"dc=x","user_filter":"(uid=%s)"}`
	if _, err := connector.ParseSettings("ldap", []byte(js)); err != nil {
		t.Errorf("start_tls: %v", err)
	}
}

// FuzzParseSettings: hostile settings never panic, and accepted ones are
// a fixed point: encoded again they parse to the same settings (the
// defaults filled in once are not filled in differently the second time).
func FuzzParseSettings(f *testing.F) {
	f.Add("oidc", `{"issuer":"https://idp.example.com/t/v2.0","client_id":"x","scopes":["openid","groups"],"allowed_domains":["@A.example"]}`)
	f.Add("github", `{"client_id":"x","org":"acme","teams":["acme/dev"],"api_url":"https://ghe.example/api/v3/"}`)
	f.Add("ldap", `{"url":"ldap://127.0.0.1:389","bind_dn":"cn=x","user_base_dn":"dc=x","user_filter":"(&(uid=%s)(!(x=y)))","group_base_dn":"ou=g","group_filter":"(member=%s)"}`)
	f.Fuzz(func(t *testing.T, typ, js string) {
		got, err := connector.ParseSettings(typ, []byte(js))
		if err != nil {
			return
		}
		again, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		got2, err := connector.ParseSettings(typ, again)
		if err != nil {
			t.Fatalf("accepted settings %s, encoded again as %s, refused: %v", js, again, err)
		}
		if again2, _ := json.Marshal(got2); string(again2) != string(again) {
			t.Fatalf("not a fixed point: %s then %s", again, again2)
		}
	})
}
