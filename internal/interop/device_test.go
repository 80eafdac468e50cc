//go:build interop

package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// zitadelAccessTokenTTL is the example storage's access-token lifetime.
const zitadelAccessTokenTTL = 5 * time.Minute

// defaultDeviceScope is what StartDeviceLogin asks for when the request
// names no scope (auth.proto).
const defaultDeviceScope = "openid profile email offline_access"

// zitadelEnv configures `nsauth serve` for p as docs/external-providers.md tells a
// deployment to configure an external provider. The example provider puts
// the client's ID in its access tokens' aud.
func zitadelEnv(p *zitadelOP, mode string) map[string]string {
	secrets, _ := json.Marshal(map[string]string{p.ClientID: p.ClientSecret})
	return map[string]string{
		"AUTH_ENABLED":             "true",
		"AUTH_BASEURL":             p.Issuer,
		"AUTH_AUDIENCE":            p.ClientID,
		"AUTH_CLI_CLIENT_ID":       p.ClientID,
		"AUTH_CLIENTID_SECRET":     string(secrets),
		"AUTH_SIGNATURE_ALGORITHM": "RS256",
		"NSAUTH_TOKEN_MODE":        mode,
	}
}

// TestZitadelDeviceLogin is a device login (RFC 8628) brokered by nsauth
// against zitadel/oidc's example provider, for each kind of access token
// it can issue and the nsauth token mode that checks it:
// StartDeviceLogin → PollDeviceLogin (pending) → the user enters the code,
// logs in and allows at the provider's pages → PollDeviceLogin (tokens) →
// CheckToken. The introspection case finds the endpoint in discovery.
func TestZitadelDeviceLogin(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		accessToken string
		mode        string
		opts        []connect.ClientOption
		// scope is StartDeviceLogin's scope; nil asks for the default.
		scope *string
	}{
		{name: "opaque tokens, introspection mode, Connect", accessToken: zitadelOpaque, mode: modeIntrospection},
		{name: "jwt tokens, jwt mode, gRPC", accessToken: zitadelJWT, mode: modeJWT, opts: []connect.ClientOption{connect.WithGRPC()}, scope: ptr("openid email")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startZitadelOP(t, tc.accessToken)
			srv := startServe(t, zitadelEnv(p, tc.mode))
			client := newClient(srv.URL, tc.opts...)
			ctx := context.Background()
			secrets := []string{p.ClientSecret}
			t.Cleanup(func() { assertClean(t, "nsauth serve logs", srv.Logs.String(), secrets...) })

			start := startDeviceLogin(t, client, p, tc.scope)
			secrets = append(secrets, start.GetDeviceCode())
			interval := time.Duration(start.GetInterval()) * time.Second

			// Before the user does anything: pending, after the interval
			// a client must wait anyway.
			time.Sleep(interval)
			_, err := client.PollDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: start.GetDeviceCode()}))
			d := deviceLoginError(err)
			if connect.CodeOf(err) != connect.CodeUnavailable || d.GetError() != "authorization_pending" || d.GetInterval() <= 0 {
				t.Fatalf("PollDeviceLogin before approval: %v with detail %v; want Unavailable, authorization_pending and an interval", err, d)
			}
			interval = time.Duration(d.GetInterval()) * time.Second

			wantScope := defaultDeviceScope
			if tc.scope != nil {
				wantScope = *tc.scope
			}
			// The user types the code at verification_uri.
			newBrowser(t).zitadelDevice(t, start.GetVerificationUri(), start.GetUserCode(), p.ClientID, wantScope, "allowed")

			tok := pollDeviceTokens(t, client, start.GetDeviceCode(), interval)
			secrets = append(secrets, tok.GetAccessToken(), tok.GetRefreshToken(), tok.GetIdToken())
			checkZitadelTokens(t, p, tc.accessToken, tok)
			checkZitadelAccepted(t, client, p, tc.mode, tok.GetAccessToken())
		})
	}
}

