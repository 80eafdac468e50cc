package contract_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	origpb "github.com/nsauth/nsauth/internal/contract/originalpb/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/contract/originalpb/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/oidctest"
)

// redirectURI is the original Neosync CLI's callback.
const redirectURI = "http://127.0.0.1:4242/api/auth/callback"

// protocol is one wire protocol a Neosync client may speak.
type protocol struct {
	name string
	opts []connect.ClientOption
	// binary protocols keep unknown fields, so the original client sees our
	// additions as unknown bytes; JSON drops them.
	binary bool
}

var protocols = []protocol{
	{name: "connect-json", opts: []connect.ClientOption{connect.WithProtoJSON()}},
	{name: "connect-binary", binary: true},
	{name: "grpc", opts: []connect.ClientOption{connect.WithGRPC()}, binary: true},
	{name: "grpc-web", opts: []connect.ClientOption{connect.WithGRPCWeb()}, binary: true},
}

// h2cClient speaks only HTTP/2 without TLS, as gRPC needs; the other
// protocols work over it too. rt, when not nil, wraps the transport.
func h2cClient(rt func(*http.Transport) http.RoundTripper) *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	var out http.RoundTripper = tr
	if rt != nil {
		out = rt(tr)
	}
	return &http.Client{Transport: out, Timeout: 30 * time.Second}
}

func newClient(baseURL string, p protocol, extra ...connect.ClientOption) mgmtv1alpha1connect.AuthServiceClient {
	return mgmtv1alpha1connect.NewAuthServiceClient(h2cClient(nil), baseURL, append(append([]connect.ClientOption{}, p.opts...), extra...)...)
}

// providerEnv configures `nsauth serve` for the fake provider the way an
// existing Neosync deployment is configured.
func providerEnv(p *oidctest.Provider) map[string]string {
	secrets, _ := json.Marshal(map[string]string{p.ClientID: p.ClientSecret})
	return map[string]string{
		"AUTH_ENABLED":         "true",
		"AUTH_BASEURL":         p.Issuer,
		"AUTH_AUDIENCE":        p.Audience,
		"AUTH_CLI_CLIENT_ID":   p.ClientID,
		"AUTH_CLIENTID_SECRET": string(secrets),
	}
}

func bearer[T any](msg *T, token string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+token)
	return req
}

// secretList collects the tokens a test saw, to check the server's logs.
type secretList struct {
	mu   sync.Mutex
	list []string
}

func (s *secretList) add(v ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, v...)
}

func (s *secretList) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.list...)
}

