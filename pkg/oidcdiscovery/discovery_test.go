package oidcdiscovery_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nsauth/nsauth/pkg/noredirect"
	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// leakBait stands for a provider's text that no error may repeat.
const leakBait = "SECRET-PAGE-TEXT"

// serve starts a server answering the discovery path with status and body,
// where {base} stands for the server's URL, and returns that URL and a
// client that trusts the server and follows no redirect.
func serve(t *testing.T, tls bool, status int, contentType, body string) (string, *http.Client) {
	t.Helper()
	var base string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		if status/100 == 3 {
			http.Redirect(w, r, "https://elsewhere.example/", status)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		fmt.Fprint(w, strings.ReplaceAll(body, "{base}", base))
	})
	srv := httptest.NewUnstartedServer(h)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	base = srv.URL
	client := srv.Client()
	client.CheckRedirect = noredirect.CheckRedirect
	return base, client
}

const jsonType = "application/json"

func TestDiscover(t *testing.T) {
	t.Parallel()
	base, _ := serve(t, false, 200, jsonType, `{
		"issuer": "{base}",
		"authorization_endpoint": "{base}/authorize",
		"token_endpoint": "{base}/token",
		"jwks_uri": "{base}/jwks",
		"userinfo_endpoint": null,
		"revocation_endpoint": "/relative/is/dropped",
		"introspection_endpoint": "{base}/introspect",
		"token_endpoint_auth_methods_supported": ["client_secret_post"],
		"code_challenge_methods_supported": ["S256"],
		"id_token_signing_alg_values_supported": ["RS256", "none"],
		"authorization_response_iss_parameter_supported": true,
		"unknown_member": {"ignored": true}
	}`)
	md, err := oidcdiscovery.Discover(context.Background(), base, oidcdiscovery.Options{
		Require: []string{oidcdiscovery.TokenEndpoint, oidcdiscovery.JWKSURI},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := oidcdiscovery.ProviderMetadata{
		Issuer:                                     base,
		AuthorizationEndpoint:                      base + "/authorize",
		TokenEndpoint:                              base + "/token",
		JWKSURI:                                    base + "/jwks",
		IntrospectionEndpoint:                      base + "/introspect",
		TokenEndpointAuthMethodsSupported:          []string{"client_secret_post"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		IDTokenSigningAlgValuesSupported:           []string{"RS256", "none"},
		AuthorizationResponseIssParameterSupported: true,
	}
	if fmt.Sprint(*md) != fmt.Sprint(want) {
		t.Fatalf("Discover =\n%+v\nwant\n%+v", *md, want)
	}
}

func TestDiscoverFromBaseURL(t *testing.T) {
	t.Parallel()
	const issuer = "https://auth.example.com"
	base, _ := serve(t, false, 200, jsonType, `{"issuer":"`+issuer+`","jwks_uri":"https://auth.example.com/jwks"}`)
	md, err := oidcdiscovery.Discover(context.Background(), issuer, oidcdiscovery.Options{BaseURL: base, Require: []string{oidcdiscovery.JWKSURI}})
	if err != nil {
		t.Fatal(err)
	}
	if md.Issuer != issuer || md.JWKSURI != issuer+"/jwks" {
		t.Fatalf("Discover = %+v", md)
	}
}

func TestDiscoverRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		tls         bool
		status      int
		contentType string
		body        string
		issuer      string // {base} is replaced; "" means {base}
		require     []string
		want        string // part of the error
		unavailable bool
		mismatch    bool
		insecure    bool
	}{
		{name: "issuer mismatch", status: 200, contentType: jsonType, body: `{"issuer":"https://evil.example"}`,
			want: `names the issuer "https://evil.example"`, mismatch: true},
		{name: "issuer differs by a trailing slash", status: 200, contentType: jsonType, body: `{"issuer":"{base}"}`,
			issuer: "{base}/", want: "names the issuer", mismatch: true},
		{name: "issuer repeated", status: 200, contentType: jsonType, body: `{"issuer":"https://evil.example","issuer":"{base}"}`, want: "not a JSON object"},
		{name: "issuer repeated in another case", status: 200, contentType: jsonType, body: `{"Issuer":"https://evil.example","issuer":"{base}"}`, want: "not a JSON object"},
		{name: "no issuer", status: 200, contentType: jsonType, body: `{"jwks_uri":"{base}/jwks"}`, want: "names no issuer", mismatch: true},
		{name: "a null issuer", status: 200, contentType: jsonType, body: `{"issuer":null}`, want: "names no issuer", mismatch: true},
		{name: "issuer not a string", status: 200, contentType: jsonType, body: `{"issuer":42}`, want: `"issuer" is not a string`},
		{name: "endpoint not a string", status: 200, contentType: jsonType, body: `{"issuer":"{base}","token_endpoint":["{base}/t"]}`, want: `"token_endpoint" is not a string`},
		{name: "list not a list", status: 200, contentType: jsonType, body: `{"issuer":"{base}","id_token_signing_alg_values_supported":"RS256"}`, want: "not a list of strings"},
		{name: "iss parameter flag not a boolean", status: 200, contentType: jsonType, body: `{"issuer":"{base}","authorization_response_iss_parameter_supported":"true"}`, want: "is not a boolean"},
		{name: "HTML", status: 200, contentType: "text/html; charset=utf-8", body: "<html>" + leakBait + "</html>",
			want: `not a discovery document: not a JSON object (Content-Type "text/html")`},
		{name: "a JSON array", status: 200, contentType: jsonType, body: `["{base}"]`, want: "not a JSON object"},
		{name: "data after the object", status: 200, contentType: jsonType, body: `{"issuer":"{base}"}{}`, want: "not a JSON object"},
		{name: "required endpoint missing", status: 200, contentType: jsonType, body: `{"issuer":"{base}"}`,
			require: []string{oidcdiscovery.JWKSURI}, want: "jwks_uri is missing"},
		{name: "required endpoint relative", status: 200, contentType: jsonType, body: `{"issuer":"{base}","jwks_uri":"/jwks"}`,
			require: []string{oidcdiscovery.JWKSURI}, want: "not an absolute http(s) URL"},
		{name: "required endpoint with user info", status: 200, contentType: jsonType, body: `{"issuer":"{base}","token_endpoint":"https://u:` + leakBait + `@x.example/t"}`,
			require: []string{oidcdiscovery.TokenEndpoint}, want: "user info"},
		{name: "required endpoint with a fragment", status: 200, contentType: jsonType, body: `{"issuer":"{base}","token_endpoint":"{base}/t#x"}`,
			require: []string{oidcdiscovery.TokenEndpoint}, want: "fragment"},
		{name: "unknown required name", status: 200, contentType: jsonType, body: `{"issuer":"{base}"}`,
			require: []string{"jwks"}, want: "not an endpoint"},
		{name: "required endpoint downgraded to http", tls: true, status: 200, contentType: jsonType,
			body: `{"issuer":"{base}","jwks_uri":"http://keys.example/jwks"}`, require: []string{oidcdiscovery.JWKSURI}, want: `jwks_uri "http://keys.example/jwks" is not https`, insecure: true},
		{name: "optional endpoint downgraded to http", tls: true, status: 200, contentType: jsonType,
			body: `{"issuer":"{base}","jwks_uri":"{base}/jwks","userinfo_endpoint":"http://x.example/userinfo"}`, want: "userinfo_endpoint", insecure: true},
		{name: "too large", status: 200, contentType: jsonType,
			body: `{"issuer":"{base}","padding":"` + strings.Repeat("x", 1<<20) + `"}`, want: "larger than"},
		{name: "not found", status: 404, contentType: "text/plain", body: leakBait, want: "HTTP 404"},
		{name: "redirect", status: 302, want: "HTTP 302, a redirect, which is not followed"},
		{name: "permanent redirect", status: 308, want: "HTTP 308, a redirect, which is not followed"},
		{name: "server error", status: 500, contentType: "text/plain", body: leakBait, want: "HTTP 500", unavailable: true},
		{name: "rate limited", status: 429, contentType: "text/plain", body: leakBait, want: "HTTP 429", unavailable: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base, client := serve(t, tc.tls, tc.status, tc.contentType, tc.body)
			issuer := strings.ReplaceAll(tc.issuer, "{base}", base)
			if issuer == "" {
				issuer = base
			}
			_, err := oidcdiscovery.Discover(context.Background(), issuer, oidcdiscovery.Options{HTTPClient: client, Require: tc.require})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Discover = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), leakBait) {
				t.Fatalf("the error quotes the provider's text: %v", err)
			}
			if got := errors.Is(err, oidcdiscovery.ErrUnavailable); got != tc.unavailable {
				t.Errorf("errors.Is(ErrUnavailable) = %v, want %v", got, tc.unavailable)
			}
			var mm *oidcdiscovery.IssuerMismatchError
			if got := errors.As(err, &mm) && errors.Is(err, oidcdiscovery.ErrIssuerMismatch); got != tc.mismatch {
				t.Errorf("IssuerMismatchError: %v, want %v", got, tc.mismatch)
			}
			if got := errors.Is(err, oidcdiscovery.ErrInsecureEndpoint); got != tc.insecure {
				t.Errorf("errors.Is(ErrInsecureEndpoint) = %v, want %v", got, tc.insecure)
			}
		})
	}
}