// TestZitadelDeviceLoginDenied: the user refuses at the provider's page;
// the next poll answers PermissionDenied with access_denied.
func TestZitadelDeviceLoginDenied(t *testing.T) {
	t.Parallel()
	p := startZitadelOP(t, zitadelOpaque)
	srv := startServe(t, zitadelEnv(p, modeIntrospection))
	client := newClient(srv.URL)
	start := startDeviceLogin(t, client, p, nil)
	t.Cleanup(func() {
		assertClean(t, "nsauth serve logs", srv.Logs.String(), p.ClientSecret, start.GetDeviceCode())
	})

	// The user opens verification_uri_complete: no code to type.
	newBrowser(t).zitadelDevice(t, start.GetVerificationUriComplete(), "", p.ClientID, defaultDeviceScope, "denied")

	time.Sleep(time.Duration(start.GetInterval()) * time.Second)
	_, err := client.PollDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: start.GetDeviceCode()}))
	if d := deviceLoginError(err); connect.CodeOf(err) != connect.CodePermissionDenied || d.GetError() != "access_denied" {
		t.Errorf("PollDeviceLogin after the user denied: %v with detail %v; want PermissionDenied, access_denied", err, d)
	}
}

// TestZitadelDeviceLoginRefusedClient: when the provider will not start
// device logins for nsauth's client, because the client lacks the device
// grant (unauthorized_client) or nsauth has the wrong secret
// (invalid_client), StartDeviceLogin answers FailedPrecondition, the
// server's configuration being at fault, and asks about the device grant.
func TestZitadelDeviceLoginRefusedClient(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		flags []string
		// secret replaces the client's secret in nsauth's configuration.
		secret string
	}{
		{name: "client without the device grant", flags: []string{"-client", "web"}},
		{name: "wrong client secret", secret: randomHex(24)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startZitadelOP(t, zitadelOpaque, tc.flags...)
			env := zitadelEnv(p, modeIntrospection)
			if tc.secret != "" {
				secrets, _ := json.Marshal(map[string]string{p.ClientID: tc.secret})
				env["AUTH_CLIENTID_SECRET"] = string(secrets)
			}
			srv := startServe(t, env)
			_, err := newClient(srv.URL).StartDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{}))
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition || !strings.Contains(ce.Message(), "device grant") {
				t.Errorf("StartDeviceLogin: %v; want FailedPrecondition asking about the device grant", err)
			}
			assertClean(t, "nsauth serve logs", srv.Logs.String(), p.ClientSecret, tc.secret)
		})
	}
}

// TestZitadelNsauthLoginDevice is the terminal client's device login end to
// end against the zitadel provider: `nsauth login --device` prints the
// provider's verification URL with the code in it, the user allows there,
// and the command stores tokens that token, whoami and status use.
func TestZitadelNsauthLoginDevice(t *testing.T) {
	t.Parallel()
	p := startZitadelOP(t, zitadelJWT)
	srv := startServe(t, zitadelEnv(p, modeJWT))
	configDir := t.TempDir()
	ctx := context.Background()

	loginErr := &lockedBuffer{}
	done := make(chan cliResult, 1)
	go func() {
		done <- runCLI(ctx, srv.URL, configDir, loginErr, "login", "--device", "--no-browser", "--timeout", "2m")
	}()
	verifyURL := waitLoginURL(t, loginErr, done)
	u, err := url.Parse(verifyURL)
	if err != nil || u.Scheme+"://"+u.Host+u.Path != p.Issuer+"/device" || u.Query().Get("user_code") == "" {
		t.Fatalf("login --device printed %s, not the provider's verification_uri_complete", verifyURL)
	}
	if code := u.Query().Get("user_code"); !strings.Contains(loginErr.String(), "shows the code "+code) {
		t.Errorf("login --device does not show the code of the URL:\n%s", loginErr.String())
	}
	newBrowser(t).zitadelDevice(t, verifyURL, "", p.ClientID, defaultDeviceScope, "allowed")

	var r cliResult
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("login --device did not finish after the user allowed it")
	}
	if r.code != 0 {
		t.Fatalf("login --device: exit %d\n%s", r.code, r.errOut)
	}
	if !strings.Contains(r.errOut, "Logged in as "+zitadelUsername) {
		t.Errorf("login --device did not name the user:\n%s", r.errOut)
	}

	store, err := tokenstore.New(tokenstore.Config{Dir: configDir})
	if err != nil {
		t.Fatal(err)
	}
	apiURL, err := tokenstore.NormalizeAPIURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := store.Load(apiURL)
	if err != nil {
		t.Fatalf("loading the stored tokens: %v", err)
	}
	secrets := []string{entry.AccessToken, entry.IDToken, p.ClientSecret}
	t.Cleanup(func() {
		assertClean(t, "nsauth serve logs", srv.Logs.String(), secrets...)
		assertClean(t, "login output", r.errOut, secrets...)
	})

	tokenOut := runCLI(ctx, srv.URL, configDir, nil, "token")
	if tokenOut.code != 0 || strings.TrimSpace(tokenOut.out) != entry.AccessToken {
		t.Errorf("token: exit %d; want the stored access token on stdout\n%s", tokenOut.code, tokenOut.errOut)
	}
	checkZitadelAccepted(t, newClient(srv.URL), p, modeJWT, entry.AccessToken)
	who := runCLI(ctx, srv.URL, configDir, nil, "whoami", "-o", "json")
	if who.code != 0 || !strings.Contains(who.out, zitadelUsername) {
		t.Errorf("whoami: exit %d, does not show the user:\n%s%s", who.code, who.out, who.errOut)
	}
	assertClean(t, "whoami output", who.out+who.errOut, secrets...)
	st := runCLI(ctx, srv.URL, configDir, nil, "status", "--output", "json")
	if !strings.Contains(st.out, `"logged_in": true`) && !strings.Contains(st.out, `"logged_in":true`) {
		t.Errorf("status after login --device:\n%s%s", st.out, st.errOut)
	}
}

