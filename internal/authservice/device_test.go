package authservice_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/authservice"
	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/internal/server"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/upstream"
)

// clock is a test clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_900_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// lockedBuffer is a log destination safe for concurrent handlers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// deviceEnv is the AuthService (with the server's interceptors) brokering
// a fake provider, over HTTP/2 with TLS so that gRPC works too.
type deviceEnv struct {
	fake    *oidctest.Provider
	clock   *clock
	clients map[string]mgmtv1alpha1connect.AuthServiceClient // by protocol
	logs    *lockedBuffer
}

func newDeviceEnv(t *testing.T, opts ...oidctest.Option) *deviceEnv {
	t.Helper()
	fake := oidctest.New(t, opts...)
	up, err := upstream.New(upstream.Config{BaseURL: fake.Issuer, ClientID: fake.ClientID, ClientSecret: fake.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := &deviceEnv{fake: fake, clock: newClock(), logs: &lockedBuffer{}}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := authservice.New(authservice.Config{Enabled: true, Broker: up, Now: e.clock.Now, Logger: logger, AllowedScopes: []string{"openid", "profile", "email", "offline_access"}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := server.NewHandler(server.Config{Service: svc, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	e.clients = map[string]mgmtv1alpha1connect.AuthServiceClient{
		"connect": mgmtv1alpha1connect.NewAuthServiceClient(srv.Client(), srv.URL),
		"grpc":    mgmtv1alpha1connect.NewAuthServiceClient(srv.Client(), srv.URL, connect.WithGRPC()),
	}
	return e
}

func (e *deviceEnv) start(t *testing.T, protocol string) *mgmtv1alpha1.StartDeviceLoginResponse {
	t.Helper()
	resp, err := e.clients[protocol].StartDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{}))
	if err != nil {
		t.Fatalf("StartDeviceLogin: %v", err)
	}
	return resp.Msg
}

// deviceDetail returns err's DeviceLoginError detail, or nil.
func deviceDetail(err error) *mgmtv1alpha1.DeviceLoginError {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return nil
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if m, ok := v.(*mgmtv1alpha1.DeviceLoginError); ok {
				return m
			}
		}
	}
	return nil
}

func TestStartDeviceLogin(t *testing.T) {
	t.Parallel()
	e := newDeviceEnv(t, oidctest.WithDeviceInterval(3))
	for _, protocol := range []string{"connect", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			m := e.start(t, protocol)
			if m.GetDeviceCode() == "" || m.GetUserCode() == "" || m.GetInterval() != 3 || m.GetExpiresIn() != 600 ||
				!strings.HasPrefix(m.GetVerificationUri(), e.fake.Server.URL) || !strings.Contains(m.GetVerificationUriComplete(), m.GetUserCode()) {
				t.Errorf("StartDeviceLogin = %v", m)
			}
		})
	}
	// The default scope is asked for when the client names none.
	for _, f := range e.fake.Forms() {
		if f.Get("scope") != authservice.DefaultDeviceScope {
			t.Errorf("device authorization asked for scope %q, want %q", f.Get("scope"), authservice.DefaultDeviceScope)
		}
	}
}

func TestDeviceLoginRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newDeviceEnv(t)
	c := e.clients["connect"]
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"scope outside the allowlist", func() error {
			_, err := c.StartDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{Scope: ptr("openid admin")}))
			return err
		}},
		{"scope with a quote", func() error {
			_, err := c.StartDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{Scope: ptr(`openid "x`)}))
			return err
		}},
		{"oversized scope", func() error {
			_, err := c.StartDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{Scope: ptr(strings.Repeat("openid ", 200))}))
			return err
		}},
		{"no device code", func() error {
			_, err := c.PollDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{}))
			return err
		}},
		{"oversized device code", func() error {
			_, err := c.PollDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: strings.Repeat("a", upstream.MaxDeviceCodeBytes+1)}))
			return err
		}},
		{"device code with a space", func() error {
			_, err := c.PollDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: "dc x"}))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Errorf("err = %v, want InvalidArgument", err)
			}
		})
	}
	if n := e.fake.Count(oidctest.PathDevice) + e.fake.Count(oidctest.PathToken); n != 0 {
		t.Errorf("the provider was asked %d times, want never", n)
	}
}

