package issuer_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/pkg/issuerurl"
)

func TestDiscoveryIsStatic(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"plain", nil},
		{"other Host", http.Header{"Host": {"evil.example.com"}}},
		{"forwarded headers", http.Header{"X-Forwarded-Host": {"evil.example.com"}, "X-Forwarded-Proto": {"https"}, "Forwarded": {"host=evil.example.com;proto=https"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(http.MethodGet, h.url+"/.well-known/openid-configuration", nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			if hv := tc.header.Get("Host"); hv != "" {
				req.Host = hv
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var d map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
				t.Fatal(err)
			}
			if d["issuer"] != h.url {
				t.Fatalf("issuer = %v, want %s", d["issuer"], h.url)
			}
			for _, k := range []string{"authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint", "revocation_endpoint", "introspection_endpoint", "end_session_endpoint"} {
				v, _ := d[k].(string)
				if !strings.HasPrefix(v, h.url+"/") {
					t.Errorf("%s = %q, not under the issuer", k, v)
				}
			}
		})
	}
}

func TestDiscoveryAdvertisesWhatIsSupported(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	_, body := h.get("/.well-known/openid-configuration", nil)
	var d struct {
		ResponseTypes []string `json:"response_types_supported"`
		GrantTypes    []string `json:"grant_types_supported"`
		PKCE          []string `json:"code_challenge_methods_supported"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
		Algs          []string `json:"id_token_signing_alg_values_supported"`
		Scopes        []string `json:"scopes_supported"`
		Device        string   `json:"device_authorization_endpoint"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want []string
	}{
		{"response types", d.ResponseTypes, []string{"code"}},
		{"grant types", d.GrantTypes, []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code", "client_credentials",
			"urn:ietf:params:oauth:grant-type:token-exchange"}},
		{"PKCE methods", d.PKCE, []string{"S256"}},
		{"token auth methods", d.AuthMethods, []string{"client_secret_basic", "client_secret_post", "none"}},
		{"signing algorithms", d.Algs, []string{"RS256"}},
		{"scopes", d.Scopes, []string{"openid", "profile", "email", "offline_access", "groups"}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if want := h.url + "/oauth/device_authorization"; d.Device != want {
		t.Errorf("device authorization endpoint = %q, want %q", d.Device, want)
	}
}

func TestJWKSHasOnlyPublicKeys(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	resp, body := h.get("/keys", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys, want 1", len(set.Keys))
	}
	k := set.Keys[0]
	if k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" || k["kid"] == "" {
		t.Fatalf("key = %v", k)
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, ok := k[private]; ok {
			t.Fatalf("JWKS publishes the private parameter %q", private)
		}
	}
}

func TestCheckIssuerURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		raw       string
		allowHTTP bool
		ok        bool
	}{
		{"https", "https://auth.example.com", false, true},
		{"https with port", "https://auth.example.com:8443", false, true},
		{"http loopback", "http://127.0.0.1:8080", false, true},
		{"http localhost", "http://localhost:8080", false, true},
		{"http IPv6 loopback", "http://[::1]:8080", false, true},
		{"http elsewhere", "http://auth.example.com", false, false},
		{"http elsewhere, opted in", "http://auth.example.com", true, true},
		{"path", "https://auth.example.com/nsauth", false, false},
		{"trailing slash", "https://auth.example.com/", false, false},
		{"query", "https://auth.example.com?a=b", false, false},
		{"fragment", "https://auth.example.com#x", false, false},
		{"user info", "https://u:p@auth.example.com", false, false},
		{"other scheme", "ftp://auth.example.com", false, false},
		{"relative", "auth.example.com", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := issuerurl.Check(tc.raw, issuerurl.Options{InsecureAllowHTTP: tc.allowHTTP})
			if (err == nil) != tc.ok {
				t.Fatalf("issuerurl.Check(%q) = %v, want ok=%v", tc.raw, err, tc.ok)
			}
		})
	}
}
