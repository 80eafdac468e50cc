package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"
	"google.golang.org/protobuf/types/known/wrapperspb"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// groupsApp is the app of TestGroupsInTokens: confidential, allowed the
// groups scope.
const (
	groupsAppID       = "wiki"
	groupsAppSecret   = "wiki-secret-4c8d1a2e9f"
	groupsAppRedirect = "https://wiki.example.com/callback"
	bobPassword       = "groups-test-bob-password"
)

// TestGroupsInTokens: a user's groups (nsauth groups, kept in the store)
// reach an app allowed the groups scope in its ID token, its JWT access
// token, the introspection answer and CheckToken; without the scope none
// of them carries groups. A pkg/authn interceptor in front of a service
// lets a procedure that requires a group through for a member and refuses
// a user outside the group with PermissionDenied. On both backends, over
// real HTTP.
func TestGroupsInTokens(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s, st := serveWithStore(t, b, nil)

		// admin is in ops and sre; bob in none.
		for _, g := range []string{"ops", "sre"} {
			if _, err := st.CreateGroup(ctx, g, ""); err != nil {
				t.Fatal(err)
			}
		}
		admin, err := st.UserByUsername(ctx, "admin")
		if err != nil {
			t.Fatal(err)
		}
		// (The first-start administrator leaves the group admin, which
		// it is in from the start, so that the lists below are exact.)
		if _, err := st.SetUserGroups(ctx, admin.ID, []string{"ops", "sre"}, []string{"admin"}); err != nil {
			t.Fatal(err)
		}
		hash, err := password.Hash(bobPassword)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(ctx, &store.User{Username: "bob", PasswordHash: hash}); err != nil {
			t.Fatal(err)
		}
		if err := st.AddApp(ctx, &store.Client{ID: groupsAppID, SecretHash: store.HashSecret(groupsAppSecret),
			RedirectURIs: []string{groupsAppRedirect}, Scopes: []string{"openid", "profile", "groups"}}); err != nil {
			t.Fatal(err)
		}
		disc := discover(t, s.URL)
		api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, s.URL)

		withGroups := appLogin(t, disc, "admin", adminPassword, "openid profile groups")
		withoutGroups := appLogin(t, disc, "admin", adminPassword, "openid profile")
		want := []string{"ops", "sre"}
		tests := []struct {
			name string
			tok  appTokens
			want []string // nil: no groups
		}{
			{"granted the groups scope", withGroups, want},
			{"without the groups scope", withoutGroups, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := claimList(t, payload(t, tt.tok.IDToken), "groups"); !slices.Equal(got, tt.want) {
					t.Errorf("ID token groups = %v, want %v", got, tt.want)
				}
				if got := claimList(t, payload(t, tt.tok.AccessToken), "groups"); !slices.Equal(got, tt.want) {
					t.Errorf("access token groups = %v, want %v", got, tt.want)
				}
				if got := claimList(t, introspect(t, disc, tt.tok.AccessToken), "groups"); !slices.Equal(got, tt.want) {
					t.Errorf("introspection groups = %v, want %v", got, tt.want)
				}
				req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
				req.Header().Set("Authorization", "Bearer "+tt.tok.AccessToken)
				ct, err := api.CheckToken(ctx, req)
				if err != nil {
					t.Fatalf("CheckToken: %v", err)
				}
				if got := ct.Msg.GetGroups(); !slices.Equal(got, tt.want) && len(got)+len(tt.want) > 0 {
					t.Errorf("CheckToken groups = %v, want %v", got, tt.want)
				}
			})
		}

		t.Run("a service requiring a group", func(t *testing.T) {
			client := requireGroupService(t, disc.Issuer)
			bob := appLogin(t, disc, "bob", bobPassword, "openid profile groups")
			for _, c := range []struct {
				name     string
				token    string
				wantCode connect.Code // 0: let through
			}{
				{"a member", withGroups.AccessToken, 0},
				{"a member whose token lacks the groups scope", withoutGroups.AccessToken, connect.CodePermissionDenied},
				{"a user outside the group", bob.AccessToken, connect.CodePermissionDenied},
				{"no token", "", connect.CodeUnauthenticated},
			} {
				t.Run(c.name, func(t *testing.T) {
					req := connect.NewRequest(wrapperspb.String(""))
					if c.token != "" {
						req.Header().Set("Authorization", "Bearer "+c.token)
					}
					resp, err := client.CallUnary(ctx, req)
					if c.wantCode == 0 {
						if err != nil || resp.Msg.GetValue() != admin.ID {
							t.Fatalf("refused a member: %v, %v", resp, err)
						}
						return
					}
					if connect.CodeOf(err) != c.wantCode {
						t.Fatalf("got %v, %v; want %v", resp, err, c.wantCode)
					}
					if c.wantCode == connect.CodePermissionDenied && !strings.Contains(err.Error(), `group "ops"`) {
						t.Errorf("refusal %q does not name the group", err)
					}
				})
			}
		})

		t.Run("introspection says what the groups are now", func(t *testing.T) {
			if _, err := st.SetUserGroups(ctx, admin.ID, nil, []string{"sre"}); err != nil {
				t.Fatal(err)
			}
			if got := claimList(t, introspect(t, disc, withGroups.AccessToken), "groups"); !slices.Equal(got, []string{"ops"}) {
				t.Errorf("introspection groups after leaving sre = %v, want [ops]", got)
			}
			again := appLogin(t, disc, "admin", adminPassword, "openid profile groups")
			if got := claimList(t, payload(t, again.AccessToken), "groups"); !slices.Equal(got, []string{"ops"}) {
				t.Errorf("a new access token's groups = %v, want [ops]", got)
			}
		})
	})
}

