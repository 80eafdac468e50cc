package app_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/servetest"
)

// scrape returns the value of every series of /metrics, by its name and
// labels as exposed (`nsauth_logins_total{outcome="success"}`).
func scrape(t *testing.T, baseURL string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]float64{}
	for line := range strings.SplitSeq(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			series[line[:i]] = v
		}
	}
	return series
}

// TestAuthMetricsMove: logins, lockouts, refresh-token reuse, the token
// verification cache and provider latency each move their series.
func TestAuthMetricsMove(t *testing.T) {
	t.Parallel()
	env := builtinEnv(t)
	env["NSAUTH_LOGIN_ATTEMPTS_PER_MINUTE"] = "2"
	env["NSAUTH_REFRESH_TOKEN_REUSE_GRACE"] = "0s" // every reuse is one
	s := servetest.Start(t, servetest.Options{Env: env})
	api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, s.URL)
	ctx := context.Background()
	authorize := func() string {
		t.Helper()
		verifier := oauth2.GenerateVerifier()
		challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
		authz, err := api.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
			State: "metrics-state", RedirectUri: redirectURI, Scope: scope, CodeChallenge: &challenge, CodeChallengeMethod: &method,
		}))
		if err != nil {
			t.Fatalf("GetAuthorizeUrl: %v", err)
		}
		return authz.Msg.GetUrl() + "\x00" + verifier
	}
	before := scrape(t, s.URL)

	authURL, verifier, _ := strings.Cut(authorize(), "\x00")
	loc := issuertest.NewBrowser(t).Login(t, authURL, "admin", adminPassword)
	login, err := api.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{
		Code: loc.Query().Get("code"), RedirectUri: redirectURI, CodeVerifier: &verifier,
	}))
	if err != nil {
		t.Fatalf("LoginCli: %v", err)
	}
	tok := login.Msg.GetAccessToken()
	// The first check fetches the key set, which its cached result then
	// predates: the third is the first answered from the cache.
	for range 3 {
		check := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
		check.Header().Set("Authorization", "Bearer "+tok.GetAccessToken())
		if _, err := api.CheckToken(ctx, check); err != nil {
			t.Fatalf("CheckToken: %v", err)
		}
	}
	for i := range 2 {
		_, err := api.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: tok.GetRefreshToken()}))
		if (err == nil) != (i == 0) {
			t.Fatalf("RefreshCli #%d: %v", i+1, err)
		}
	}
	// Two wrong passwords use up the limit (the second locks out); the
	// third is refused by the lockout.
	browser := issuertest.NewBrowser(t)
	authURL, _, _ = strings.Cut(authorize(), "\x00")
	page := browser.Open(t, authURL)
	for range 3 {
		page = browser.Submit(t, page, "admin", "not the password")
	}
	after := scrape(t, s.URL)

	// Exact deltas: an event counted twice (by its site and by the
	// recorder that derives metrics from it) fails here.
	for _, tc := range []struct {
		name, series string
		want         float64
	}{
		{"successful login", `nsauth_logins_total{outcome="success"}`, 1},
		{"wrong password", `nsauth_logins_total{outcome="wrong_credentials"}`, 2},
		{"refused while locked out", `nsauth_logins_total{outcome="locked_out"}`, 1},
		{"no login busy", `nsauth_logins_total{outcome="busy"}`, 0},
		{"no login error", `nsauth_logins_total{outcome="error"}`, 0},
		{"lockout", `nsauth_lockouts_total`, 1},
		{"refresh token reuse", `nsauth_replays_total{kind="refresh_token"}`, 1},
		{"no code replayed", `nsauth_replays_total{kind="authorization_code"}`, 0},
		{"verification cache hit", `nsauth_token_verification_cache_total{result="hit"}`, 1},
		{"verification cache miss", `nsauth_token_verification_cache_total{result="miss"}`, 2},
		{"token endpoint latency", `nsauth_provider_request_duration_seconds_count{endpoint="token"}`, 3},
		{"JWKS latency", `nsauth_provider_request_duration_seconds_count{endpoint="jwks"}`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := after[tc.series] - before[tc.series]; got != tc.want {
				t.Errorf("%s moved by %v, want exactly %v", tc.series, got, tc.want)
			}
		})
	}
}

// TestAuditRefusalsDroppedMetricMoves: with room for one aggregated row of
// refusals a minute, the refusals that would start a second are counted by
// nsauth_audit_refusals_dropped_total.
func TestAuditRefusalsDroppedMetricMoves(t *testing.T) {
	t.Parallel()
	env := builtinEnv(t)
	env["NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE"] = "1"
	// A clock that stands still: the refusals fall in one minute.
	frozen := time.Now()
	s := servetest.Start(t, servetest.Options{Env: env, Now: func() time.Time { return frozen }})
	const series = "nsauth_audit_refusals_dropped_total"
	before := scrape(t, s.URL)
	if _, ok := before[series]; !ok {
		t.Fatalf("/metrics has no %s", series)
	}
	// One row for the unknown client's refusals; a client id without a
	// secret (another reason) would start a second, and is dropped.
	for _, form := range []url.Values{
		{"grant_type": {"client_credentials"}, "client_id": {"m-nobody"}, "client_secret": {"guess"}},
		{"grant_type": {"client_credentials"}, "client_id": {"m-nobody"}},
		{"grant_type": {"client_credentials"}, "client_id": {"m-nobody"}},
	} {
		resp, err := http.PostForm(s.URL+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token request %v: HTTP %d, want 401", form, resp.StatusCode)
		}
	}
	if got := scrape(t, s.URL)[series] - before[series]; got != 2 {
		t.Errorf("%s moved by %v, want 2", series, got)
	}
}