// TestOriginalClientFullFlow is a Neosync CLI's session, as an unmodified
// client generated from the original proto makes it, over each protocol:
// status, authorize URL, code exchange, token check, refresh, and the
// refusals that follow from rotation and one-time codes.
func TestOriginalClientFullFlow(t *testing.T) {
	t.Parallel()
	fake := oidctest.New(t)
	srv := startServer(t, providerEnv(fake))
	var seen secretList
	t.Cleanup(func() {
		// Runs after every subtest and before the server stops.
		assertClean(t, "server logs", srv.Logs.String(), append(seen.all(), fake.ClientSecret)...)
	})

	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			client := newClient(srv.URL, p)

			status, err := client.GetAuthStatus(ctx, connect.NewRequest(&origpb.GetAuthStatusRequest{}))
			if err != nil || !status.Msg.GetIsEnabled() {
				t.Fatalf("GetAuthStatus = %v, %v; want is_enabled", status, err)
			}

			state := "state-" + p.name
			scope := "openid profile offline_access"
			au, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(&origpb.GetAuthorizeUrlRequest{State: state, RedirectUri: redirectURI, Scope: scope}))
			if err != nil {
				t.Fatalf("GetAuthorizeUrl: %v", err)
			}
			u, err := url.Parse(au.Msg.GetUrl())
			if err != nil {
				t.Fatalf("authorize URL does not parse: %v", err)
			}
			q := u.Query()
			want := map[string]string{"client_id": fake.ClientID, "response_type": "code", "state": state, "redirect_uri": redirectURI, "scope": scope}
			for k, v := range want {
				if got := q.Get(k); got != v {
					t.Errorf("authorize URL %s = %q, want %q", k, got, v)
				}
			}
			if q.Has("code_challenge") {
				t.Errorf("authorize URL carries a PKCE challenge the original client never sent")
			}

			back := fake.Authorize(t, au.Msg.GetUrl())
			if back.Get("state") != state || back.Get("code") == "" {
				t.Fatalf("provider redirect lacks code or state (state ok: %v)", back.Get("state") == state)
			}
			code := back.Get("code")

			login, err := client.LoginCli(ctx, connect.NewRequest(&origpb.LoginCliRequest{Code: code, RedirectUri: redirectURI}))
			if err != nil {
				t.Fatalf("LoginCli: %v", err)
			}
			tok := login.Msg.GetAccessToken()
			seen.add(code, tok.GetAccessToken(), tok.GetRefreshToken(), tok.GetIdToken())
			checkAccessToken(t, "LoginCli", tok)

			check, err := client.CheckToken(ctx, bearer(&origpb.CheckTokenRequest{}, tok.GetAccessToken()))
			if err != nil {
				t.Fatalf("CheckToken with the new access token: %v", err)
			}
			// Our CheckTokenResponse additions reach a binary client as
			// unknown fields it carries along without complaint.
			if unknown := len(check.Msg.ProtoReflect().GetUnknown()); p.binary && unknown == 0 {
				t.Errorf("CheckToken over %s: no unknown fields; nsauth's additions did not arrive", p.name)
			}
			if _, err := client.CheckToken(ctx, connect.NewRequest(&origpb.CheckTokenRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("CheckToken without a token: %v, want Unauthenticated", err)
			}
			if _, err := client.CheckToken(ctx, bearer(&origpb.CheckTokenRequest{}, "not-a-token")); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("CheckToken with garbage: %v, want Unauthenticated", err)
			}

			refreshed, err := client.RefreshCli(ctx, connect.NewRequest(&origpb.RefreshCliRequest{RefreshToken: tok.GetRefreshToken()}))
			if err != nil {
				t.Fatalf("RefreshCli: %v", err)
			}
			tok2 := refreshed.Msg.GetAccessToken()
			seen.add(tok2.GetAccessToken(), tok2.GetRefreshToken(), tok2.GetIdToken())
			checkAccessToken(t, "RefreshCli", tok2)
			if tok2.GetRefreshToken() == tok.GetRefreshToken() {
				t.Errorf("RefreshCli returned the same refresh token; the provider rotates them")
			}
			if _, err := client.CheckToken(ctx, bearer(&origpb.CheckTokenRequest{}, tok2.GetAccessToken())); err != nil {
				t.Errorf("CheckToken with the refreshed access token: %v", err)
			}

			// The provider refuses a rotated-out refresh token and a used
			// code; clients see Unauthenticated with a fixed message.
			_, err = client.RefreshCli(ctx, connect.NewRequest(&origpb.RefreshCliRequest{RefreshToken: tok.GetRefreshToken()}))
			checkRefusal(t, "RefreshCli with a rotated-out token", err, tok.GetRefreshToken())
			_, err = client.LoginCli(ctx, connect.NewRequest(&origpb.LoginCliRequest{Code: code, RedirectUri: redirectURI}))
			checkRefusal(t, "LoginCli with a used code", err, code)
		})
	}
}

func checkAccessToken(t *testing.T, where string, tok *origpb.AccessToken) {
	t.Helper()
	switch {
	case tok.GetAccessToken() == "":
		t.Errorf("%s: no access_token", where)
	case tok.RefreshToken == nil || tok.GetRefreshToken() == "":
		t.Errorf("%s: no refresh_token although offline_access was granted", where)
	case tok.IdToken == nil || tok.GetIdToken() == "":
		t.Errorf("%s: no id_token although openid was granted", where)
	case tok.GetTokenType() != "Bearer":
		t.Errorf("%s: token_type %q, want Bearer", where, tok.GetTokenType())
	case tok.GetExpiresIn() < 60 || tok.GetExpiresIn() > 15*60:
		t.Errorf("%s: expires_in %d, want the provider's 900 seconds or a little less", where, tok.GetExpiresIn())
	case !strings.Contains(tok.GetScope(), "openid"):
		t.Errorf("%s: scope %q lacks openid", where, tok.GetScope())
	}
}

func checkRefusal(t *testing.T, where string, err error, secret string) {
	t.Helper()
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("%s: %v, want Unauthenticated", where, err)
		return
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		assertClean(t, where+": error message", ce.Message(), secret, oidctest.LeakBait)
	}
}

