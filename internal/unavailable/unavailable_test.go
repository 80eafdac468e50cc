package unavailable_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

const (
	adminPassword = "unavailable-admin-password"
	redirectURI   = "http://127.0.0.1:4242/api/auth/callback"
	// issuerURL is never connected to: the server reaches its provider in
	// process, and the test's browser is pointed at the server.
	issuerURL = "http://127.0.0.1:1"
	// What the server says (internal/adminservice, internal/issuer).
	adminMessage = "cannot reach its database"
	pageMessage  = "cannot reach its database right now"
)

// answer is what a call got: a Connect code, or an HTTP status with its
// headers and body.
type answer struct {
	code   connect.Code // 0: OK, or an HTTP call
	msg    string
	status int
	header http.Header
	body   string
}

// TestDatabaseUnreachable: a server on PostgreSQL whose connections a proxy
// cuts (and refuses while cut) answers, at each edge, that it cannot reach
// its database and the caller should retry: the admin API Unavailable with
// a message saying so, never Internal; the token endpoint HTTP 503 with
// Retry-After and an RFC 6749 body whose error is temporarily_unavailable,
// never 500; the login page's post HTTP 503 with a page saying to try
// again shortly. Once the proxy forwards again, every one of the same
// calls succeeds, without a restart.
func TestDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	dbURL, proxy := storetest.PostgresBehindProxy(t)
	s := servetest.Start(t, servetest.Options{
		Env: map[string]string{
			"NSAUTH_DATABASE_URL":   dbURL,
			"NSAUTH_SECRET_KEY":     seal.GenerateKey(),
			"NSAUTH_ADMIN_PASSWORD": adminPassword,
		},
		Args: []string{"--issuer", issuerURL, "--rate-limit", "0"},
	})
	ctx := context.Background()
	server, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, s.URL)
	admin := adminv1connect.NewAdminServiceClient(http.DefaultClient, s.URL)
	browser := issuertest.NewBrowser(t)
	browser.Rewrite = func(u *url.URL) { u.Host = server.Host }
	tok := login(t, api, browser, adminPassword)
	bearer := func(req connect.AnyRequest) {
		req.Header().Set("Authorization", "Bearer "+tok.GetAccessToken())
	}
	mreq := connect.NewRequest(&adminv1.CreateMachineClientRequest{Name: "unavailable-machine"})
	bearer(mreq)
	mc, err := admin.CreateMachineClient(ctx, mreq)
	if err != nil {
		t.Fatalf("CreateMachineClient: %v", err)
	}
	machineID, machineSecret := mc.Msg.GetClient().GetId(), mc.Msg.GetClientSecret()
	// A login page opened before the outage, posted during it.
	authz := authorizeURL(t, api, oauth2.GenerateVerifier())
	loginPage := browser.Open(t, authz)
	if loginPage.Response.StatusCode != http.StatusOK || loginPage.Form.Get("authRequestID") == "" {
		t.Fatalf("authorize did not lead to the login form: HTTP %d\n%s", loginPage.Response.StatusCode, loginPage.Body)
	}

	adminCall := func(f func(context.Context) error) answer {
		if err := f(ctx); err != nil {
			return answer{code: connect.CodeOf(err), msg: errMessage(err)}
		}
		return answer{}
	}
	cases := []struct {
		name string
		call func(t *testing.T) answer
		// down checks the answer while the database is cut; up, once back.
		down, up func(t *testing.T, a answer)
	}{
		{
			name: "admin ListUsers",
			call: func(t *testing.T) answer {
				return adminCall(func(ctx context.Context) error {
					req := connect.NewRequest(&adminv1.ListUsersRequest{})
					bearer(req)
					_, err := admin.ListUsers(ctx, req)
					return err
				})
			},
			down: wantUnavailable, up: wantOK,
		},
		{
			name: "admin CreateUser",
			call: func(t *testing.T) answer {
				return adminCall(func(ctx context.Context) error {
					req := connect.NewRequest(&adminv1.CreateUserRequest{Username: "unavailable-user", Password: "unavailable-user-password"})
					bearer(req)
					_, err := admin.CreateUser(ctx, req)
					if connect.CodeOf(err) == connect.CodeAlreadyExists {
						return nil
					}
					return err
				})
			},
			down: wantUnavailable, up: wantOK,
		},
		{
			name: "token endpoint, client credentials",
			call: func(t *testing.T) answer {
				req, err := http.NewRequest(http.MethodPost, s.URL+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(url.QueryEscape(machineID), url.QueryEscape(machineSecret))
				return do(t, req)
			},
			down: func(t *testing.T, a answer) {
				t.Helper()
				var body struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
				}
				if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" ||
					!strings.HasPrefix(a.header.Get("Content-Type"), "application/json") || json.Unmarshal([]byte(a.body), &body) != nil ||
					body.Error != "temporarily_unavailable" || !strings.Contains(body.Description, pageMessage) {
					t.Errorf("HTTP %d, Retry-After %q, Content-Type %q, body %s; want 503, Retry-After, temporarily_unavailable saying %q",
						a.status, a.header.Get("Retry-After"), a.header.Get("Content-Type"), a.body, pageMessage)
				}
			},
			up: func(t *testing.T, a answer) {
				t.Helper()
				if a.status != http.StatusOK || !strings.Contains(a.body, "access_token") {
					t.Errorf("HTTP %d %s; want 200 and a token", a.status, a.body)
				}
			},
		},
		{
			name: "login page's post",
			call: func(t *testing.T) answer {
				p := browser.Submit(t, loginPage, "admin", adminPassword)
				return answer{status: p.Response.StatusCode, header: p.Response.Header, body: p.Body}
			},
			down: func(t *testing.T, a answer) {
				t.Helper()
				if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" ||
					!strings.HasPrefix(a.header.Get("Content-Type"), "text/html") || !strings.Contains(a.body, pageMessage) {
					t.Errorf("HTTP %d, Retry-After %q, Content-Type %q; want 503, Retry-After and the page saying %q:\n%s",
						a.status, a.header.Get("Retry-After"), a.header.Get("Content-Type"), pageMessage, a.body)
				}
			},
			up: func(t *testing.T, a answer) {
				t.Helper()
				if a.status != http.StatusSeeOther && a.status != http.StatusFound {
					t.Errorf("HTTP %d; want the redirect back to the client:\n%s", a.status, a.body)
				}
			},
		},
	}

	proxy.Cut()
	for _, tc := range cases {
		t.Run("down/"+tc.name, func(t *testing.T) { tc.down(t, tc.call(t)) })
	}
	proxy.Restore()
	// The pool reconnects at the next call; give it a few tries.
	for _, tc := range cases {
		t.Run("up/"+tc.name, func(t *testing.T) {
			var a answer
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				if a = tc.call(t); a.code != connect.CodeUnavailable && a.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
					break
				}
			}
			tc.up(t, a)
		})
	}
}

