//go:build interop

package interop_test

import (
	"context"
	"errors"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/servetest"
)

// TestHydraRefusals: what Hydra refuses reaches the client as
// Unauthenticated with a fixed message, and what nsauth must refuse itself
// (a token that is not an access token for our API) it refuses.
func TestHydraRefusals(t *testing.T) {
	t.Parallel()
	jwtHydra := hydraFor(t, strategyJWT)
	jwtServer := startServe(t, nsauthEnv(jwtHydra, nil))
	// Without AUTH_CLI_AUDIENCE nsauth asks Hydra for no audience, and
	// Hydra grants none: its tokens are not for our API.
	noAudienceEnv := nsauthEnv(jwtHydra, nil)
	delete(noAudienceEnv, "AUTH_CLI_AUDIENCE")
	noAudience := startServe(t, noAudienceEnv)
	opaqueHydra := hydraFor(t, strategyOpaque)
	opaqueInJWTMode := startServe(t, nsauthEnv(opaqueHydra, introspectionEnv(modeJWT, nil)))

	// login runs a good authorization and exchange, for cases that need
	// tokens to misuse.
	login := func(t *testing.T, h *hydra, c mgmtv1alpha1connect.AuthServiceClient) *mgmtv1alpha1.AccessToken {
		t.Helper()
		code, verifier := authorize(t, h, apiAudience, c, newBrowser(t))
		resp, err := c.LoginCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI, CodeVerifier: &verifier}))
		if err != nil {
			t.Fatalf("LoginCli: %v", err)
		}
		return resp.Msg.GetAccessToken()
	}

	cases := []struct {
		name   string
		h      *hydra
		server *servetest.Server
		// call misuses the API and returns the secrets that must not appear
		// in its error, and the error.
		call func(t *testing.T, h *hydra, c mgmtv1alpha1connect.AuthServiceClient) ([]string, error)
	}{
		{"LoginCli with a wrong PKCE verifier", jwtHydra, jwtServer, func(t *testing.T, h *hydra, c mgmtv1alpha1connect.AuthServiceClient) ([]string, error) {
			code, verifier := authorize(t, h, apiAudience, c, newBrowser(t))
			wrong := oauth2.GenerateVerifier()
			_, err := c.LoginCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI, CodeVerifier: &wrong}))
			return []string{code, verifier, wrong}, err
		}},
		{"LoginCli without the PKCE verifier Hydra enforces", jwtHydra, jwtServer, func(t *testing.T, h *hydra, c mgmtv1alpha1connect.AuthServiceClient) ([]string, error) {
			code, verifier := authorize(t, h, apiAudience, c, newBrowser(t))
			_, err := c.LoginCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI}))
			return []string{code, verifier}, err
		}},
		{"LoginCli with another redirect_uri", jwtHydra, jwtServer, func(t *testing.T, h *hydra, c mgmtv1alpha1connect.AuthServiceClient) ([]string, error) {
			code, verifier := authorize(t, h, apiAudience, c, newBrowser(t))
			_, err := c.LoginCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: "http://127.0.0.1:4243/api/auth/callback", CodeVerifier: &verifier}))
			return []string{code, verifier}, err
		}},
		{"LoginCli with a code used before", jwtHydra, jwtServer, func(t *testing.T, h *hydra, c mgmtv1alpha1connect.AuthServiceClient) ([]string, error) {
			code, verifier := authorize(t, h, apiAudience, c, newBrowser(t))
			req := &mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI, CodeVerifier: &verifier}
			if _, err := c.LoginCli(context.Background(), connect.NewRequest(req)); err != nil {
				t.Fatalf("first LoginCli: %v", err)
			}
			_, err := c.LoginCli(context.Background(), connect.NewRequest(req))
			return []string{code, verifier}, err
		}},
		{"RefreshCli with a refresh token Hydra never issued", jwtHydra, jwtServer, func(t *testing.T, h *hydra, c mgmtv1alpha1connect.AuthServiceClient) ([]string, error) {
			fake := "ory_rt_" + randomHex(32) + "." + randomHex(32)
			_, err := c.RefreshCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: fake}))
			return []string{fake}, err
		}},
		{"CheckToken with Hydra's ID token (audience is the client, not the API)", jwtHydra, jwtServer, func(t *testing.T, h *hydra, c mgmtv1alpha1connect.AuthServiceClient) ([]string, error) {
			tok := login(t, h, c)
			_, err := c.CheckToken(context.Background(), bearer(&mgmtv1alpha1.CheckTokenRequest{}, tok.GetIdToken()))
			return []string{tok.GetAccessToken(), tok.GetRefreshToken(), tok.GetIdToken()}, err
		}},
		{"CheckToken of a token issued without AUTH_CLI_AUDIENCE", jwtHydra, noAudience, func(t *testing.T, h *hydra, c mgmtv1alpha1connect.AuthServiceClient) ([]string, error) {
			code, verifier := authorize(t, h, "", c, newBrowser(t))
			resp, err := c.LoginCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI, CodeVerifier: &verifier}))
			if err != nil {
				t.Fatalf("LoginCli: %v", err)
			}
			tok := resp.Msg.GetAccessToken()
			claims, isJWT := payload(tok.GetAccessToken())
			if aud, _ := claims["aud"].([]any); !isJWT || len(aud) != 0 {
				t.Errorf("Hydra's access token: JWT %v, aud %v; want a JWT with an empty aud", isJWT, claims["aud"])
			}
			_, err = c.CheckToken(context.Background(), bearer(&mgmtv1alpha1.CheckTokenRequest{}, tok.GetAccessToken()))
			return []string{code, verifier, tok.GetAccessToken(), tok.GetRefreshToken(), tok.GetIdToken()}, err
		}},
		{"CheckToken with an opaque token in jwt mode", opaqueHydra, opaqueInJWTMode, func(t *testing.T, h *hydra, c mgmtv1alpha1connect.AuthServiceClient) ([]string, error) {
			tok := login(t, h, c)
			_, err := c.CheckToken(context.Background(), bearer(&mgmtv1alpha1.CheckTokenRequest{}, tok.GetAccessToken()))
			return []string{tok.GetAccessToken(), tok.GetRefreshToken(), tok.GetIdToken()}, err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := newClient(tc.server.URL)
			secrets, err := tc.call(t, tc.h, client)
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("got %v, want Unauthenticated", err)
			}
			var ce *connect.Error
			if errors.As(err, &ce) {
				assertClean(t, "error message", ce.Message(), append(secrets, tc.h.ClientSecret)...)
			}
			t.Cleanup(func() {
				assertClean(t, "nsauth logs", tc.server.Logs.String(), append(secrets, tc.h.ClientSecret)...)
			})
		})
	}
}
