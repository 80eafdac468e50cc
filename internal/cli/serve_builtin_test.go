package cli_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

const (
	biAdminPassword = "builtin-admin-password"
	biRedirectURI   = "http://127.0.0.1:4242/api/auth/callback"
	biScope         = "openid profile email offline_access"
)

// biServer is one `nsauth serve` running its built-in provider in process.
type biServer struct {
	url    string // where it listens
	issuer string
	errOut *servetest.Buffer
	api    mgmtv1alpha1connect.AuthServiceClient
	srv    *servetest.Server
}

// startBuiltinServe runs `nsauth serve` on a free loopback port with the
// given environment (NSAUTH_DATA_DIR or NSAUTH_DATABASE_URL in it) and
// clock, and waits until the broker has discovered the provider.
func startBuiltinServe(t *testing.T, environ map[string]string, now func() time.Time, args ...string) *biServer {
	t.Helper()
	srv := servetest.Start(t, servetest.Options{Env: environ, Now: now, Args: args})
	m := regexp.MustCompile(`(?m)^  issuer: (\S+)$`).FindStringSubmatch(srv.Logs.String())
	if m == nil {
		t.Fatalf("no issuer in the banner:\n%s", srv.Logs.String())
	}
	return &biServer{
		url:    srv.URL,
		issuer: m[1],
		errOut: srv.Logs,
		api:    mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, srv.URL),
		srv:    srv,
	}
}

// waitReady waits until the server's broker has discovered the provider.
func (s *biServer) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v\n%s", err, s.errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// authorize asks the AuthService for an authorize URL with PKCE.
func (s *biServer) authorize(t *testing.T, verifier string) string {
	t.Helper()
	method, challenge := "S256", oauth2.S256ChallengeFromVerifier(verifier)
	resp, err := s.api.GetAuthorizeUrl(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: "cli-state", RedirectUri: biRedirectURI, Scope: biScope, CodeChallenge: &challenge, CodeChallengeMethod: &method,
	}))
	if err != nil {
		t.Fatalf("GetAuthorizeUrl: %v", err)
	}
	return resp.Msg.GetUrl()
}

func (s *biServer) loginCli(t *testing.T, code, verifier string) (*mgmtv1alpha1.AccessToken, error) {
	t.Helper()
	resp, err := s.api.LoginCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: biRedirectURI, CodeVerifier: &verifier}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetAccessToken(), nil
}

func (s *biServer) refreshCli(rt string) (*mgmtv1alpha1.AccessToken, error) {
	resp, err := s.api.RefreshCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: rt}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetAccessToken(), nil
}

func (s *biServer) checkToken(token string) (*mgmtv1alpha1.CheckTokenResponse, error) {
	req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
	req.Header().Set("Authorization", "Bearer "+token)
	resp, err := s.api.CheckToken(context.Background(), req)
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// login runs a whole CLI login against s as admin: authorize URL from the
// AuthService, the login form posted by an HTTP client, LoginCli.
func (s *biServer) login(t *testing.T) *mgmtv1alpha1.AccessToken {
	t.Helper()
	v := oauth2.GenerateVerifier()
	loc := issuertest.NewBrowser(t).Login(t, s.authorize(t, v), "admin", biAdminPassword)
	if loc.Query().Get("state") != "cli-state" {
		t.Fatalf("redirect %s lost the state", loc.Redacted())
	}
	tok, err := s.loginCli(t, loc.Query().Get("code"), v)
	if err != nil {
		t.Fatalf("LoginCli: %v", err)
	}
	return tok
}

func wantCode(t *testing.T, err error, code connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("error = %v, want %v", err, code)
	}
}

func tokenKID(t *testing.T, token string) string {
	t.Helper()
	seg, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		KID string `json:"kid"`
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.KID
}

func jwksKIDs(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KID)
	}
	slices.Sort(out)
	return out
}

// storeEnv returns the environment selecting a fresh store of backend b.
func storeEnv(t *testing.T, b storetest.Backend) map[string]string {
	env := map[string]string{"NSAUTH_ADMIN_PASSWORD": biAdminPassword}
	if b.Name == "postgres" {
		env["NSAUTH_DATABASE_URL"] = storetest.PostgresURL(t)
		env["NSAUTH_SECRET_KEY"] = seal.GenerateKey()
	} else {
		env["NSAUTH_DATA_DIR"] = filepath.Join(t.TempDir(), "data")
	}
	return env
}