func TestDiscoverRefusesBadIssuerURLsWithoutARequest(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name, issuer string
		opts         oidcdiscovery.Options
	}{
		{"empty", "", oidcdiscovery.Options{}},
		{"relative", "auth.example.com", oidcdiscovery.Options{}},
		{"another scheme", "ftp://" + strings.TrimPrefix(srv.URL, "http://"), oidcdiscovery.Options{}},
		{"user info", "http://u:p@" + strings.TrimPrefix(srv.URL, "http://"), oidcdiscovery.Options{}},
		{"a query", srv.URL + "?x=1", oidcdiscovery.Options{}},
		{"a fragment", srv.URL + "#x", oidcdiscovery.Options{}},
		{"a bad base URL", srv.URL, oidcdiscovery.Options{BaseURL: "/relative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := oidcdiscovery.Discover(context.Background(), tc.issuer, tc.opts); err == nil || errors.Is(err, oidcdiscovery.ErrUnavailable) {
				t.Fatalf("Discover(%q) = %v, want a configuration error", tc.issuer, err)
			}
		})
	}
	t.Cleanup(func() {
		if n := requests.Load(); n != 0 {
			t.Errorf("%d requests made for bad issuer URLs", n)
		}
	})
}

func TestDiscoverUnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL
	srv.Close()
	_, err := oidcdiscovery.Discover(context.Background(), dead, oidcdiscovery.Options{})
	if !errors.Is(err, oidcdiscovery.ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Discover = %v, want ErrUnavailable saying the connection was refused", err)
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, base, want string }{
		{"root", "https://a.example", "https://a.example/.well-known/openid-configuration"},
		{"trailing slash", "https://a.example/", "https://a.example/.well-known/openid-configuration"},
		{"path", "https://a.example/realms/x", "https://a.example/realms/x/.well-known/openid-configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := oidcdiscovery.URL(tc.base); got != tc.want {
				t.Errorf("URL(%q) = %q, want %q", tc.base, got, tc.want)
			}
		})
	}
}