// TestHydraDeviceLoginUnsupported: Hydra v2.3.0 has no device
// authorization endpoint, so both device RPCs answer FailedPrecondition
// with a message naming what the provider lacks, and `nsauth login
// --device` fails pointing to the login that remains.
func TestHydraDeviceLoginUnsupported(t *testing.T) {
	t.Parallel()
	h := hydraFor(t, strategyJWT)
	var md map[string]any
	if err := getJSON(h.Issuer+"/.well-known/openid-configuration", &md); err != nil {
		t.Fatalf("Hydra's discovery document: %v", err)
	}
	if _, ok := md["device_authorization_endpoint"]; ok {
		t.Fatal("Hydra now advertises device_authorization_endpoint: run the device flow against it instead")
	}
	srv := startServe(t, nsauthEnv(h, introspectionEnv(modeJWT, nil)))
	client := newClient(srv.URL)
	ctx := context.Background()

	_, err := client.StartDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{}))
	checkNoDeviceEndpoint(t, "StartDeviceLogin", err)
	_, err = client.PollDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: randomHex(16)}))
	checkNoDeviceEndpoint(t, "PollDeviceLogin", err)

	r := runCLI(ctx, srv.URL, t.TempDir(), nil, "login", "--device", "--no-browser", "--timeout", "1m")
	if r.code == 0 || !strings.Contains(r.errOut, "nsauth login without --device") {
		t.Errorf("login --device with Hydra: exit %d; want a failure pointing to nsauth login without --device\n%s", r.code, r.errOut)
	}
	assertClean(t, "nsauth serve logs", srv.Logs.String(), h.ClientSecret)
}

func checkNoDeviceEndpoint(t *testing.T, rpc string, err error) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		t.Errorf("%s against a provider without device authorization: %v, want FailedPrecondition", rpc, err)
		return
	}
	if !strings.Contains(ce.Message(), "device_authorization_endpoint") {
		t.Errorf("%s: message %q does not say the provider lacks a device_authorization_endpoint", rpc, ce.Message())
	}
}

// startDeviceLogin calls StartDeviceLogin and checks the answer against
// what the example provider hands out (op.DeviceAuthorizationConfig in
// exampleop: the page at /device, 5 minutes, 5 s).
func startDeviceLogin(t *testing.T, client mgmtv1alpha1connect.AuthServiceClient, p *zitadelOP, scope *string) *mgmtv1alpha1.StartDeviceLoginResponse {
	t.Helper()
	resp, err := client.StartDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{Scope: scope}))
	if err != nil {
		t.Fatalf("StartDeviceLogin: %v", err)
	}
	m := resp.Msg
	if m.GetDeviceCode() == "" || m.GetUserCode() == "" {
		t.Fatalf("StartDeviceLogin: device code and user code present = %v, %v", m.GetDeviceCode() != "", m.GetUserCode() != "")
	}
	if want := p.Issuer + "/device"; m.GetVerificationUri() != want {
		t.Errorf("verification_uri %q, want %q", m.GetVerificationUri(), want)
	}
	if want := p.Issuer + "/device?user_code=" + url.QueryEscape(m.GetUserCode()); m.GetVerificationUriComplete() != want {
		t.Errorf("verification_uri_complete %q, want %q", m.GetVerificationUriComplete(), want)
	}
	if m.GetExpiresIn() <= 0 || m.GetExpiresIn() > 300 {
		t.Errorf("expires_in %d, want the provider's 300 s or a little less", m.GetExpiresIn())
	}
	if m.GetInterval() != 5 {
		t.Errorf("interval %d, want the provider's 5", m.GetInterval())
	}
	return m
}

