//go:build interop

package interop_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// loginURLPattern finds the URL `nsauth login` prints, indented, alone on
// its line.
var loginURLPattern = regexp.MustCompile(`(?m)^    (https?://\S+)$`)

// cliResult is one finished client command.
type cliResult struct {
	code        int
	out, errOut string
}

// runCLI runs an nsauth client command in process against apiURL with
// configDir for its tokens, and an environment of nothing else.
func runCLI(ctx context.Context, apiURL, configDir string, errOut *lockedBuffer, args ...string) cliResult {
	var out lockedBuffer
	if errOut == nil {
		errOut = &lockedBuffer{}
	}
	env := map[string]string{"NSAUTH_API_URL": apiURL}
	app := &cli.App{In: strings.NewReader(""), Out: &out, ErrOut: errOut, Getenv: mapEnv(env), Now: time.Now}
	code := cli.Run(ctx, app, append(args, "--config-dir", configDir), servercmd.Commands...)
	return cliResult{code: code, out: out.String(), errOut: errOut.String()}
}

// waitLoginURL returns the URL a running `nsauth login` printed on
// errOut, failing when it ends or prints none within 30 s.
func waitLoginURL(t *testing.T, errOut *lockedBuffer, done <-chan cliResult) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := loginURLPattern.FindStringSubmatch(errOut.String()); m != nil {
			return m[1]
		}
		select {
		case r := <-done:
			t.Fatalf("login ended before printing a URL: exit %d\n%s", r.code, r.errOut)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("login printed no URL:\n%s", errOut.String())
		}
	}
}

// TestHydraNsauthLogin is the terminal client end to end: `nsauth login`
// prints Hydra's authorize URL (through nsauth serve), a browser follows it
// through Hydra's login and consent to the command's loopback callback,
// and then token, whoami, status and logout work on what it stored.
func TestHydraNsauthLogin(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		strategy string
		mode     string
	}{
		{"jwt tokens, jwt mode", strategyJWT, modeJWT},
		{"opaque tokens, introspection mode", strategyOpaque, modeIntrospection},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := hydraFor(t, tc.strategy)
			env := introspectionEnv(tc.mode, nil)
			if tc.mode != modeJWT {
				env["NSAUTH_INTROSPECTION_URL"] = h.IntrospectionURL()
			}
			srv := startServe(t, nsauthEnv(h, env))
			configDir := t.TempDir()
			ctx := context.Background()

			loginErr := &lockedBuffer{}
			done := make(chan cliResult, 1)
			go func() { done <- runCLI(ctx, srv.URL, configDir, loginErr, "login", "--no-browser", "--timeout", "2m") }()
			authURL := waitLoginURL(t, loginErr, done)
			if !strings.HasPrefix(authURL, h.Issuer+"/oauth2/auth?") {
				t.Fatalf("login URL is not Hydra's authorize endpoint: %s", authURL)
			}

			status, page := newBrowser(t).open(t, authURL)
			if status != http.StatusOK || !strings.Contains(page, "You are logged in") {
				t.Errorf("the browser ended on HTTP %d:\n%s", status, page)
			}
			var r cliResult
			select {
			case r = <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("login did not finish after the browser came back")
			}
			if r.code != 0 {
				t.Fatalf("login: exit %d\n%s", r.code, r.errOut)
			}
			if !strings.Contains(r.errOut, "Logged in as "+userName+" <"+userEmail+">") {
				t.Errorf("login did not name the user:\n%s", r.errOut)
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
			secrets := []string{entry.AccessToken, entry.RefreshToken, entry.IDToken, h.ClientSecret}
			t.Cleanup(func() {
				assertClean(t, "nsauth serve logs", srv.Logs.String(), secrets...)
				assertClean(t, "login output", r.errOut, secrets...)
			})
			if entry.RefreshToken == "" {
				t.Error("login stored no refresh token")
			}

			tokenOut := runCLI(ctx, srv.URL, configDir, nil, "token")
			if tokenOut.code != 0 || strings.TrimSpace(tokenOut.out) != entry.AccessToken {
				t.Errorf("token: exit %d; want the stored access token on stdout\n%s", tokenOut.code, tokenOut.errOut)
			}
			client := newClient(srv.URL)
			checkAccepted(t, client, h, entry.AccessToken)

			who := runCLI(ctx, srv.URL, configDir, nil, "whoami", "-o", "json")
			if who.code != 0 {
				t.Fatalf("whoami: exit %d\n%s", who.code, who.errOut)
			}
			var ident map[string]any
			if err := json.Unmarshal([]byte(who.out), &ident); err != nil {
				t.Fatalf("whoami JSON: %v\n%s", err, who.out)
			}
			if !strings.Contains(who.out, userSubject) || !strings.Contains(who.out, userEmail) {
				t.Errorf("whoami does not show the user:\n%s", who.out)
			}
			assertClean(t, "whoami output", who.out+who.errOut, secrets...)

			out := runCLI(ctx, srv.URL, configDir, nil, "logout")
			if out.code != 0 || !strings.Contains(out.errOut, "Revoked the refresh token at the identity provider.") {
				t.Errorf("logout: exit %d\n%s", out.code, out.errOut)
			}
			_, err = client.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: entry.RefreshToken}))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("RefreshCli with the refresh token logout revoked: %v, want Unauthenticated", err)
			}
			st := runCLI(ctx, srv.URL, configDir, nil, "status", "--output", "json")
			if !strings.Contains(st.out, `"logged_in": false`) && !strings.Contains(st.out, `"logged_in":false`) {
				t.Errorf("status after logout:\n%s%s", st.out, st.errOut)
			}
		})
	}
}
