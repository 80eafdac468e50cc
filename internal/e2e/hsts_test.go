package e2e_test

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStrictTransportSecurity: a server reached over https (its own TLS,
// or a TLS-terminating proxy in front of an https issuer) sends
// Strict-Transport-Security on every response: the RPCs, the built-in
// provider's pages, health and metrics; one reached over plain http, or
// told --hsts-max-age 0, sends none.
func TestStrictTransportSecurity(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	tlsArgs := []string{"--tls-cert", certFile, "--tls-key", keyFile}
	builtin := func(extra map[string]string) map[string]string {
		env := map[string]string{"NSAUTH_DATA_DIR": filepath.Join(t.TempDir(), "data"), "NSAUTH_ADMIN_PASSWORD": "admin-password-1"}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		provider bool   // the built-in provider is served
		want     string // the header, or "" for none
	}{
		{"TLS, built-in provider, default max-age: one year", builtin(nil), tlsArgs, true, "max-age=31536000"},
		{"https issuer behind a TLS-terminating proxy", builtin(map[string]string{"NSAUTH_ISSUER": "https://auth.example.test"}), nil, true, "max-age=31536000"},
		{"--hsts-max-age 1h", builtin(map[string]string{"NSAUTH_ISSUER": "https://auth.example.test"}), []string{"--hsts-max-age", "1h"}, true, "max-age=3600"},
		{"NSAUTH_HSTS_MAX_AGE in seconds", builtin(map[string]string{"NSAUTH_ISSUER": "https://auth.example.test", "NSAUTH_HSTS_MAX_AGE": "600"}), nil, true, "max-age=600"},
		{"TLS with authentication disabled", map[string]string{"AUTH_ENABLED": "false"}, tlsArgs, false, "max-age=31536000"},
		{"NSAUTH_HSTS_MAX_AGE=0 turns it off", builtin(map[string]string{"NSAUTH_HSTS_MAX_AGE": "0"}), tlsArgs, true, ""},
		{"plain http on loopback: none", builtin(nil), nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startServe(t, tt.env, tt.args...)
			client := &http.Client{
				Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
				Timeout:       10 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
			check := func(what string, resp *http.Response) {
				t.Helper()
				if got := resp.Header.Get("Strict-Transport-Security"); got != tt.want {
					t.Errorf("%s (HTTP %d): Strict-Transport-Security %q, want %q", what, resp.StatusCode, got, tt.want)
				}
			}
			do := func(method, path, contentType, body string) *http.Response {
				t.Helper()
				req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if contentType != "" {
					req.Header.Set("Content-Type", contentType)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp
			}
			for _, path := range []string{"/healthz", "/readyz", "/metrics", "/no-such-page"} {
				check("GET "+path, do(http.MethodGet, path, "", ""))
			}
			check("the GetAuthStatus RPC", do(http.MethodPost, "/mgmt.v1alpha1.AuthService/GetAuthStatus", "application/json", "{}"))
			check("a refused RPC", do(http.MethodPost, "/mgmt.v1alpha1.AuthService/GetAuthorizeUrl", "application/json", `{"redirectUri":"http://evil.example/cb"}`))
			if !tt.provider {
				return
			}
			for _, path := range []string{"/.well-known/openid-configuration", "/keys", "/authorize"} {
				check("GET "+path, do(http.MethodGet, path, "", ""))
			}
			// The login page, reached as a browser does from an authorize
			// URL the AuthService gives.
			q := url.Values{"client_id": {"nsauth-cli"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {"http://127.0.0.1:4242/cb"}, "state": {"s"}}
			resp := do(http.MethodGet, "/authorize?"+q.Encode(), "", "")
			check("GET /authorize with a request", resp)
			if loc, err := url.Parse(resp.Header.Get("Location")); err == nil && loc.Path != "" {
				login := do(http.MethodGet, loc.RequestURI(), "", "")
				if login.StatusCode != http.StatusOK {
					t.Fatalf("the login page: HTTP %d", login.StatusCode)
				}
				check("the login page", login)
				check("a refused login post", do(http.MethodPost, "/login", "application/x-www-form-urlencoded", "username=admin&password=x"))
			} else {
				t.Fatalf("authorize did not redirect to the login page: HTTP %d", resp.StatusCode)
			}
		})
	}
}