// TestBuiltinFullFlow is the whole story over HTTP, on each backend:
// authorize URL → login form → code → LoginCli → CheckToken → RefreshCli →
// reuse of the old refresh token fails and revokes the family (the reuse
// grace is off: TestBuiltinReplicas covers it) → a token whose key was
// rotated out after it expired fails CheckToken.
func TestBuiltinFullFlow(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Time{})
		s := startBuiltinServe(t, storeEnv(t, b), clock.Now, "--signing-key-rotation", "1h", "--refresh-token-reuse-grace", "0")
		status, err := s.api.GetAuthStatus(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{}))
		if err != nil || !status.Msg.GetIsEnabled() {
			t.Fatalf("GetAuthStatus = %v, %v; want enabled", status, err)
		}
		s.waitReady(t)
		if s.issuer != defaultIssuer(s.url) {
			t.Fatalf("issuer %q is not derived from the listen address %q", s.issuer, s.url)
		}

		// Login.
		v := oauth2.GenerateVerifier()
		authURL := s.authorize(t, v)
		if !strings.HasPrefix(authURL, s.issuer+"/authorize?") {
			t.Fatalf("authorize URL %q is not the built-in provider's", authURL)
		}
		browser := issuertest.NewBrowser(t)
		page := browser.Open(t, authURL)
		if wrong := browser.Submit(t, page, "admin", "not-the-password"); wrong.Response.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password: HTTP %d", wrong.Response.StatusCode)
		}
		loc, err := issuertest.RedirectOf(browser.Submit(t, page, "admin", biAdminPassword))
		if err != nil {
			t.Fatal(err)
		}
		if got := loc.Scheme + "://" + loc.Host + loc.Path; got != biRedirectURI || loc.Query().Get("state") != "cli-state" {
			t.Fatalf("redirected to %s", loc.Redacted())
		}
		code := loc.Query().Get("code")
		first, err := s.loginCli(t, code, v)
		if err != nil {
			t.Fatalf("LoginCli: %v", err)
		}
		if first.GetRefreshToken() == "" || first.GetIdToken() == "" || first.GetTokenType() != "Bearer" || first.GetExpiresIn() != 900 {
			t.Fatalf("LoginCli token = expires_in %d, type %q, refresh %v, id %v", first.GetExpiresIn(), first.GetTokenType(), first.GetRefreshToken() != "", first.GetIdToken() != "")
		}
		if _, err := s.loginCli(t, code, v); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("second LoginCli with one code = %v, want Unauthenticated", err)
		}
		// The replay revoked what the code produced: start again.
		if _, err := s.refreshCli(first.GetRefreshToken()); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("refresh after a code replay = %v, want Unauthenticated", err)
		}

		tok := s.login(t)
		check, err := s.checkToken(tok.GetAccessToken())
		if err != nil {
			t.Fatalf("CheckToken: %v", err)
		}
		if check.GetIssuer() != s.issuer || check.GetSubject() == "" || !slices.Contains(check.GetScopes(), "offline_access") {
			t.Fatalf("CheckToken = %v", check)
		}
		if _, err := s.checkToken(tok.GetIdToken()); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("CheckToken accepted an ID token: %v", err)
		}

		// Refresh rotates; reuse revokes the family.
		next, err := s.refreshCli(tok.GetRefreshToken())
		if err != nil {
			t.Fatalf("RefreshCli: %v", err)
		}
		if next.GetRefreshToken() == "" || next.GetRefreshToken() == tok.GetRefreshToken() {
			t.Fatal("RefreshCli did not rotate the refresh token")
		}
		if _, err := s.checkToken(next.GetAccessToken()); err != nil {
			t.Fatalf("CheckToken of the refreshed token: %v", err)
		}
		_, err = s.refreshCli(tok.GetRefreshToken())
		wantCode(t, err, connect.CodeUnauthenticated)
		_, err = s.refreshCli(next.GetRefreshToken())
		wantCode(t, err, connect.CodeUnauthenticated)

		// Key rotation (every hour; 15-minute tokens): a token signed by the
		// old key keeps working while it lives, and fails once the key is
		// gone.
		oldKID := tokenKID(t, next.GetAccessToken())
		clock.Advance(46 * time.Minute)
		if kids := jwksKIDs(t, s.issuer); len(kids) != 2 {
			t.Fatalf("JWKS after 46 min = %v, want the key and its successor", kids)
		}
		clock.Advance(14 * time.Minute) // 60 min: the old key still signs
		lastOld := s.login(t)
		if tokenKID(t, lastOld.GetAccessToken()) != oldKID {
			t.Fatal("the successor signed before its time")
		}
		clock.Advance(2 * time.Minute) // 62 min: the successor signs
		fresh := s.login(t)
		newKID := tokenKID(t, fresh.GetAccessToken())
		if newKID == oldKID {
			t.Fatal("the key did not rotate")
		}
		if _, err := s.checkToken(lastOld.GetAccessToken()); err != nil {
			t.Fatalf("a live token of the previous key was refused: %v", err)
		}
		if _, err := s.checkToken(fresh.GetAccessToken()); err != nil {
			t.Fatalf("a token of the new key was refused: %v", err)
		}
		clock.Advance(18 * time.Minute) // 80 min: every old-key token has expired
		if kids := jwksKIDs(t, s.issuer); !slices.Equal(kids, []string{newKID}) {
			t.Fatalf("JWKS at 80 min = %v, want only %s", kids, newKID)
		}
		_, err = s.checkToken(lastOld.GetAccessToken())
		wantCode(t, err, connect.CodeUnauthenticated)
		if _, err := s.checkToken(s.login(t).GetAccessToken()); err != nil {
			t.Fatalf("a fresh token after the rotation was refused: %v", err)
		}
	})
}