// TestPollDeviceLoginAnswers: each of RFC 8628's answers becomes the
// Connect code the proto names, with its DeviceLoginError detail, over
// Connect and gRPC alike; nothing in an error or the log holds the device
// code or the provider's words.
func TestPollDeviceLoginAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		opts         []oidctest.Option
		arrange      func(p *oidctest.Provider, userCode string)
		deviceCode   string // instead of the one StartDeviceLogin gave
		wantCode     connect.Code
		wantDetail   string
		wantInterval int64
		wantMessage  string
	}{
		{"pending", nil, func(*oidctest.Provider, string) {}, "", connect.CodeUnavailable, "authorization_pending", 5, "not been approved yet; poll again in 5 s"},
		{"slow down", nil, func(p *oidctest.Provider, _ string) { p.QueueDeviceAnswers("slow_down") }, "", connect.CodeResourceExhausted, "slow_down", 10, "poll again in 10 s"},
		{"slow down from a longer interval", []oidctest.Option{oidctest.WithDeviceInterval(8)}, func(p *oidctest.Provider, _ string) { p.QueueDeviceAnswers("slow_down") }, "", connect.CodeResourceExhausted, "slow_down", 13, "poll again in 13 s"},
		{"denied", nil, func(p *oidctest.Provider, u string) { p.DenyDevice(u) }, "", connect.CodePermissionDenied, "access_denied", 0, "denied"},
		{"expired", nil, func(p *oidctest.Provider, _ string) { p.ExpireDevices() }, "", connect.CodeFailedPrecondition, "expired_token", 0, "expired"},
		{"unknown device code", nil, func(*oidctest.Provider, string) {}, "dc-never-issued", connect.CodeUnauthenticated, "", 0, "device code was rejected"},
		{"provider failing", nil, func(p *oidctest.Provider, _ string) { p.SetFailure(oidctest.PathToken, oidctest.Status500) }, "", connect.CodeUnavailable, "", 0, "identity provider is unavailable"},
	}
	for _, tt := range tests {
		for _, protocol := range []string{"connect", "grpc"} {
			t.Run(tt.name+"/"+protocol, func(t *testing.T) {
				t.Parallel()
				e := newDeviceEnv(t, tt.opts...)
				started := e.start(t, protocol)
				tt.arrange(e.fake, started.GetUserCode())
				deviceCode := started.GetDeviceCode()
				if tt.deviceCode != "" {
					deviceCode = tt.deviceCode
				}
				_, err := e.clients[protocol].PollDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: deviceCode}))
				if connect.CodeOf(err) != tt.wantCode {
					t.Fatalf("PollDeviceLogin = %v, want %v", err, tt.wantCode)
				}
				var ce *connect.Error
				if errors.As(err, &ce); !strings.Contains(ce.Message(), tt.wantMessage) {
					t.Errorf("message %q does not say %q", ce.Message(), tt.wantMessage)
				}
				d := deviceDetail(err)
				switch {
				case tt.wantDetail == "" && d != nil:
					t.Errorf("detail %v, want none", d)
				case tt.wantDetail != "" && (d == nil || d.GetError() != tt.wantDetail || d.GetInterval() != tt.wantInterval):
					t.Errorf("detail %v, want error %q interval %d", d, tt.wantDetail, tt.wantInterval)
				}
				if tt.wantDetail == "slow_down" && ce.Meta().Get("Retry-After") != "" && ce.Meta().Get("Retry-After") != "10" && ce.Meta().Get("Retry-After") != "13" {
					t.Errorf("Retry-After %q", ce.Meta().Get("Retry-After"))
				}
				for _, secret := range append(e.fake.DeviceCodes(), oidctest.LeakBait, e.fake.ClientSecret) {
					if strings.Contains(err.Error(), secret) || strings.Contains(e.logs.String(), secret) {
						t.Errorf("an error or the log holds a secret or the provider's body:\n%v\n%s", err, e.logs.String())
					}
				}
			})
		}
	}
}