// serveWithStore starts a built-in provider on a fresh database of
// backend b (with env added to its environment) and opens a store of its
// own on it.
func serveWithStore(t *testing.T, b storetest.Backend, env map[string]string) (*servetest.Server, *store.Store) {
	t.Helper()
	ctx := context.Background()
	env = maps.Clone(env)
	if env == nil {
		env = map[string]string{}
	}
	env["NSAUTH_ADMIN_PASSWORD"] = adminPassword
	if b.Name == "postgres" {
		env["NSAUTH_DATABASE_URL"] = storetest.PostgresURL(t)
		env["NSAUTH_SECRET_KEY"] = seal.GenerateKey()
	} else {
		env["NSAUTH_DATA_DIR"] = filepath.Join(t.TempDir(), "data")
	}
	s := servetest.Start(t, servetest.Options{Env: env})
	var st *store.Store
	var err error
	if b.Name == "postgres" {
		st, err = store.OpenPostgres(ctx, env["NSAUTH_DATABASE_URL"], store.Options{})
	} else {
		st, err = store.OpenSQLite(ctx, env["NSAUTH_DATA_DIR"], store.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return s, st
}

// TestGroupsInCheckTokenByIntrospection: with NSAUTH_TOKEN_MODE=
// introspection, CheckToken's groups come from the provider's
// introspection answer, which says what the user's groups are now: a
// membership removed is gone from the next CheckToken.
func TestGroupsInCheckTokenByIntrospection(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s, st := serveWithStore(t, b, map[string]string{"NSAUTH_TOKEN_MODE": "introspection", "NSAUTH_INTROSPECTION_CACHE_TTL": "0s"})
		if _, err := st.CreateGroup(ctx, "ops", ""); err != nil {
			t.Fatal(err)
		}
		admin, err := st.UserByUsername(ctx, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.SetUserGroups(ctx, admin.ID, []string{"ops"}, []string{"admin"}); err != nil {
			t.Fatal(err)
		}
		api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, s.URL)
		verifier := oauth2.GenerateVerifier()
		challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
		authz, err := api.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
			State: "st", RedirectUri: redirectURI, Scope: "openid profile groups", CodeChallenge: &challenge, CodeChallengeMethod: &method,
		}))
		if err != nil {
			t.Fatal(err)
		}
		loc := issuertest.NewBrowser(t).Login(t, authz.Msg.GetUrl(), "admin", adminPassword)
		login, err := api.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: loc.Query().Get("code"), RedirectUri: redirectURI, CodeVerifier: &verifier}))
		if err != nil {
			t.Fatalf("LoginCli: %v", err)
		}
		check := func() []string {
			t.Helper()
			req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
			req.Header().Set("Authorization", "Bearer "+login.Msg.GetAccessToken().GetAccessToken())
			ct, err := api.CheckToken(ctx, req)
			if err != nil {
				t.Fatalf("CheckToken: %v", err)
			}
			return ct.Msg.GetGroups()
		}
		if got := check(); !slices.Equal(got, []string{"ops"}) {
			t.Fatalf("CheckToken groups = %v, want [ops]", got)
		}
		if _, err := st.SetUserGroups(ctx, admin.ID, nil, []string{"ops"}); err != nil {
			t.Fatal(err)
		}
		if got := check(); len(got) != 0 {
			t.Fatalf("CheckToken groups after leaving ops = %v, want none", got)
		}
	})
}

