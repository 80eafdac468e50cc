package authservice_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"

	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/authservice"
	"github.com/nsauth/nsauth/internal/redirect/redirecttest"
	"github.com/nsauth/nsauth/internal/upstream"
)

// checkingBroker fails the test if the service hands it input that should
// have been refused.
type checkingBroker struct{ t *testing.T }

func (b checkingBroker) clean(what, v string, max int) {
	if v == "" || len(v) > max || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		b.t.Fatalf("broker got an invalid %s (%d bytes)", what, len(v))
	}
}

func (b checkingBroker) AuthorizeURL(r upstream.AuthorizeRequest) (string, error) {
	b.clean("state", r.State, redirecttest.MaxStateBytes)
	b.clean("scope", r.Scope, redirecttest.MaxScopeBytes)
	if !redirecttest.MayBeAccepted(r.RedirectURI, nil) {
		b.t.Fatalf("broker got a bad redirect URI %q", r.RedirectURI)
	}
	if r.CodeChallenge != "" && r.CodeChallengeMethod != "S256" {
		b.t.Fatalf("broker got challenge method %q", r.CodeChallengeMethod)
	}
	return "https://provider.example/authorize", nil
}

func (b checkingBroker) Exchange(_ context.Context, code, redirectURI, verifier string) (*upstream.Token, error) {
	b.clean("code", code, redirecttest.MaxCodeBytes)
	if !redirecttest.MayBeAccepted(redirectURI, nil) {
		b.t.Fatalf("broker got a bad redirect URI %q", redirectURI)
	}
	if verifier != "" && (len(verifier) < 43 || len(verifier) > 128) {
		b.t.Fatalf("broker got a verifier of %d bytes", len(verifier))
	}
	return &upstream.Token{AccessToken: "a", TokenType: "Bearer"}, nil
}

func (b checkingBroker) Refresh(_ context.Context, rt string) (*upstream.Token, error) {
	b.clean("refresh token", rt, redirecttest.MaxRefreshTokenBytes)
	return &upstream.Token{AccessToken: "a", TokenType: "Bearer"}, nil
}

func (b checkingBroker) Revoke(_ context.Context, rt string) (bool, error) {
	b.clean("refresh token", rt, redirecttest.MaxRefreshTokenBytes)
	return true, nil
}

func (b checkingBroker) StartDevice(_ context.Context, scope string) (*upstream.DeviceAuthorization, error) {
	b.clean("scope", scope, redirecttest.MaxScopeBytes)
	return &upstream.DeviceAuthorization{DeviceCode: "dc", UserCode: "AB-CD", VerificationURI: "https://provider.example/device", ExpiresIn: 600, Interval: 5}, nil
}

func (b checkingBroker) PollDevice(_ context.Context, deviceCode string) (*upstream.Token, error) {
	b.clean("device code", deviceCode, upstream.MaxDeviceCodeBytes)
	return &upstream.Token{AccessToken: "a", TokenType: "Bearer"}, nil
}

var fuzzProcedures = []string{
	mgmtv1alpha1connect.AuthServiceGetAuthStatusProcedure,
	mgmtv1alpha1connect.AuthServiceGetAuthorizeUrlProcedure,
	mgmtv1alpha1connect.AuthServiceLoginCliProcedure,
	mgmtv1alpha1connect.AuthServiceRefreshCliProcedure,
	mgmtv1alpha1connect.AuthServiceCheckTokenProcedure,
	mgmtv1alpha1connect.AuthServiceRevokeCliProcedure,
	mgmtv1alpha1connect.AuthServiceStartDeviceLoginProcedure,
	mgmtv1alpha1connect.AuthServicePollDeviceLoginProcedure,
}

// FuzzRPCRequests posts arbitrary bodies, as Connect JSON or binary, to
// every procedure: the server must never panic or answer 5xx, and the
// broker must only ever see validated input.
func FuzzRPCRequests(f *testing.F) {
	seeds := []struct {
		proc int
		json bool
		body string
	}{
		{0, true, `{}`},
		{1, true, `{"state":"s","redirectUri":"http://127.0.0.1:4242/cb","scope":"openid","codeChallenge":"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM","codeChallengeMethod":"S256"}`},
		{2, true, `{"code":"abc","redirectUri":"http://127.0.0.1:4242/cb","codeVerifier":"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"}`},
		{3, true, `{"refreshToken":"rt"}`},
		{4, true, `{}`},
		{5, true, `{"refreshToken":"rt"}`},
		{1, false, "\x0a\x01s\x12\x1ahttp://127.0.0.1:4242/cb\x1a\x06openid"},
		{2, false, "\x0a\x03abc\x12\x18http://127.0.0.1:4242/cb"},
		{1, true, `{"state":"\u0000","redirectUri":"http://127.0.0.1@evil/","scope":"x"}`},
		{6, true, `{}`},
		{6, true, `{"scope":"openid offline_access"}`},
		{7, true, `{"deviceCode":"dc"}`},
		{7, false, "\x0a\x02dc"},
	}
	for _, s := range seeds {
		f.Add(s.proc, s.json, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, proc int, asJSON bool, body []byte) {
		svc, err := authservice.New(authservice.Config{Enabled: true, Broker: checkingBroker{t}})
		if err != nil {
			t.Fatal(err)
		}
		_, handler := mgmtv1alpha1connect.NewAuthServiceHandler(svc)
		procedure := fuzzProcedures[uint(proc)%uint(len(fuzzProcedures))]
		req := httptest.NewRequest(http.MethodPost, procedure, bytes.NewReader(body))
		if asJSON {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Header.Set("Content-Type", "application/proto")
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		// CheckToken without the authn interceptor reports Unauthenticated
		// (never "valid"), which is a 401, not a 5xx.
		if rec.Code >= 500 {
			t.Fatalf("%s answered %d: %s", procedure, rec.Code, rec.Body.String())
		}
	})
}