// pollDeviceTokens polls, as a client must (waiting the interval before
// each poll, the one the last answer named), until the tokens come or a
// minute has passed.
func pollDeviceTokens(t *testing.T, client mgmtv1alpha1connect.AuthServiceClient, deviceCode string, interval time.Duration) *mgmtv1alpha1.AccessToken {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		time.Sleep(interval)
		resp, err := client.PollDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: deviceCode}))
		if err == nil {
			if resp.Msg.GetAccessToken() == nil {
				t.Fatal("PollDeviceLogin succeeded without tokens")
			}
			return resp.Msg.GetAccessToken()
		}
		d := deviceLoginError(err)
		pending := connect.CodeOf(err) == connect.CodeUnavailable && d.GetError() == "authorization_pending"
		slowDown := connect.CodeOf(err) == connect.CodeResourceExhausted && d.GetError() == "slow_down"
		if !pending && !slowDown || d.GetInterval() <= 0 {
			t.Fatalf("PollDeviceLogin after approval: %v with detail %v", err, d)
		}
		if time.Now().After(deadline) {
			t.Fatalf("PollDeviceLogin still answers %v a minute after approval", err)
		}
		interval = time.Duration(d.GetInterval()) * time.Second
	}
}

// deviceLoginError returns the DeviceLoginError detail of err, or nil.
func deviceLoginError(err error) *mgmtv1alpha1.DeviceLoginError {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return nil
	}
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if dle, ok := v.(*mgmtv1alpha1.DeviceLoginError); ok {
				return dle
			}
		}
	}
	return nil
}

// checkZitadelTokens checks PollDeviceLogin's tokens against what the
// example provider issues.
func checkZitadelTokens(t *testing.T, p *zitadelOP, accessToken string, tok *mgmtv1alpha1.AccessToken) {
	t.Helper()
	if tok.GetAccessToken() == "" || tok.GetIdToken() == "" {
		t.Fatalf("access and ID token present = %v, %v; want both", tok.GetAccessToken() != "", tok.GetIdToken() != "")
	}
	if !strings.EqualFold(tok.GetTokenType(), "bearer") {
		t.Errorf("token_type %q, want Bearer", tok.GetTokenType())
	}
	if d := time.Duration(tok.GetExpiresIn()) * time.Second; d <= zitadelAccessTokenTTL-time.Minute || d > zitadelAccessTokenTTL {
		t.Errorf("expires_in %v, want just under the provider's %v", d, zitadelAccessTokenTTL)
	}
	if !slices.Contains(strings.Fields(tok.GetScope()), "openid") {
		t.Errorf("scope %q lacks openid", tok.GetScope())
	}
	access, isJWT := payload(tok.GetAccessToken())
	switch {
	case accessToken == zitadelJWT && !isJWT:
		t.Error("the jwt client got an access token that is not a JWT")
	case accessToken == zitadelJWT:
		aud, _ := access["aud"].([]any)
		if access["iss"] != p.Issuer || access["sub"] != zitadelUsername || access["client_id"] != p.ClientID || !slices.Contains(aud, any(p.ClientID)) {
			t.Errorf("access token iss %v, sub %v, client_id %v, aud %v", access["iss"], access["sub"], access["client_id"], access["aud"])
		}
	case isJWT:
		t.Error("the opaque client got a JWT access token")
	}
	id, ok := payload(tok.GetIdToken())
	if !ok {
		t.Fatal("the ID token is not a JWT")
	}
	aud, _ := id["aud"].([]any)
	if id["iss"] != p.Issuer || id["sub"] != zitadelUsername || !slices.Contains(aud, any(p.ClientID)) {
		t.Errorf("ID token iss %v, sub %v, aud %v", id["iss"], id["sub"], id["aud"])
	}
}

