//go:build interop

package interop_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
)

// Values of --token-mode / NSAUTH_TOKEN_MODE.
const (
	modeJWT           = "jwt"
	modeIntrospection = "introspection"
	modeChain         = "jwt-or-introspection"
)

const (
	// redirectURI is the original Neosync CLI's callback; the RPC-level
	// tests' browser stops at it, so nothing listens there.
	redirectURI = "http://127.0.0.1:4242/api/auth/callback"
	loginScope  = "openid offline_access profile email"
	// cacheTTL is NSAUTH_INTROSPECTION_CACHE_TTL in these tests: short, so
	// a revocation shows within the test, long enough to see the cache.
	cacheTTL = 3 * time.Second
)

// nsauthEnv configures `nsauth serve` for h the way
// docs/external-providers.md tells a Neosync deployment to, plus extra.
func nsauthEnv(h *hydra, extra map[string]string) map[string]string {
	secrets, _ := json.Marshal(map[string]string{cliClientID: h.ClientSecret})
	env := map[string]string{
		"AUTH_ENABLED":             "true",
		"AUTH_BASEURL":             h.Issuer,
		"AUTH_AUDIENCE":            apiAudience,
		"AUTH_CLI_CLIENT_ID":       cliClientID,
		"AUTH_CLI_AUDIENCE":        apiAudience,
		"AUTH_CLIENTID_SECRET":     string(secrets),
		"AUTH_SIGNATURE_ALGORITHM": "RS256",
	}
	maps.Copy(env, extra)
	return env
}

// introspectionEnv adds token mode and introspection settings; the
// introspection endpoint is reached through proxy, which counts calls.
func introspectionEnv(mode string, proxy *countingProxy) map[string]string {
	env := map[string]string{"NSAUTH_TOKEN_MODE": mode}
	if proxy != nil {
		env["NSAUTH_INTROSPECTION_URL"] = proxy.URL
		env["NSAUTH_INTROSPECTION_CACHE_TTL"] = cacheTTL.String()
	}
	return env
}

// TestHydraFullFlow is a CLI session brokered by nsauth for each Hydra
// access-token strategy and each nsauth token mode that can check it:
// GetAuthorizeUrl (audience, PKCE) → Hydra login and consent → LoginCli →
// CheckToken → RefreshCli (rotation) → RevokeCli.
func TestHydraFullFlow(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		strategy string
		mode     string
		// introspects: CheckToken asks Hydra's introspection endpoint.
		introspects bool
		// revocationEndsAccess: after RevokeCli the access token is refused
		// (Hydra revokes the grant's access tokens; only introspection sees
		// it, a JWT checked locally stays valid until it expires).
		revocationEndsAccess bool
	}{
		{name: "jwt tokens, jwt mode", strategy: strategyJWT, mode: modeJWT},
		{name: "jwt tokens, jwt-or-introspection mode", strategy: strategyJWT, mode: modeChain},
		{name: "jwt tokens, introspection mode", strategy: strategyJWT, mode: modeIntrospection, introspects: true, revocationEndsAccess: true},
		{name: "opaque tokens, introspection mode", strategy: strategyOpaque, mode: modeIntrospection, introspects: true, revocationEndsAccess: true},
		{name: "opaque tokens, jwt-or-introspection mode", strategy: strategyOpaque, mode: modeChain, introspects: true, revocationEndsAccess: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := hydraFor(t, tc.strategy)
			var proxy *countingProxy
			if tc.mode != modeJWT {
				proxy = newCountingProxy(t, h.IntrospectionURL(), cliClientID)
			}
			srv := startServe(t, nsauthEnv(h, introspectionEnv(tc.mode, proxy)))
			ctx := context.Background()
			client := newClient(srv.URL, connect.WithGRPC())
			var secrets []string
			t.Cleanup(func() {
				assertClean(t, "nsauth logs", srv.Logs.String(), append(secrets, h.ClientSecret)...)
			})

			status, err := client.GetAuthStatus(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{}))
			if err != nil || !status.Msg.GetIsEnabled() {
				t.Fatalf("GetAuthStatus = %v, %v", status, err)
			}

			code, verifier := authorize(t, h, apiAudience, client, newBrowser(t))
			secrets = append(secrets, code, verifier)

			login, err := client.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI, CodeVerifier: &verifier}))
			if err != nil {
				t.Fatalf("LoginCli: %v", err)
			}
			tok := login.Msg.GetAccessToken()
			secrets = append(secrets, tok.GetAccessToken(), tok.GetRefreshToken(), tok.GetIdToken())
			checkTokens(t, "LoginCli", h, tok)

			before := introspections(proxy)
			checkAccepted(t, client, h, tok.GetAccessToken())
			afterFirst := introspections(proxy)
			firstAt := time.Now()
			checkAccepted(t, client, h, tok.GetAccessToken())
			afterSecond := introspections(proxy)
			switch {
			case tc.introspects && afterFirst-before != 1:
				t.Errorf("CheckToken made %d introspection calls, want 1", afterFirst-before)
			case !tc.introspects && afterSecond != 0:
				t.Errorf("CheckToken of a JWT made %d introspection calls, want 0", afterSecond)
			case tc.introspects && time.Since(firstAt) < cacheTTL/2 && afterSecond != afterFirst:
				t.Errorf("a second CheckToken within the cache TTL introspected again")
			}
			if proxy != nil {
				if n, withID := proxy.Counts(); n != withID {
					t.Errorf("%d of %d introspection calls did not authenticate as %s", n-withID, n, cliClientID)
				}
			}

			refreshed, err := client.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: tok.GetRefreshToken()}))
			if err != nil {
				t.Fatalf("RefreshCli: %v", err)
			}
			tok2 := refreshed.Msg.GetAccessToken()
			secrets = append(secrets, tok2.GetAccessToken(), tok2.GetRefreshToken(), tok2.GetIdToken())
			checkTokens(t, "RefreshCli", h, tok2)
			if tok2.GetAccessToken() == tok.GetAccessToken() {
				t.Errorf("RefreshCli returned the same access token")
			}
			if tok2.GetRefreshToken() == tok.GetRefreshToken() {
				t.Errorf("RefreshCli returned the same refresh token; Hydra rotates them")
			}
			checkAccepted(t, client, h, tok2.GetAccessToken())

			revoked, err := client.RevokeCli(ctx, connect.NewRequest(&mgmtv1alpha1.RevokeCliRequest{RefreshToken: tok2.GetRefreshToken()}))
			if err != nil || !revoked.Msg.GetRevoked() {
				t.Fatalf("RevokeCli = %v, %v; want revoked", revoked, err)
			}
			_, err = client.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: tok2.GetRefreshToken()}))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("RefreshCli with the revoked refresh token: %v, want Unauthenticated", err)
			}
			_, err = client.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: tok.GetRefreshToken()}))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("RefreshCli with the rotated-out refresh token: %v, want Unauthenticated", err)
			}

			if tc.revocationEndsAccess {
				// The cached "active" answer may be used until cacheTTL ends.
				deadline := time.Now().Add(cacheTTL + 10*time.Second)
				for {
					_, err := client.CheckToken(ctx, bearer(&mgmtv1alpha1.CheckTokenRequest{}, tok2.GetAccessToken()))
					if connect.CodeOf(err) == connect.CodeUnauthenticated {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("CheckToken after revocation still answers %v, want Unauthenticated within the cache TTL", err)
					}
					time.Sleep(250 * time.Millisecond)
				}
			} else {
				checkAccepted(t, client, h, tok2.GetAccessToken()) // a JWT cannot be recalled
			}
		})
	}
}