func TestPollDeviceLoginApproved(t *testing.T) {
	t.Parallel()
	e := newDeviceEnv(t)
	started := e.start(t, "connect")
	e.fake.ApproveDevice(started.GetUserCode())
	resp, err := e.clients["connect"].PollDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: started.GetDeviceCode()}))
	if err != nil {
		t.Fatalf("PollDeviceLogin: %v", err)
	}
	at := resp.Msg.GetAccessToken()
	if at.GetAccessToken() == "" || at.GetRefreshToken() == "" || at.GetIdToken() == "" || at.GetTokenType() != "Bearer" || at.GetExpiresIn() != 900 ||
		at.GetScope() != authservice.DefaultDeviceScope {
		t.Errorf("access token = %v", at)
	}
	// The device code is used up at the provider.
	_, err = e.clients["connect"].PollDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: started.GetDeviceCode()}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("second poll after success = %v, want Unauthenticated", err)
	}
}

func TestDeviceLoginWithoutProviderEndpoint(t *testing.T) {
	t.Parallel()
	e := newDeviceEnv(t, oidctest.WithoutDeviceEndpoint())
	for _, protocol := range []string{"connect", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			_, err := e.clients[protocol].StartDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{}))
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition || !strings.Contains(ce.Message(), "device_authorization_endpoint") {
				t.Errorf("StartDeviceLogin = %v, want FailedPrecondition naming device_authorization_endpoint", err)
			}
			_, err = e.clients[protocol].PollDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: "dc-x"}))
			if connect.CodeOf(err) != connect.CodeFailedPrecondition || deviceDetail(err) != nil {
				t.Errorf("PollDeviceLogin = %v, want FailedPrecondition without a detail", err)
			}
		})
	}
	if n := e.fake.Count(oidctest.PathDevice) + e.fake.Count(oidctest.PathToken); n != 0 {
		t.Errorf("the provider was asked %d times, want never", n)
	}
}

// TestStartDeviceLoginRefusedByTheProvider: a provider that will not
// start a device login for the server's client is the server's
// configuration (FailedPrecondition), a refused scope the caller's
// (InvalidArgument).
func TestStartDeviceLoginRefusedByTheProvider(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		code     string
		wantCode connect.Code
		wantText string
	}{
		{"client not allowed the grant", http.StatusBadRequest, "unauthorized_client", connect.CodeFailedPrecondition, "is the device grant allowed for it?"},
		{"client not authenticated", http.StatusUnauthorized, "invalid_client", connect.CodeFailedPrecondition, "is the device grant allowed for it?"},
		{"scope refused", http.StatusBadRequest, "invalid_scope", connect.CodeInvalidArgument, "refused the requested scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var base string
			mux := http.NewServeMux()
			mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
				_ = json.NewEncoder(w).Encode(map[string]string{"issuer": base, "authorization_endpoint": base + "/authorize",
					"token_endpoint": base + "/token", "jwks_uri": base + "/jwks", "device_authorization_endpoint": base + "/device"})
			})
			mux.HandleFunc("/device", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(`{"error":"` + tt.code + `","error_description":"` + oidctest.LeakBait + `"}`))
			})
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			base = srv.URL
			up, err := upstream.New(upstream.Config{BaseURL: base, ClientID: "c", ClientSecret: "s"})
			if err != nil {
				t.Fatal(err)
			}
			if err := up.Init(context.Background()); err != nil {
				t.Fatal(err)
			}
			svc, err := authservice.New(authservice.Config{Enabled: true, Broker: up})
			if err != nil {
				t.Fatal(err)
			}
			_, err = svc.StartDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{}))
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != tt.wantCode || !strings.Contains(ce.Message(), tt.wantText) || strings.Contains(ce.Message(), oidctest.LeakBait) {
				t.Errorf("StartDeviceLogin = %v, want %v saying %q", err, tt.wantCode, tt.wantText)
			}
		})
	}
}

func TestDeviceLoginWhenAuthDisabled(t *testing.T) {
	t.Parallel()
	svc, err := authservice.New(authservice.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.StartDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("StartDeviceLogin = %v, want FailedPrecondition", err)
	}
	_, err = svc.PollDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: "dc"}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("PollDeviceLogin = %v, want FailedPrecondition", err)
	}
}