// discovery is what TestGroupsInTokens reads of the provider's discovery
// document.
type discovery struct {
	Issuer        string `json:"issuer"`
	Authorization string `json:"authorization_endpoint"`
	Token         string `json:"token_endpoint"`
	Introspection string `json:"introspection_endpoint"`
}

func discover(t *testing.T, base string) discovery {
	t.Helper()
	var d discovery
	getJSON(t, base+"/.well-known/openid-configuration", &d)
	if d.Authorization == "" || d.Token == "" || d.Introspection == "" {
		t.Fatalf("discovery lacks endpoints: %+v", d)
	}
	return d
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", u, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

type appTokens struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
}

// appLogin signs username in to the groups app in a fresh browser, asking
// for scope, and redeems the code as the app does.
func appLogin(t *testing.T, d discovery, username, pw, scope string) appTokens {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	q := url.Values{
		"client_id": {groupsAppID}, "response_type": {"code"}, "redirect_uri": {groupsAppRedirect},
		"scope": {scope}, "state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}
	loc := issuertest.NewBrowser(t).Login(t, d.Authorization+"?"+q.Encode(), username, pw)
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in the redirect %s", loc.Redacted())
	}
	body := appPost(t, d.Token, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {groupsAppRedirect}, "code_verifier": {verifier}})
	var tok appTokens
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" || tok.IDToken == "" {
		t.Fatalf("token response: %v", err)
	}
	return tok
}

// appPost posts form to endpoint authenticated as the groups app.
func appPost(t *testing.T, endpoint string, form url.Values) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(groupsAppID, groupsAppSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: HTTP %d", endpoint, resp.StatusCode)
	}
	return body
}

// introspect asks the introspection endpoint about token, as the app it
// was issued to.
func introspect(t *testing.T, d discovery, token string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(appPost(t, d.Introspection, url.Values{"token": {token}}), &m); err != nil {
		t.Fatal(err)
	}
	if m["active"] != true {
		t.Fatalf("introspection: the token is not active: %v", m)
	}
	return m
}

// payload decodes a JWT's claims, unverified (the verification is the
// provider's job, tested elsewhere; here only what it says matters).
func payload(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatal("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// claimList is the claim name of m as a list of strings, nil when absent.
func claimList(t *testing.T, m map[string]any, name string) []string {
	t.Helper()
	v, ok := m[name]
	if !ok || v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("claim %s is %T, not a list", name, v)
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			t.Fatalf("claim %s holds %T", name, x)
		}
		out = append(out, s)
	}
	return out
}

// requireGroupService starts a Connect service whose one procedure
// requires the group ops, behind pkg/authn's interceptor configured for
// the server's tokens as docs/go-packages.md says, and returns a client of
// it.
func requireGroupService(t *testing.T, issuer string) *connect.Client[wrapperspb.StringValue, wrapperspb.StringValue] {
	t.Helper()
	p, err := authn.NewProvider(context.Background(), issuer)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := p.Verifier(authn.Config{Audiences: []string{issuer}})
	if err != nil {
		t.Fatal(err)
	}
	const procedure = "/acme.ops.v1.OpsService/Page"
	interceptor := authn.NewInterceptorFromConfig(verifier, authn.InterceptorConfig{}, authn.Require(procedure, authn.Group("ops")))
	mux := http.NewServeMux()
	mux.Handle(procedure, connect.NewUnaryHandler(procedure,
		func(ctx context.Context, _ *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.StringValue], error) {
			c, ok := authn.ClaimsFromContext(ctx)
			if !ok {
				return nil, connect.NewError(connect.CodeInternal, errors.New("no claims"))
			}
			return connect.NewResponse(wrapperspb.String(c.Subject)), nil
		}, connect.WithInterceptors(interceptor)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return connect.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](srv.Client(), srv.URL+procedure)
}