func TestCheckEndpointURL(t *testing.T) {
	t.Parallel()
	const httpsIssuer, httpIssuer = "https://auth.example.com", "http://127.0.0.1:8080"
	for _, tc := range []struct {
		name, raw, issuer string
		want              string // part of the error; "" for none
		insecure          bool   // the error wraps ErrInsecureEndpoint
	}{
		{name: "https", raw: "https://auth.example.com/token", issuer: httpsIssuer},
		{name: "https under an http issuer", raw: "https://auth.example.com/token", issuer: httpIssuer},
		{name: "http under an http issuer", raw: "http://127.0.0.1:8080/token", issuer: httpIssuer},
		{name: "http without an issuer", raw: "http://auth.example.com/token"},
		{name: "a query is allowed", raw: "https://auth.example.com/token?tenant=a", issuer: httpsIssuer},
		{name: "http under an https issuer", raw: "http://auth.example.com/token", issuer: httpsIssuer, want: "not https", insecure: true},
		{name: "HTTP in capitals under an https issuer", raw: "HTTP://auth.example.com/token", issuer: httpsIssuer, want: "not https", insecure: true},
		{name: "empty", raw: "", issuer: httpsIssuer, want: "is missing"},
		{name: "relative", raw: "/token", want: "not an absolute http(s) URL"},
		{name: "another scheme", raw: "ftp://auth.example.com/token", issuer: httpsIssuer, want: "not an absolute http(s) URL"},
		{name: "no host", raw: "https:///token", want: "not an absolute http(s) URL"},
		{name: "user info", raw: "https://u:" + leakBait + "@auth.example.com/token", want: "user info"},
		{name: "a fragment", raw: "https://auth.example.com/token#x", want: "fragment"},
		{name: "an empty fragment", raw: "https://auth.example.com/token#", want: "fragment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := oidcdiscovery.CheckEndpointURL(tc.raw, tc.issuer)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckEndpointURL(%q, %q) = %v", tc.raw, tc.issuer, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckEndpointURL(%q, %q) = %v, want an error about %q", tc.raw, tc.issuer, err, tc.want)
			case err != nil && strings.Contains(err.Error(), leakBait):
				t.Fatalf("CheckEndpointURL quotes user info: %v", err)
			case errors.Is(err, oidcdiscovery.ErrInsecureEndpoint) != tc.insecure:
				t.Fatalf("CheckEndpointURL(%q, %q) = %v; want ErrInsecureEndpoint: %v", tc.raw, tc.issuer, err, tc.insecure)
			}
		})
	}
}
