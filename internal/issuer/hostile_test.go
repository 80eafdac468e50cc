package issuer_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer/issuertest"
)

// TestHostileInputs sends what no honest client sends. Each answer is the
// refusal (or harmless answer) that input gets, with its status and its
// error code or page, never a 5xx, a panic, a hang or a stack trace, and
// the provider keeps working afterwards. A case that were accepted (an
// `alg: none` token at userinfo, a path that escapes the assets) fails
// on its status or its body.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	long := strings.Repeat("A", 60<<10)
	const form = "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name, method, path, body string
		header                   http.Header
		status                   int
		// want is in the body: the OAuth error code, or the page's words.
		want string
		// location, when set, is where the answer redirects.
		location string
	}{
		{"authorize, thousands of scopes", "GET", "/authorize?" + url.Values{"client_id": {h.client}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {strings.Repeat("openid ", 5000)}}.Encode(), "", nil, 302, "", redirectURI + "?error=invalid_request&error_description=a+request+parameter+is+too+long&iss=" + url.QueryEscape(h.url)},
		{"authorize, NUL bytes", "GET", "/authorize?client_id=" + url.QueryEscape(h.client) + "&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2F%00&response_type=code&scope=openid&state=%00%ff", "", nil, 400, `"error":"invalid_request","error_description":"the redirect_uri is not registered for this client"`, ""},
		{"authorize, broken escapes", "GET", "/authorize?client_id=%zz&redirect_uri=%", "", nil, 400, `"error":"invalid_request","error_description":"error parsing form"`, ""},
		{"authorize, huge client id", "GET", "/authorize?client_id=" + long[:4096] + "&redirect_uri=" + url.QueryEscape(redirectURI), "", nil, 400, `"error":"invalid_request","error_description":"the request is too large"`, ""},
		{"authorize, repeated parameters", "GET", "/authorize?client_id=a&client_id=b&redirect_uri=x&redirect_uri=y&response_type=code&response_type=token", "", nil, 400, `"error":"invalid_client","error_description":"unknown client"`, ""},
		{"authorize, bogus max_age", "GET", "/authorize?" + url.Values{"client_id": {h.client}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"}, "max_age": {"-99999999999999999999"}}.Encode(), "", nil, 400, `"error":"invalid_request","error_description":"error decoding form"`, ""},
		{"login, oversized form", "POST", "/login", "authRequestID=x&username=" + long, http.Header{"Content-Type": {form}}, 413, "This form could not be verified", ""},
		{"login, not a form", "POST", "/login", "{\"json\":true}", http.Header{"Content-Type": {"application/json"}}, 403, "This form could not be verified", ""},
		{"login, broken form", "POST", "/login", "%%%&&&=", http.Header{"Content-Type": {form}}, 400, "This form could not be verified", ""},
		{"token, huge refresh token", "POST", "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {long[:10000]}, "client_id": {h.client}, "client_secret": {h.secret}}.Encode(), http.Header{"Content-Type": {form}}, 400, `{"error":"invalid_grant"}`, ""},
		{"token, no grant", "POST", "/oauth/token", "", http.Header{"Content-Type": {form}}, 400, `"error":"invalid_request","error_description":"grant_type missing"`, ""},
		{"token, garbage basic auth", "POST", "/oauth/token", "grant_type=authorization_code&code=x&redirect_uri=y", http.Header{"Content-Type": {form}, "Authorization": {"Basic %%%"}}, 400, `"error":"invalid_request","error_description":"client_id or client_assertion must be provided"`, ""},
		{"token, unescapable basic auth", "POST", "/oauth/token", "grant_type=authorization_code&code=x&redirect_uri=y", http.Header{"Content-Type": {form}, "Authorization": {"Basic JXp6OiV6eg=="}}, 400, `"error":"invalid_client","error_description":"invalid basic auth header"`, ""},
		{"userinfo, garbage token", "GET", "/userinfo", "", http.Header{"Authorization": {"Bearer a.b.c"}}, 401, `{"error":"access_denied","error_description":"access token invalid"}`, ""},
		{"userinfo, alg none token", "GET", "/userinfo", "", http.Header{"Authorization": {"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}}, 401, `{"error":"access_denied","error_description":"access token invalid"}`, ""},
		{"introspect, garbage", "POST", "/oauth/introspect", "token=" + long[:3000], http.Header{"Content-Type": {form}, "Authorization": {"Basic " + basic(h.client, h.secret)}}, 200, `{"active":false}`, ""},
		{"revoke, garbage", "POST", "/oauth/revoke", "token=%00%01", http.Header{"Content-Type": {form}, "Authorization": {"Basic " + basic(h.client, h.secret)}}, 200, "", ""},
		{"end session, garbage hint", "GET", "/oauth/end_session?id_token_hint=x.y.z", "", nil, 400, "This sign-out request is not valid", ""},
		{"keys, wrong method", "DELETE", "/keys", "", nil, 200, `"keys":[{"use":"sig","kty":"RSA"`, ""},
		{"unknown path", "GET", "/../../etc/passwd", "", nil, 307, "", "/etc/passwd"},
		{"asset traversal", "GET", "/assets/../login.go", "", nil, 307, "", "/login.go"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, h.url+tc.path, strings.NewReader(tc.body))
			if err != nil {
				// A case that cannot be expressed as a request tests
				// nothing: it must not quietly skip.
				t.Fatalf("this case is not a request (%v): rewrite or remove it", err)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatalf("the provider dropped the connection (a panic?): %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("HTTP %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if !strings.Contains(string(body), tc.want) {
				t.Errorf("the answer lacks %s: %s", tc.want, body)
			}
			if tc.status == http.StatusOK && tc.want == "" && len(body) != 0 {
				t.Errorf("the answer has a body: %s", body)
			}
			if got := resp.Header.Get("Location"); got != tc.location {
				t.Errorf("Location %q, want %q", got, tc.location)
			}
			if strings.Contains(string(body), "goroutine") || strings.Contains(string(body), ".go:") {
				t.Fatalf("the answer shows internals: %s", body)
			}
			// The key set never holds a private key, whatever the method.
			if strings.HasPrefix(tc.path, "/keys") && strings.Contains(string(body), `"d":`) {
				t.Fatalf("the key set shows a private key: %s", body)
			}
			// A cleaned path that left the tree finds nothing there.
			if tc.status == http.StatusTemporaryRedirect {
				after, err := http.Get(h.url + tc.location)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(after.Body)
				after.Body.Close()
				if after.StatusCode != http.StatusNotFound || strings.Contains(string(b), "package issuer") {
					t.Fatalf("%s: HTTP %d, want 404: %.200s", tc.location, after.StatusCode, b)
				}
			}
		})
	}
	// Still serving.
	h.tokens(nil)
}

func basic(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// TestLoginOriginNull pins the behaviour the browser test depends on:
// "Origin: null" (what browsers send under Referrer-Policy: no-referrer)
// is refused, and the login page's own policy makes browsers send the real
// origin.
func TestLoginOriginNull(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	b := issuertest.NewBrowser(t)
	page := b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
	if got := page.Response.Header.Get("Referrer-Policy"); got != "same-origin" {
		t.Fatalf("login page Referrer-Policy = %q: browsers would send Origin: null", got)
	}
	form := url.Values{"authRequestID": {page.Form.Get("authRequestID")}, "csrf": {page.Form.Get("csrf")}, "username": {"alice"}, "password": {alicePassword}}
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"null", http.StatusForbidden},
		{h.url, http.StatusSeeOther},
	} {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		for _, c := range b.Client.Jar.Cookies(page.URL) {
			req.AddCookie(c)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("Origin %q: HTTP %d, want %d", tc.origin, resp.StatusCode, tc.want)
		}
	}
}
