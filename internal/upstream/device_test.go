package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/internal/upstream"
)

func TestStartDeviceAuthenticatesAsTheClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		opts         []oidctest.Option
		wantBasic    bool
		wantInParams bool
	}{
		{"client_secret_basic", nil, true, false},
		{"client_secret_post", []oidctest.Option{oidctest.WithAuthMethods("client_secret_post")}, false, true},
		{"public client", []oidctest.Option{oidctest.WithPublicClient()}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := oidctest.New(t, append(tt.opts, oidctest.WithDeviceInterval(7))...)
			up := newProvider(t, p, func(c *upstream.Config) { c.Audience = "https://api.example.test" })
			if err := up.Init(context.Background()); err != nil {
				t.Fatal(err)
			}
			da, err := up.StartDevice(context.Background(), "openid offline_access")
			if err != nil {
				t.Fatalf("StartDevice: %v", err)
			}
			if da.DeviceCode == "" || da.UserCode == "" || da.Interval != 7 || da.ExpiresIn != 600 ||
				!strings.HasPrefix(da.VerificationURI, p.Server.URL) || !strings.Contains(da.VerificationURIComplete, da.UserCode) {
				t.Errorf("device authorization = %+v", *da)
			}
			if strings.Contains(da.String(), da.DeviceCode) {
				t.Errorf("String() shows the device code: %s", da)
			}
			var req *http.Request
			for _, r := range p.Requests() {
				if r.URL.Path == oidctest.PathDevice {
					req = r
				}
			}
			if _, _, basic := req.BasicAuth(); basic != tt.wantBasic {
				t.Errorf("basic auth used = %v, want %v", basic, tt.wantBasic)
			}
			form := p.Forms()[0]
			if form.Get("scope") != "openid offline_access" || form.Get("audience") != "https://api.example.test" {
				t.Errorf("device authorization form = %v", form)
			}
			if form.Has("client_secret") != tt.wantInParams || form.Get("client_id") == "" == !tt.wantBasic {
				t.Errorf("client_id %q, client_secret in the form %v; want the secret there: %v", form.Get("client_id"), form.Has("client_secret"), tt.wantInParams)
			}
		})
	}
}

func TestDeviceWithoutEndpoint(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithoutDeviceEndpoint())
	up := newProvider(t, p, nil)
	if err := up.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := up.StartDevice(context.Background(), "openid"); !errors.Is(err, upstream.ErrNoDeviceEndpoint) {
		t.Errorf("StartDevice = %v, want ErrNoDeviceEndpoint", err)
	}
	if _, err := up.PollDevice(context.Background(), "dc-x"); !errors.Is(err, upstream.ErrNoDeviceEndpoint) {
		t.Errorf("PollDevice = %v, want ErrNoDeviceEndpoint", err)
	}
	if n := p.Count(oidctest.PathDevice) + p.Count(oidctest.PathToken); n != 0 {
		t.Errorf("%d requests to the provider, want none", n)
	}
}

// TestPollDeviceAnswers: each RFC 8628 answer of the token endpoint is
// its own error, one request per poll, and no error holds the device code
// or the provider's words.
func TestPollDeviceAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		arrange func(p *oidctest.Provider, userCode string)
		code    func(deviceCode string) string
		want    error
		wantTok bool
	}{
		{"pending", func(*oidctest.Provider, string) {}, nil, upstream.ErrAuthorizationPending, false},
		{"slow down", func(p *oidctest.Provider, _ string) { p.QueueDeviceAnswers("slow_down") }, nil, upstream.ErrSlowDown, false},
		{"denied", func(p *oidctest.Provider, u string) { p.DenyDevice(u) }, nil, upstream.ErrAccessDenied, false},
		{"expired", func(p *oidctest.Provider, _ string) { p.ExpireDevices() }, nil, upstream.ErrExpiredToken, false},
		{"unknown device code", func(*oidctest.Provider, string) {}, func(string) string { return "dc-unknown" }, upstream.ErrRejected, false},
		{"other OAuth error", func(p *oidctest.Provider, _ string) { p.QueueDeviceAnswers("invalid_client") }, nil, upstream.ErrRejected, false},
		{"provider failing", func(p *oidctest.Provider, _ string) { p.SetFailure(oidctest.PathToken, oidctest.Status500) }, nil, upstream.ErrUnavailable, false},
		{"provider answering garbage", func(p *oidctest.Provider, _ string) { p.SetFailure(oidctest.PathToken, oidctest.Garbage) }, nil, upstream.ErrUnavailable, false},
		{"approved", func(p *oidctest.Provider, u string) { p.ApproveDevice(u) }, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := oidctest.New(t)
			up := newProvider(t, p, nil)
			if err := up.Init(context.Background()); err != nil {
				t.Fatal(err)
			}
			da, err := up.StartDevice(context.Background(), "openid offline_access")
			if err != nil {
				t.Fatal(err)
			}
			tt.arrange(p, da.UserCode)
			deviceCode := da.DeviceCode
			if tt.code != nil {
				deviceCode = tt.code(deviceCode)
			}
			tok, err := up.PollDevice(context.Background(), deviceCode)
			if p.Count(oidctest.PathToken) != 1 {
				t.Errorf("%d token requests, want exactly 1", p.Count(oidctest.PathToken))
			}
			if tt.wantTok {
				if err != nil || tok.AccessToken == "" || tok.RefreshToken == "" || tok.IDToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn != 900 {
					t.Fatalf("PollDevice = %+v, %v; want tokens", tok, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("PollDevice = %v, want %v", err, tt.want)
			}
			for _, secret := range []string{da.DeviceCode, oidctest.LeakBait, p.ClientSecret} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains a secret or the provider's body", err)
				}
			}
		})
	}
}

// TestStartDeviceRefusesUnusableResponses: a provider's response that a
// client could not use, or that could mislead a user, is unavailability.
func TestStartDeviceRefusesUnusableResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		failure oidctest.Failure
		want    error
	}{
		{"HTTP 500", oidctest.Status500, upstream.ErrUnavailable},
		{"not JSON", oidctest.Garbage, upstream.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := oidctest.New(t)
			up := newProvider(t, p, nil)
			if err := up.Init(context.Background()); err != nil {
				t.Fatal(err)
			}
			p.SetFailure(oidctest.PathDevice, tt.failure)
			_, err := up.StartDevice(context.Background(), "openid")
			if !errors.Is(err, tt.want) || strings.Contains(err.Error(), oidctest.LeakBait) {
				t.Errorf("StartDevice = %v, want %v without the provider's body", err, tt.want)
			}
		})
	}
}
