package e2e_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/internal/servetest"
)

// startServe starts `nsauth serve` with debug logging and exactly env as
// its environment.
func startServe(t *testing.T, env map[string]string, args ...string) *servetest.Server {
	t.Helper()
	return servetest.Start(t, servetest.Options{Env: env, Args: append([]string{"--log-level", "debug"}, args...)})
}

// runServe runs `nsauth serve` for a configuration that must fail.
func runServe(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	return servetest.Run(t, env, args...)
}

// providerEnv configures serve to broker p, Neosync style.
func providerEnv(p *oidctest.Provider) map[string]string {
	return map[string]string{
		"AUTH_ENABLED":             "true",
		"AUTH_BASEURL":             p.Issuer,
		"AUTH_AUDIENCE":            p.Audience,
		"AUTH_CLI_CLIENT_ID":       p.ClientID,
		"AUTH_CLIENTID_SECRET":     `{"` + p.ClientID + `":"` + p.ClientSecret + `"}`,
		"AUTH_SIGNATURE_ALGORITHM": "RS256,ES256",
	}
}

// protocol is one way to talk to the server.
type protocol struct {
	name string
	opts []connect.ClientOption
}

var protocols = []protocol{
	{"connect-json", []connect.ClientOption{connect.WithProtoJSON()}},
	{"connect-proto", nil},
	{"grpc", []connect.ClientOption{connect.WithGRPC()}},
	{"grpc-web", []connect.ClientOption{connect.WithGRPCWeb()}},
}

// h2cClient speaks HTTP/2 without TLS, as gRPC needs.
func h2cClient() *http.Client { return servetest.H2CClient() }

func newClient(baseURL string, p protocol) mgmtv1alpha1connect.AuthServiceClient {
	return mgmtv1alpha1connect.NewAuthServiceClient(h2cClient(), baseURL, p.opts...)
}

// authorizeCode asks the server for an authorize URL (no PKCE) and has the
// fake provider approve it, returning the code.
func authorizeCode(t *testing.T, client mgmtv1alpha1connect.AuthServiceClient, p *oidctest.Provider, scope string) string {
	t.Helper()
	authz, err := client.GetAuthorizeUrl(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{State: "st", RedirectUri: redirectURI, Scope: scope}))
	if err != nil {
		t.Fatalf("GetAuthorizeUrl: %v", err)
	}
	return p.Authorize(t, authz.Msg.GetUrl()).Get("code")
}

// withBearer returns a request carrying an Authorization header.
func withBearer[T any](msg *T, token string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+token)
	return req
}

// assertClean fails when text contains any of the secrets.
func assertClean(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret (%.12s…)", where, s)
		}
	}
}