// TestOriginalClientEmptyFieldsAreInvalidArgument checks the rule the
// original expresses with protovalidate: every request string is required.
func TestOriginalClientEmptyFieldsAreInvalidArgument(t *testing.T) {
	t.Parallel()
	fake := oidctest.New(t)
	srv := startServer(t, providerEnv(fake))
	ctx := context.Background()

	cases := []struct {
		name string
		call func(mgmtv1alpha1connect.AuthServiceClient) error
	}{
		{"GetAuthorizeUrl without state", func(c mgmtv1alpha1connect.AuthServiceClient) error {
			_, err := c.GetAuthorizeUrl(ctx, connect.NewRequest(&origpb.GetAuthorizeUrlRequest{RedirectUri: redirectURI, Scope: "openid"}))
			return err
		}},
		{"GetAuthorizeUrl without redirect_uri", func(c mgmtv1alpha1connect.AuthServiceClient) error {
			_, err := c.GetAuthorizeUrl(ctx, connect.NewRequest(&origpb.GetAuthorizeUrlRequest{State: "s", Scope: "openid"}))
			return err
		}},
		{"GetAuthorizeUrl without scope", func(c mgmtv1alpha1connect.AuthServiceClient) error {
			_, err := c.GetAuthorizeUrl(ctx, connect.NewRequest(&origpb.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI}))
			return err
		}},
		{"LoginCli without code", func(c mgmtv1alpha1connect.AuthServiceClient) error {
			_, err := c.LoginCli(ctx, connect.NewRequest(&origpb.LoginCliRequest{RedirectUri: redirectURI}))
			return err
		}},
		{"LoginCli without redirect_uri", func(c mgmtv1alpha1connect.AuthServiceClient) error {
			_, err := c.LoginCli(ctx, connect.NewRequest(&origpb.LoginCliRequest{Code: "abc"}))
			return err
		}},
		{"RefreshCli without refresh_token", func(c mgmtv1alpha1connect.AuthServiceClient) error {
			_, err := c.RefreshCli(ctx, connect.NewRequest(&origpb.RefreshCliRequest{}))
			return err
		}},
	}
	for _, p := range protocols {
		client := newClient(srv.URL, p)
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				if err := tc.call(client); connect.CodeOf(err) != connect.CodeInvalidArgument {
					t.Errorf("got %v, want InvalidArgument", err)
				}
			})
		}
	}
	t.Cleanup(func() {
		if n := fake.Count(oidctest.PathToken); n != 0 {
			t.Errorf("invalid requests reached the provider's token endpoint %d times", n)
		}
	})
}

// TestOriginalClientWithAuthDisabled is a Neosync CLI against a server
// without authentication: it learns so from GetAuthStatus, CheckToken
// passes without a token, and the OAuth methods say FailedPrecondition.
func TestOriginalClientWithAuthDisabled(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"AUTH_ENABLED": "false"})
	ctx := context.Background()
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			client := newClient(srv.URL, p)
			status, err := client.GetAuthStatus(ctx, connect.NewRequest(&origpb.GetAuthStatusRequest{}))
			if err != nil || status.Msg.GetIsEnabled() {
				t.Errorf("GetAuthStatus = %v, %v; want is_enabled false", status, err)
			}
			if _, err := client.CheckToken(ctx, connect.NewRequest(&origpb.CheckTokenRequest{})); err != nil {
				t.Errorf("CheckToken without a token, auth disabled: %v", err)
			}
			calls := map[string]error{}
			_, calls["GetAuthorizeUrl"] = client.GetAuthorizeUrl(ctx, connect.NewRequest(&origpb.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI, Scope: "openid"}))
			_, calls["LoginCli"] = client.LoginCli(ctx, connect.NewRequest(&origpb.LoginCliRequest{Code: "c", RedirectUri: redirectURI}))
			_, calls["RefreshCli"] = client.RefreshCli(ctx, connect.NewRequest(&origpb.RefreshCliRequest{RefreshToken: "r"}))
			for name, err := range calls {
				if connect.CodeOf(err) != connect.CodeFailedPrecondition {
					t.Errorf("%s with auth disabled: %v, want FailedPrecondition", name, err)
				}
			}
		})
	}
}

// methodRecorder records the HTTP method and path of every request.
type methodRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []string
}

func (m *methodRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	m.mu.Lock()
	m.seen = append(m.seen, r.Method+" "+r.URL.Path)
	m.mu.Unlock()
	return m.next.RoundTrip(r)
}

func (m *methodRecorder) take() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.seen
	m.seen = nil
	return out
}