// checkZitadelAccepted asserts that CheckToken accepts the device login's
// access token and describes its user.
func checkZitadelAccepted(t *testing.T, client mgmtv1alpha1connect.AuthServiceClient, p *zitadelOP, mode, token string) {
	t.Helper()
	resp, err := client.CheckToken(context.Background(), bearer(&mgmtv1alpha1.CheckTokenRequest{}, token))
	if err != nil {
		t.Fatalf("CheckToken: %v", err)
	}
	m := resp.Msg
	if m.GetSubject() != zitadelUsername {
		t.Errorf("CheckToken: subject %q, want %q", m.GetSubject(), zitadelUsername)
	}
	// The example's introspection answers carry no iss (RFC 7662 makes it
	// optional), and CheckToken reports what the provider said.
	if m.GetIssuer() != p.Issuer && (mode != modeIntrospection || m.GetIssuer() != "") {
		t.Errorf("CheckToken: issuer %q, want %q", m.GetIssuer(), p.Issuer)
	}
	// The example's JWT access tokens carry no scope claim; its
	// introspection answers name them.
	if mode == modeIntrospection && !slices.Contains(m.GetScopes(), "openid") {
		t.Errorf("CheckToken: scopes %v lack openid", m.GetScopes())
	}
	if until := time.Until(time.Unix(m.GetExpiresAt(), 0)); until <= zitadelAccessTokenTTL-2*time.Minute || until > zitadelAccessTokenTTL+time.Minute {
		t.Errorf("CheckToken: expires in %v, want about %v", until.Round(time.Second), zitadelAccessTokenTTL)
	}
}

var (
	// formAction is the action of the example's login form.
	formAction = regexp.MustCompile(`<form method="POST" action="([^"]+)"`)
	// confirmLink is where the example's Allow or Deny button goes.
	confirmLink = regexp.MustCompile(`location\.href='([^']*\?action=[a-z]+)'`)
)

// zitadelDevice is the user's side of a device login at the example
// provider's pages: open verificationURI, enter userCode when the page
// asks for one (not when the URI carries it), log in as the example user,
// check that the confirmation page names the client and scope, and press
// action's button ("allowed" or "denied").
func (b *browser) zitadelDevice(t *testing.T, verificationURI, userCode, clientID, scope, action string) {
	t.Helper()
	page, at := b.get(t, verificationURI)
	if userCode != "" {
		if !strings.Contains(page, `name="user_code"`) {
			t.Fatalf("%s asks for no user code:\n%s", at.Path, page)
		}
		// The code form posts to the page itself.
		page, at = b.post(t, at, at.String(), url.Values{"user_code": {userCode}})
	}
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("%s shows no login form:\n%s", at.Path, page)
	}
	page, at = b.post(t, at, m[1], url.Values{
		"user_code": {hiddenValue(page, "user_code")},
		"username":  {zitadelUsername},
		"password":  {zitadelPassword},
	})
	if !strings.Contains(page, "grant device "+clientID+" access to the following scopes: ["+scope+"]") {
		t.Errorf("the confirmation page does not name client %s and scopes [%s]:\n%s", clientID, scope, page)
	}
	var link string
	for _, l := range confirmLink.FindAllStringSubmatch(page, -1) {
		if strings.HasSuffix(l[1], "action="+action) {
			link = l[1]
		}
	}
	if link == "" {
		t.Fatalf("the confirmation page has no %q button:\n%s", action, page)
	}
	page, _ = b.get(t, resolve(t, at, link))
	if !strings.Contains(page, "Device authorization "+action) {
		t.Fatalf("after pressing %q the provider says:\n%s", action, page)
	}
}

// hiddenValue is the value of the hidden input name on page.
func hiddenValue(page, name string) string {
	m := regexp.MustCompile(`<input type="hidden" name="` + regexp.QuoteMeta(name) + `" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return m[1]
}

// get fetches u; the page must answer 200.
func (b *browser) get(t *testing.T, u string) (string, *url.URL) {
	t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return readPage(t, resp)
}

// post submits form to action, resolved against the page at from.
func (b *browser) post(t *testing.T, from *url.URL, action string, form url.Values) (string, *url.URL) {
	t.Helper()
	resp, err := b.client.PostForm(resolve(t, from, action), form)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return readPage(t, resp)
}

func readPage(t *testing.T, resp *http.Response) (string, *url.URL) {
	t.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("browser: HTTP %d at %s:\n%s", resp.StatusCode, resp.Request.URL.Path, body)
	}
	return string(body), resp.Request.URL
}

func resolve(t *testing.T, base *url.URL, ref string) string {
	t.Helper()
	r, err := url.Parse(ref)
	if err != nil {
		t.Fatalf("link %q: %v", ref, err)
	}
	return base.ResolveReference(r).String()
}

// getJSON fetches u and decodes its JSON body into out.
func getJSON(u string, out any) error {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}
