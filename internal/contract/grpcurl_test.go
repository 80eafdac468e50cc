package contract_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/oidctest"
)

// tokenEnv carries the bearer token to grpcurl, which expands it into the
// header (-expand-headers), so that it never appears in a command line.
const tokenEnv = "NSAUTH_TEST_BEARER"

var (
	grpcurlOnce sync.Once
	grpcurlBin  string
	grpcurlErr  error
)

// grpcurlBinary builds grpcurl from tools/go.mod once per test binary. The
// subtests run in parallel: each running `go tool grpcurl` would compile it
// in parallel on a cold cache, and on a small machine some of them ran out
// of time.
func grpcurlBinary(t *testing.T) string {
	t.Helper()
	grpcurlOnce.Do(func() {
		toolsDir, err := filepath.Abs(filepath.Join("..", "..", "tools"))
		if err != nil {
			grpcurlErr = err
			return
		}
		grpcurlBin = filepath.Join(buildDir, "grpcurl")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // cold module and build caches
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", grpcurlBin, "github.com/fullstorydev/grpcurl/cmd/grpcurl")
		cmd.Dir = toolsDir
		if out, err := cmd.CombinedOutput(); err != nil {
			grpcurlErr = fmt.Errorf("building grpcurl from tools/go.mod: %v\n%s", err, out)
		}
	})
	if grpcurlErr != nil {
		t.Fatal(grpcurlErr)
	}
	return grpcurlBin
}

// grpcurl runs grpcurl, a generic gRPC client that knows nothing of our
// proto but what server reflection tells it, built from tools/go.mod. token,
// if not empty, is in its environment as $NSAUTH_TEST_BEARER.
func grpcurl(t *testing.T, token string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := grpcurlBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = os.Environ()
	if token != "" {
		cmd.Env = append(cmd.Env, tokenEnv+"="+token)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestGrpcurlThroughReflection: grpcurl lists the services and methods
// through reflection, calls them with JSON it translates using the
// reflected descriptors, and the health service answers SERVING.
func TestGrpcurlThroughReflection(t *testing.T) {
	t.Parallel()
	fake := oidctest.New(t)
	srv := startServer(t, providerEnv(fake))
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	host := u.Host
	token := fake.AccessToken()

	cases := []struct {
		name string
		args []string
		// want must all appear on stdout; a non-empty wantErr means the call
		// must fail with that text on stderr.
		want    []string
		wantErr string
	}{
		{
			name: "list services",
			args: []string{"-plaintext", host, "list"},
			want: []string{"mgmt.v1alpha1.AuthService", "grpc.health.v1.Health"},
		},
		{
			name: "list methods",
			args: []string{"-plaintext", host, "list", "mgmt.v1alpha1.AuthService"},
			want: []string{
				"mgmt.v1alpha1.AuthService.LoginCli", "mgmt.v1alpha1.AuthService.RefreshCli",
				"mgmt.v1alpha1.AuthService.CheckToken", "mgmt.v1alpha1.AuthService.GetAuthorizeUrl",
				"mgmt.v1alpha1.AuthService.GetAuthStatus", "mgmt.v1alpha1.AuthService.RevokeCli",
				"mgmt.v1alpha1.AuthService.StartDeviceLogin", "mgmt.v1alpha1.AuthService.PollDeviceLogin",
			},
		},
		{
			name: "describe a request message",
			args: []string{"-plaintext", host, "describe", "mgmt.v1alpha1.GetAuthorizeUrlRequest"},
			want: []string{"string state = 1;", "string redirect_uri = 2;", "string scope = 3;"},
		},
		{
			name: "health of the server",
			args: []string{"-plaintext", "-d", "{}", host, "grpc.health.v1.Health/Check"},
			want: []string{`"status": "SERVING"`},
		},
		{
			name: "health of AuthService",
			args: []string{"-plaintext", "-d", `{"service":"mgmt.v1alpha1.AuthService"}`, host, "grpc.health.v1.Health/Check"},
			want: []string{`"status": "SERVING"`},
		},
		{
			name: "GetAuthStatus",
			args: []string{"-plaintext", "-d", "{}", host, "mgmt.v1alpha1.AuthService/GetAuthStatus"},
			want: []string{`"isEnabled": true`},
		},
		{
			name: "GetAuthorizeUrl",
			args: []string{"-plaintext", "-d", `{"state":"grpcurl-state","redirectUri":"` + redirectURI + `","scope":"openid"}`, host, "mgmt.v1alpha1.AuthService/GetAuthorizeUrl"},
			want: []string{`"url": "` + fake.Server.URL + `/authorize?`, "state=grpcurl-state"},
		},
		{
			name: "CheckToken with a bearer header",
			args: []string{"-plaintext", "-expand-headers", "-H", "Authorization: Bearer ${" + tokenEnv + "}", "-d", "{}", host, "mgmt.v1alpha1.AuthService/CheckToken"},
			want: []string{`"subject": "` + fake.Subject + `"`, `"issuer": "` + fake.Issuer + `"`},
		},
		{
			name:    "CheckToken without a token",
			args:    []string{"-plaintext", "-d", "{}", host, "mgmt.v1alpha1.AuthService/CheckToken"},
			wantErr: "Code: Unauthenticated",
		},
		{
			name:    "GetAuthorizeUrl without state",
			args:    []string{"-plaintext", "-d", `{"redirectUri":"` + redirectURI + `","scope":"openid"}`, host, "mgmt.v1alpha1.AuthService/GetAuthorizeUrl"},
			wantErr: "Code: InvalidArgument",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, err := grpcurl(t, token, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(errOut, tc.wantErr) {
					t.Errorf("grpcurl %s: err %v, stderr %q; want a failure with %q", tc.name, err, errOut, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("grpcurl %s: %v\n%s", tc.name, err, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("grpcurl %s: output lacks %q:\n%s", tc.name, w, out)
				}
			}
		})
	}
}