func wantUnavailable(t *testing.T, a answer) {
	t.Helper()
	if a.code != connect.CodeUnavailable || !strings.Contains(a.msg, adminMessage) {
		t.Errorf("%v %q; want Unavailable saying %q", a.code, a.msg, adminMessage)
	}
}

func wantOK(t *testing.T, a answer) {
	t.Helper()
	if a.code != 0 {
		t.Errorf("%v %q; want OK", a.code, a.msg)
	}
}

func errMessage(err error) string {
	if ce := new(connect.Error); errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// authorizeURL asks the server for an authorize URL with PKCE.
func authorizeURL(t *testing.T, api mgmtv1alpha1connect.AuthServiceClient, verifier string) string {
	t.Helper()
	challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
	authz, err := api.GetAuthorizeUrl(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: "unavailable", RedirectUri: redirectURI, Scope: "openid offline_access",
		CodeChallenge: &challenge, CodeChallengeMethod: &method,
	}))
	if err != nil {
		t.Fatalf("GetAuthorizeUrl: %v", err)
	}
	return authz.Msg.GetUrl()
}

// login logs the administrator in through the login page.
func login(t *testing.T, api mgmtv1alpha1connect.AuthServiceClient, browser *issuertest.Browser, password string) *mgmtv1alpha1.AccessToken {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	loc := browser.Login(t, authorizeURL(t, api, verifier), "admin", password)
	resp, err := api.LoginCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{
		Code: loc.Query().Get("code"), RedirectUri: redirectURI, CodeVerifier: &verifier,
	}))
	if err != nil {
		t.Fatalf("LoginCli: %v", err)
	}
	return resp.Msg.GetAccessToken()
}