// TestPollDeviceLoginKeepsTheInterval: a poll before the interval is over
// is slow_down (the interval grows by 5 s, as RFC 8628 has providers do)
// and never reaches the provider; one after it does.
func TestPollDeviceLoginKeepsTheInterval(t *testing.T) {
	t.Parallel()
	e := newDeviceEnv(t)
	started := e.start(t, "connect")
	poll := func() error {
		_, err := e.clients["connect"].PollDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: started.GetDeviceCode()}))
		return err
	}
	steps := []struct {
		name         string
		advance      time.Duration
		wantDetail   string
		wantInterval int64
		wantProvider int // token requests so far
	}{
		{"first poll at once", 0, "authorization_pending", 5, 1},
		{"second poll too soon", 2 * time.Second, "slow_down", 10, 1},
		{"still too soon for the new interval", 5 * time.Second, "slow_down", 15, 1},
		{"after the interval", 10 * time.Second, "authorization_pending", 15, 2},
		{"a little early is forgiven", 14*time.Second + 600*time.Millisecond, "authorization_pending", 15, 3},
	}
	for _, s := range steps {
		e.clock.Advance(s.advance)
		err := poll()
		d := deviceDetail(err)
		if d == nil || d.GetError() != s.wantDetail || d.GetInterval() != s.wantInterval {
			t.Fatalf("%s: %v (detail %v), want %s with interval %d", s.name, err, d, s.wantDetail, s.wantInterval)
		}
		if n := e.fake.Count(oidctest.PathToken); n != s.wantProvider {
			t.Fatalf("%s: %d token requests, want %d", s.name, n, s.wantProvider)
		}
	}
	// Another device login has its own interval.
	other := e.start(t, "connect")
	if _, err := e.clients["connect"].PollDeviceLogin(context.Background(), connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: other.GetDeviceCode()})); deviceDetail(err).GetError() != "authorization_pending" {
		t.Errorf("first poll of another login = %v, want pending", err)
	}
}

// TestDevicePollRateLimitPerAddress: polls from one address have a budget
// of their own (--device-poll-rate-limit), apart from the one
// StartDeviceLogin shares with LoginCli, RefreshCli and RevokeCli
// (--rate-limit); over either, ResourceExhausted without asking the
// provider.
func TestDevicePollRateLimitPerAddress(t *testing.T) {
	t.Parallel()
	fake := oidctest.New(t)
	clk := newClock()
	secrets, _ := json.Marshal(map[string]string{fake.ClientID: fake.ClientSecret})
	srv := servetest.Start(t, servetest.Options{
		Env: map[string]string{
			"AUTH_BASEURL": fake.Issuer, "AUTH_AUDIENCE": fake.Audience,
			"AUTH_CLI_CLIENT_ID": fake.ClientID, "AUTH_CLIENTID_SECRET": string(secrets),
		},
		Args: []string{"--rate-limit", "2", "--device-poll-rate-limit", "3"},
		Now:  clk.Now,
	})
	c := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, srv.URL)
	ctx := context.Background()
	start := func() (*mgmtv1alpha1.StartDeviceLoginResponse, error) {
		resp, err := c.StartDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	poll := func(code string) error {
		_, err := c.PollDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: code}))
		return err
	}
	first, err := start()
	if err != nil {
		t.Fatal(err)
	}
	second, err := start()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := start(); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("third StartDeviceLogin = %v, want ResourceExhausted (--rate-limit 2)", err)
	}
	// Polls (each on its own device code, so no interval is broken) are
	// not held back by the spent StartDeviceLogin budget…
	steps := []struct {
		name string
		code string
		want connect.Code
	}{
		{"first login", first.GetDeviceCode(), connect.CodeUnavailable},
		{"second login", second.GetDeviceCode(), connect.CodeUnavailable},
		{"an unknown device code counts too", "dc-unknown", connect.CodeUnauthenticated},
		{"over the poll budget", first.GetDeviceCode() + "x", connect.CodeResourceExhausted},
	}
	for _, s := range steps {
		if err := poll(s.code); connect.CodeOf(err) != s.want {
			t.Fatalf("%s: %v, want %v", s.name, err, s.want)
		}
	}
	if n := fake.Count(oidctest.PathToken); n != 3 {
		t.Errorf("%d token requests, want 3: a poll over the budget must not reach the provider", n)
	}
	// …and the budget refills with time (3 a minute).
	clk.Advance(20 * time.Second)
	if err := poll(second.GetDeviceCode()); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("poll after 20 s: %v, want pending", err)
	}
}

func ptr[T any](v T) *T { return &v }