// TestOriginalClientHTTPGet: the original declares GetAuthorizeUrl and
// GetAuthStatus NO_SIDE_EFFECTS, so Connect clients may send them as HTTP
// GET (cacheable, and what a browser or curl can do). The generated client
// with WithHTTPGet must really use GET for them, and POST for the rest.
func TestOriginalClientHTTPGet(t *testing.T) {
	t.Parallel()
	fake := oidctest.New(t)
	srv := startServer(t, providerEnv(fake))
	ctx := context.Background()
	authorizePath := mgmtv1alpha1connect.AuthServiceGetAuthorizeUrlProcedure
	statusPath := mgmtv1alpha1connect.AuthServiceGetAuthStatusProcedure

	for _, p := range protocols[:2] { // GET is a Connect-protocol feature
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			rec := &methodRecorder{}
			hc := h2cClient(func(tr *http.Transport) http.RoundTripper { rec.next = tr; return rec })
			client := mgmtv1alpha1connect.NewAuthServiceClient(hc, srv.URL, append(append([]connect.ClientOption{}, p.opts...), connect.WithHTTPGet())...)

			status, err := client.GetAuthStatus(ctx, connect.NewRequest(&origpb.GetAuthStatusRequest{}))
			if err != nil || !status.Msg.GetIsEnabled() {
				t.Fatalf("GetAuthStatus by GET = %v, %v", status, err)
			}
			au, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(&origpb.GetAuthorizeUrlRequest{State: "get-state", RedirectUri: redirectURI, Scope: "openid"}))
			if err != nil || !strings.Contains(au.Msg.GetUrl(), "state=get-state") {
				t.Fatalf("GetAuthorizeUrl by GET = %v, %v", au, err)
			}
			_, _ = client.CheckToken(ctx, connect.NewRequest(&origpb.CheckTokenRequest{}))
			got := strings.Join(rec.take(), ", ")
			want := "GET " + statusPath + ", GET " + authorizePath + ", POST " + mgmtv1alpha1connect.AuthServiceCheckTokenProcedure
			if got != want {
				t.Errorf("requests = %s, want %s", got, want)
			}
		})
	}

	// The same by hand, as curl or a browser sends it.
	cases := []struct {
		name      string
		path      string
		query     url.Values
		status    int
		wantField string
	}{
		{"GetAuthStatus json", statusPath, url.Values{"connect": {"v1"}, "encoding": {"json"}, "message": {"{}"}}, http.StatusOK, `"isEnabled":true`},
		{"GetAuthStatus without connect=v1", statusPath, url.Values{"encoding": {"json"}, "message": {"{}"}}, http.StatusOK, `"isEnabled":true`},
		{"GetAuthorizeUrl json", authorizePath, url.Values{"encoding": {"json"}, "message": {`{"state":"abc","redirectUri":"` + redirectURI + `","scope":"openid"}`}}, http.StatusOK, `"url":"` + fake.Server.URL},
		{"GetAuthorizeUrl empty state", authorizePath, url.Values{"encoding": {"json"}, "message": {`{"redirectUri":"` + redirectURI + `","scope":"openid"}`}}, http.StatusBadRequest, `"code":"invalid_argument"`},
		{"LoginCli is not NO_SIDE_EFFECTS", mgmtv1alpha1connect.AuthServiceLoginCliProcedure, url.Values{"encoding": {"json"}, "message": {`{"code":"c","redirectUri":"` + redirectURI + `"}`}}, http.StatusMethodNotAllowed, ""},
	}
	for _, tc := range cases {
		t.Run("raw/"+tc.name, func(t *testing.T) {
			t.Parallel()
			resp, err := http.Get(srv.URL + tc.path + "?" + tc.query.Encode())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.wantField) {
				t.Errorf("GET %s = %d %s; want %d with %s", tc.path, resp.StatusCode, body, tc.status, tc.wantField)
			}
		})
	}
}

// TestClientIsTheOriginalAPI guards this package's premise: the messages
// and service registered in this test binary are the original API's, not
// ours (which would mean gen/ got linked in, and the tests prove nothing
// about unmodified clients).
func TestClientIsTheOriginalAPI(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   protoreflect.FullName
		fields int
	}{
		{"mgmt.v1alpha1.AccessToken", 6},
		{"mgmt.v1alpha1.LoginCliRequest", 2},
		{"mgmt.v1alpha1.GetAuthorizeUrlRequest", 3},
		{"mgmt.v1alpha1.RefreshCliRequest", 1},
		{"mgmt.v1alpha1.CheckTokenRequest", 0},
		{"mgmt.v1alpha1.CheckTokenResponse", 0},
		{"mgmt.v1alpha1.GetAuthStatusResponse", 1},
	}
	for _, tc := range cases {
		t.Run(string(tc.name), func(t *testing.T) {
			t.Parallel()
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(tc.name)
			if err != nil {
				t.Fatalf("%s is not registered: %v", tc.name, err)
			}
			md, ok := d.(protoreflect.MessageDescriptor)
			if !ok || md.Fields().Len() != tc.fields {
				t.Errorf("%s has %d fields, the original %d", tc.name, md.Fields().Len(), tc.fields)
			}
		})
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName("mgmt.v1alpha1.AuthService")
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	for i := range d.(protoreflect.ServiceDescriptor).Methods().Len() {
		methods = append(methods, string(d.(protoreflect.ServiceDescriptor).Methods().Get(i).Name()))
	}
	if got, want := strings.Join(methods, ","), "LoginCli,RefreshCli,CheckToken,GetAuthorizeUrl,GetAuthStatus"; got != want {
		t.Errorf("AuthService methods %s, the original's %s", got, want)
	}
}