// TestBuiltinFirstStart checks what `nsauth serve` tells the operator: the
// data location, the issuer and, once, the generated password, which no
// log line contains.
func TestBuiltinFirstStart(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"NSAUTH_DATA_DIR": dir}
	s := startBuiltinServe(t, env, time.Now, "--log-format", "json")
	out := s.errOut.String()
	m := regexp.MustCompile(`(?m)^  password: (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no generated password in the first-start banner:\n%s", out)
	}
	pw := m[1]
	for _, want := range []string{"data:   SQLite database " + filepath.Join(dir, "nsauth.db"), "issuer: " + defaultIssuer(s.url), "username: admin", "nsauth users passwd admin"} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, pw) != 1 {
		t.Fatalf("the password appears %d times on stderr, want once", strings.Count(out, pw))
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "{") && strings.Contains(line, pw) {
			t.Fatalf("a log line contains the password: %s", line)
		}
	}
	s.waitReady(t)
	v := oauth2.GenerateVerifier()
	loc := issuertest.NewBrowser(t).Login(t, s.authorize(t, v), "admin", pw)
	if _, err := s.loginCli(t, loc.Query().Get("code"), v); err != nil {
		t.Fatalf("the generated password does not log in: %v", err)
	}
	for _, line := range strings.Split(s.errOut.String(), "\n") {
		if strings.HasPrefix(line, "{") && (strings.Contains(line, pw) || strings.Contains(line, loc.Query().Get("code"))) {
			t.Fatalf("a log line contains a secret: %s", line)
		}
	}
}

func TestBuiltinSecondStartShowsNoPassword(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NSAUTH_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	first := startBuiltinServe(t, env, time.Now)
	if !strings.Contains(first.errOut.String(), "password:") {
		t.Fatal("first start shows no password")
	}
	second := startBuiltinServe(t, env, time.Now)
	out := second.errOut.String()
	if strings.Contains(out, "password:") || strings.Contains(out, "First start") {
		t.Fatalf("second start shows first-start output:\n%s", out)
	}
	if !strings.Contains(out, "issuer: "+defaultIssuer(second.url)) {
		t.Fatalf("second start does not name its issuer:\n%s", out)
	}
}

// TestBuiltinReplicas runs two `nsauth serve` processes on one PostgreSQL
// database behind a proxy that names their shared issuer: a login started
// on A finishes on B, a refresh on A is seen by B, and both serve the same
// keys and agree on one rotation.
func TestBuiltinReplicas(t *testing.T) {
	t.Parallel()
	pgURL := storetest.PostgresURL(t)
	clock := storetest.NewClock(time.Time{})

	// The proxy is the issuer's address; it alternates between replicas.
	var targets atomic.Value
	targets.Store([]*url.URL{})
	var n atomic.Uint64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts := targets.Load().([]*url.URL)
		if len(ts) == 0 {
			http.Error(w, "no replica yet", http.StatusBadGateway)
			return
		}
		httputil.NewSingleHostReverseProxy(ts[int(n.Add(1))%len(ts)]).ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	env := map[string]string{"NSAUTH_DATABASE_URL": pgURL, "NSAUTH_SECRET_KEY": seal.GenerateKey(), "NSAUTH_ADMIN_PASSWORD": biAdminPassword}
	var a, b *biServer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		a = startBuiltinServe(t, env, clock.Now, "--issuer", proxy.URL, "--signing-key-rotation", "1h")
	}()
	go func() {
		defer wg.Done()
		b = startBuiltinServe(t, env, clock.Now, "--issuer", proxy.URL, "--signing-key-rotation", "1h")
	}()
	wg.Wait()
	if a == nil || b == nil {
		t.Fatal("a replica did not start")
	}
	ua, _ := url.Parse(a.url)
	ub, _ := url.Parse(b.url)
	targets.Store([]*url.URL{ua, ub})
	a.waitReady(t)
	b.waitReady(t)
	if strings.Count(a.errOut.String()+b.errOut.String(), "First start") > 1 {
		t.Fatal("both replicas created the administrator")
	}
	if ka, kb := jwksKIDs(t, a.url), jwksKIDs(t, b.url); len(ka) != 1 || !slices.Equal(ka, kb) {
		t.Fatalf("replicas serve different keys: %v and %v", ka, kb)
	}

	// Start on A, finish on B.
	v := oauth2.GenerateVerifier()
	authURL := a.authorize(t, v)
	browser := issuertest.NewBrowser(t)
	browser.Rewrite = func(u *url.URL) { u.Host = ua.Host }
	page := browser.Open(t, authURL)
	if page.Response.StatusCode != http.StatusOK {
		t.Fatalf("login page on A: HTTP %d", page.Response.StatusCode)
	}
	browser.Rewrite = func(u *url.URL) { u.Host = ub.Host }
	loc, err := issuertest.RedirectOf(browser.Submit(t, page, "admin", biAdminPassword))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := b.loginCli(t, loc.Query().Get("code"), v)
	if err != nil {
		t.Fatalf("LoginCli on B: %v", err)
	}
	for _, s := range []*biServer{a, b} {
		if _, err := s.checkToken(tok.GetAccessToken()); err != nil {
			t.Fatalf("CheckToken on %s: %v", s.url, err)
		}
	}

	// Refresh on A; B answers the retry of a client that lost A's answer
	// with the same new token, within the reuse grace; after it, the old
	// token's reuse is detected on B.
	next, err := a.refreshCli(tok.GetRefreshToken())
	if err != nil {
		t.Fatalf("RefreshCli on A: %v", err)
	}
	retry, err := b.refreshCli(tok.GetRefreshToken())
	if err != nil || retry.GetRefreshToken() != next.GetRefreshToken() {
		t.Fatalf("retry on B within the reuse grace = %v (same refresh token: %v), want A's new refresh token", err, err == nil && retry.GetRefreshToken() == next.GetRefreshToken())
	}
	clock.Advance(30 * time.Second) // the default reuse grace
	_, err = b.refreshCli(tok.GetRefreshToken())
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = a.refreshCli(next.GetRefreshToken())
	wantCode(t, err, connect.CodeUnauthenticated)

	// Both decide about rotation at once; one key is added, both serve it.
	clock.Advance(46 * time.Minute)
	kids := make([][]string, 2)
	wg.Add(2)
	go func() { defer wg.Done(); kids[0] = jwksKIDs(t, a.url) }()
	go func() { defer wg.Done(); kids[1] = jwksKIDs(t, b.url) }()
	wg.Wait()
	if len(kids[0]) != 2 || !slices.Equal(kids[0], kids[1]) {
		t.Fatalf("after the rotation check: A %v, B %v; want the same two keys", kids[0], kids[1])
	}
	clock.Advance(16 * time.Minute)
	tokA, tokB := a.login(t), b.login(t)
	if tokenKID(t, tokA.GetAccessToken()) != tokenKID(t, tokB.GetAccessToken()) {
		t.Fatal("the replicas sign with different keys")
	}
	for _, s := range []*biServer{a, b} {
		for _, tk := range []*mgmtv1alpha1.AccessToken{tokA, tokB} {
			if _, err := s.checkToken(tk.GetAccessToken()); err != nil {
				t.Fatalf("CheckToken on %s after rotation: %v", s.url, err)
			}
		}
	}

	// A code redeemed on B and replayed on A is refused there, and the
	// refresh token issued from it on B is revoked.
	v2 := oauth2.GenerateVerifier()
	code := issuertest.NewBrowser(t).Login(t, a.authorize(t, v2), "admin", biAdminPassword).Query().Get("code")
	first, err := b.loginCli(t, code, v2)
	if err != nil {
		t.Fatalf("LoginCli on B: %v", err)
	}
	_, err = a.loginCli(t, code, v2)
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = b.refreshCli(first.GetRefreshToken())
	wantCode(t, err, connect.CodeUnauthenticated)
}

// TestBuiltinRequirePKCE checks that --require-pkce reaches both the
// AuthService and the built-in provider: without a challenge, the first
// answers InvalidArgument and the second redirects invalid_request to the
// client, even for the broker's confidential client; a login with PKCE
// still completes. Without the setting, both accept a login without PKCE.
func TestBuiltinRequirePKCE(t *testing.T) {
	t.Parallel()
	sqliteEnv := func() map[string]string {
		return map[string]string{"NSAUTH_ADMIN_PASSWORD": biAdminPassword, "NSAUTH_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	}
	servers := map[bool]*biServer{
		false: startBuiltinServe(t, sqliteEnv(), time.Now),
		true:  startBuiltinServe(t, sqliteEnv(), time.Now, "--require-pkce"),
	}
	for _, s := range servers {
		s.waitReady(t)
	}
	if !strings.Contains(servers[true].errOut.String(), "PKCE is required (NSAUTH_REQUIRE_PKCE)") {
		t.Errorf("the start-up log does not say PKCE is required:\n%s", servers[true].errOut.String())
	}
	if strings.Contains(servers[false].errOut.String(), "PKCE is required") {
		t.Errorf("the start-up log says PKCE is required although it is not")
	}
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, tc := range []struct {
		name    string
		require bool
		// What GetAuthorizeUrl without a challenge answers: 0 for a URL.
		authzCode connect.Code
		authzMsg  string
		// Where the provider's /authorize without a challenge leads: the
		// login page, or an error at the client's redirect URI.
		providerError, providerDescription string
	}{
		{"not required", false, 0, "", "", ""},
		{"required", true, connect.CodeInvalidArgument, "code_challenge is required: this server requires PKCE (S256)",
			"invalid_request", "PKCE is required: send a code_challenge with code_challenge_method=S256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := servers[tc.require]
			ctx := context.Background()

			authz, err := s.api.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{State: "cli-state", RedirectUri: biRedirectURI, Scope: biScope}))
			if tc.authzCode == 0 {
				if err != nil {
					t.Fatalf("GetAuthorizeUrl without a challenge: %v", err)
				}
			} else {
				var ce *connect.Error
				if !errors.As(err, &ce) || ce.Code() != tc.authzCode || ce.Message() != tc.authzMsg {
					t.Fatalf("GetAuthorizeUrl without a challenge: %v, want %v %q", err, tc.authzCode, tc.authzMsg)
				}
			}

			// The provider, asked without a challenge: at the URL the
			// AuthService built when it built one, else directly, as a
			// caller bypassing the AuthService would, with the broker's
			// client id.
			providerURL := s.issuer + "/authorize?" + url.Values{
				"client_id": {issuer.DefaultClientID}, "response_type": {"code"}, "redirect_uri": {biRedirectURI},
				"scope": {biScope}, "state": {"cli-state"},
			}.Encode()
			if authz != nil {
				providerURL = authz.Msg.GetUrl()
			}
			resp, err := noRedirects.Get(providerURL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("/authorize without a challenge: HTTP %d", resp.StatusCode)
			}
			if tc.providerError == "" {
				if loc.Path != "/login" {
					t.Fatalf("/authorize without a challenge led to %s, want the login page", loc.Redacted())
				}
			} else {
				q := loc.Query()
				if loc.Scheme+"://"+loc.Host+loc.Path != biRedirectURI || q.Get("error") != tc.providerError ||
					q.Get("error_description") != tc.providerDescription || q.Get("state") != "cli-state" {
					t.Fatalf("/authorize without a challenge led to %s, want error=%s %q at the client", loc.Redacted(), tc.providerError, tc.providerDescription)
				}
			}

			_, err = s.api.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: "some-code", RedirectUri: biRedirectURI}))
			if tc.require {
				var ce *connect.Error
				const want = "code_verifier is required: this server requires PKCE (S256)"
				if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || ce.Message() != want {
					t.Fatalf("LoginCli without a verifier: %v, want invalid_argument %q", err, want)
				}
			} else {
				// Not refused for want of a verifier: the provider judges
				// the (made-up) code.
				wantCode(t, err, connect.CodeUnauthenticated)
			}

			if tok := s.login(t); tok.GetAccessToken() == "" {
				t.Fatal("a login with PKCE returned no access token")
			}
		})
	}
}

// TestBuiltinAuthorizeRateLimit checks that --authorize-rate-limit reaches
// the provider: a limit of 2 refuses the third authorize request from one
// address, and 0 refuses none.
func TestBuiltinAuthorizeRateLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		setting string
		want    []int
	}{
		{"2 a minute", "2", []int{http.StatusFound, http.StatusFound, http.StatusTooManyRequests}},
		{"0 is no limit", "0", slices.Repeat([]int{http.StatusFound}, 80)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"NSAUTH_DATA_DIR": filepath.Join(t.TempDir(), "data"), "NSAUTH_ADMIN_PASSWORD": biAdminPassword}
			s := startBuiltinServe(t, env, time.Now, "--authorize-rate-limit", tc.setting)
			s.waitReady(t)
			authURL := s.authorize(t, oauth2.GenerateVerifier())
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			for i, want := range tc.want {
				resp, err := client.Get(authURL)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Fatalf("request %d: HTTP %d, want %d", i+1, resp.StatusCode, want)
				}
			}
		})
	}
}

// TestBuiltinFirstStartBeyondLoopbackShowsNoPassword: a server listening on
// every interface with its standard error not a terminal (a container's or
// a unit's log) creates the administrator but does not print the generated
// password; it says how to choose one, and that way works.
func TestBuiltinFirstStartBeyondLoopbackShowsNoPassword(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	s := servetest.Start(t, servetest.Options{
		Env:  map[string]string{"NSAUTH_DATA_DIR": dir, "NSAUTH_ISSUER": "https://auth.example.com"},
		Args: []string{"--listen", "0.0.0.0:0"},
	})
	if code := s.Stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	out := s.Logs.String()
	if regexp.MustCompile(`(?m)^\s*password: `).MatchString(out) {
		t.Fatalf("a generated password was printed into what is likely a log:\n%s", out)
	}
	for _, want := range []string{`First start: created the administrator account "admin"`, "nsauth users passwd admin", "NSAUTH_ADMIN_PASSWORD"} {
		if !strings.Contains(out, want) {
			t.Errorf("first start output lacks %q:\n%s", want, out)
		}
	}
	env := map[string]string{"NSAUTH_DATA_DIR": dir}
	if r := runUsers(env, nil, "list"); r.code != 0 || !strings.Contains(r.out, "admin") {
		t.Fatalf("users list: exit %d, out %q, err %q: want the administrator", r.code, r.out, r.errOut)
	}
	if r := runUsers(env, strings.NewReader("a-chosen-admin-password\n"), "passwd", "admin"); r.code != 0 {
		t.Fatalf("users passwd admin: exit %d: %s", r.code, r.errOut)
	}
	st, err := store.OpenSQLite(context.Background(), dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.UserByUsername(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := password.Verify("a-chosen-admin-password", u.PasswordHash); err != nil || !ok {
		t.Fatalf("the chosen password does not verify: %v %v", ok, err)
	}
}