// authorize asks nsauth for an authorize URL with PKCE, checks that it
// carries what Hydra needs, lets the browser log in and consent, and
// returns the code and the PKCE verifier. audience is the audience nsauth
// is configured to ask for (AUTH_CLI_AUDIENCE), or empty.
func authorize(t *testing.T, h *hydra, audience string, client interface {
	GetAuthorizeUrl(context.Context, *connect.Request[mgmtv1alpha1.GetAuthorizeUrlRequest]) (*connect.Response[mgmtv1alpha1.GetAuthorizeUrlResponse], error)
}, b *browser) (code, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	challenge := oauth2.S256ChallengeFromVerifier(verifier)
	state := randomHex(16)
	au, err := client.GetAuthorizeUrl(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: state, RedirectUri: redirectURI, Scope: loginScope,
		CodeChallenge: &challenge, CodeChallengeMethod: ptr("S256"),
	}))
	if err != nil {
		t.Fatalf("GetAuthorizeUrl: %v", err)
	}
	u, err := url.Parse(au.Msg.GetUrl())
	if err != nil {
		t.Fatalf("authorize URL: %v", err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != h.Issuer+"/oauth2/auth" {
		t.Errorf("authorize URL points at %s, want Hydra's %s/oauth2/auth", got, h.Issuer)
	}
	q := u.Query()
	want := map[string]string{
		"client_id": cliClientID, "response_type": "code", "state": state, "redirect_uri": redirectURI,
		"scope": loginScope, "audience": audience, "code_challenge": challenge, "code_challenge_method": "S256",
	}
	for k, v := range want {
		if got := q.Get(k); got != v {
			t.Errorf("authorize URL: %s = %q, want %q", k, got, v)
		}
	}

	back := b.authorize(t, au.Msg.GetUrl(), redirectURI)
	if e := back.Get("error"); e != "" {
		t.Fatalf("Hydra redirected with error=%s (%s)", e, back.Get("error_description"))
	}
	if back.Get("state") != state || back.Get("code") == "" {
		t.Fatalf("redirect lacks the code or the state (state matches: %v)", back.Get("state") == state)
	}
	// What Hydra told the consent app: the audience and scopes nsauth
	// asked for on the user's behalf.
	c, ok := h.App.Consent(state)
	if !ok {
		t.Fatal("the login went through without the consent app")
	}
	if c.ClientRef.ClientID != cliClientID || c.Subject != userSubject {
		t.Errorf("consent for client %q, subject %q", c.ClientRef.ClientID, c.Subject)
	}
	if wantAud := strings.Fields(audience); !slices.Equal(c.Audience, wantAud) {
		t.Errorf("requested audience %v, want %v", c.Audience, wantAud)
	}
	for _, s := range strings.Fields(loginScope) {
		if !slices.Contains(c.Scope, s) {
			t.Errorf("requested scopes %v lack %s", c.Scope, s)
		}
	}
	return back.Get("code"), verifier
}

// checkTokens checks a LoginCli or RefreshCli answer against what Hydra
// issues for the strategy.
func checkTokens(t *testing.T, where string, h *hydra, tok *mgmtv1alpha1.AccessToken) {
	t.Helper()
	if tok.GetAccessToken() == "" || tok.GetRefreshToken() == "" || tok.GetIdToken() == "" {
		t.Fatalf("%s: access, refresh and ID token present = %v, %v, %v; want all", where,
			tok.GetAccessToken() != "", tok.GetRefreshToken() != "", tok.GetIdToken() != "")
	}
	if !strings.EqualFold(tok.GetTokenType(), "bearer") {
		t.Errorf("%s: token_type %q, want Bearer", where, tok.GetTokenType())
	}
	if d := time.Duration(tok.GetExpiresIn()) * time.Second; d <= accessTokenTTL-time.Minute || d > accessTokenTTL {
		t.Errorf("%s: expires_in %v, want just under Hydra's %v", where, d, accessTokenTTL)
	}
	for _, s := range []string{"openid", "offline_access"} {
		if !slices.Contains(strings.Fields(tok.GetScope()), s) {
			t.Errorf("%s: scope %q lacks %s", where, tok.GetScope(), s)
		}
	}

	access, isJWT := payload(tok.GetAccessToken())
	switch {
	case h.Strategy == strategyJWT && !isJWT:
		t.Errorf("%s: Hydra's jwt strategy issued an access token that is not a JWT", where)
	case h.Strategy == strategyJWT:
		if access["iss"] != h.Issuer || access["client_id"] != cliClientID || access["sub"] != userSubject {
			t.Errorf("%s: access token iss %v, client_id %v, sub %v", where, access["iss"], access["client_id"], access["sub"])
		}
		if aud, _ := access["aud"].([]any); !slices.Contains(aud, any(apiAudience)) {
			t.Errorf("%s: access token aud %v lacks %s", where, access["aud"], apiAudience)
		}
	case isJWT:
		t.Errorf("%s: Hydra's opaque strategy issued a JWT access token", where)
	}

	id, ok := payload(tok.GetIdToken())
	if !ok {
		t.Fatalf("%s: the ID token is not a JWT", where)
	}
	if id["iss"] != h.Issuer || id["sub"] != userSubject || id["name"] != userName || id["email"] != userEmail {
		t.Errorf("%s: ID token iss %v, sub %v, name %v, email %v", where, id["iss"], id["sub"], id["name"], id["email"])
	}
}

// checkAccepted asserts that CheckToken accepts token and describes it.
func checkAccepted(t *testing.T, client interface {
	CheckToken(context.Context, *connect.Request[mgmtv1alpha1.CheckTokenRequest]) (*connect.Response[mgmtv1alpha1.CheckTokenResponse], error)
}, h *hydra, token string) {
	t.Helper()
	resp, err := client.CheckToken(context.Background(), bearer(&mgmtv1alpha1.CheckTokenRequest{}, token))
	if err != nil {
		t.Fatalf("CheckToken: %v", err)
	}
	m := resp.Msg
	if m.GetSubject() != userSubject || m.GetIssuer() != h.Issuer {
		t.Errorf("CheckToken: subject %q, issuer %q; want %q, %q", m.GetSubject(), m.GetIssuer(), userSubject, h.Issuer)
	}
	if !slices.Contains(m.GetScopes(), "openid") {
		t.Errorf("CheckToken: scopes %v lack openid", m.GetScopes())
	}
	if until := time.Until(time.Unix(m.GetExpiresAt(), 0)); until <= accessTokenTTL-2*time.Minute || until > accessTokenTTL+time.Minute {
		t.Errorf("CheckToken: expires in %v, want about %v", until.Round(time.Second), accessTokenTTL)
	}
}

// payload decodes a JWT's claims without verifying anything; ok is false
// when token is not a JWT.
func payload(token string) (map[string]any, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var claims map[string]any
	if json.Unmarshal(b, &claims) != nil {
		return nil, false
	}
	return claims, true
}

func introspections(p *countingProxy) int {
	if p == nil {
		return 0
	}
	n, _ := p.Counts()
	return n
}

func ptr[T any](v T) *T { return &v }
