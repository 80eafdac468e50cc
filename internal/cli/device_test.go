package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/authservice"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/upstream"
)

// deviceClock is the clock of a device-login test: the client's waits
// between polls move it (and the server's, which shares it) forward at
// once, so a login of minutes runs in no time and nothing sleeps.
type deviceClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
	// onWait runs at the client's n-th wait (from 1), after the clock
	// moved; false keeps the client waiting for ever (until Ctrl-C or
	// --timeout).
	onWait func(n int) bool
}

func (c *deviceClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *deviceClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.waits = append(c.waits, d)
	n, now, onWait := len(c.waits), c.now, c.onWait
	c.mu.Unlock()
	if onWait != nil && !onWait(n) {
		return nil
	}
	ch := make(chan time.Time, 1)
	ch <- now
	return ch
}

func (c *deviceClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.waits)
}

// newDeviceEnv is newEnv with the server on clk.
func newDeviceEnv(t *testing.T, clk *deviceClock, opts ...oidctest.Option) *env {
	t.Helper()
	fake := oidctest.New(t, opts...)
	secrets, _ := json.Marshal(map[string]string{fake.ClientID: fake.ClientSecret})
	s := servetest.Start(t, servetest.Options{Env: map[string]string{
		"AUTH_BASEURL":         fake.Issuer,
		"AUTH_AUDIENCE":        fake.Audience,
		"AUTH_CLI_CLIENT_ID":   fake.ClientID,
		"AUTH_CLIENTID_SECRET": string(secrets),
	}, Now: clk.Now})
	e := &env{t: t, fake: fake, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
	e.apiURL = e.countingProxy(s.URL)
	return e
}

// runDevice runs `nsauth login --device --no-browser` (and args) on clk.
func runDevice(ctx context.Context, e *env, clk *deviceClock, errOut *syncBuffer, args ...string) result {
	var out syncBuffer
	app := &cli.App{In: strings.NewReader(""), Out: &out, ErrOut: errOut, Getenv: mapEnv(e.environ()), Now: clk.Now, After: clk.After}
	code := cli.Run(ctx, app, append([]string{"login", "--device", "--no-browser"}, args...), servercmd.Commands...)
	return result{code: code, out: out.String(), errOut: errOut.String()}
}

var userCodePattern = regexp.MustCompile(`shows the code (\S+)\.`)

// TestDeviceLogin: each way a device login ends, as the user sees it and
// as the exit status says, against `nsauth serve` brokering a provider
// whose user approves, refuses or lets the code expire at a given poll.
func TestDeviceLogin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []oidctest.Option
		// decide acts as the user (or the provider) before the n-th poll.
		decide    func(p *oidctest.Provider, userCode string, n int)
		wantCode  int
		wantOut   []string
		wantWaits []time.Duration
	}{
		{
			name: "approved at once",
			decide: func(p *oidctest.Provider, u string, n int) {
				p.ApproveDevice(u)
			},
			wantCode:  0,
			wantOut:   []string{"Logged in as Test User <user@example.test> until ", "refreshed automatically"},
			wantWaits: []time.Duration{5 * time.Second},
		},
		{
			name: "approved after two pending polls",
			decide: func(p *oidctest.Provider, u string, n int) {
				if n == 3 {
					p.ApproveDevice(u)
				}
			},
			wantCode:  0,
			wantOut:   []string{"Logged in as Test User"},
			wantWaits: []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second},
		},
		{
			name: "slow_down lengthens the interval",
			decide: func(p *oidctest.Provider, u string, n int) {
				switch n {
				case 1:
					p.QueueDeviceAnswers("slow_down")
				case 3:
					p.ApproveDevice(u)
				}
			},
			wantCode:  0,
			wantOut:   []string{"Logged in as Test User"},
			wantWaits: []time.Duration{5 * time.Second, 10 * time.Second, 10 * time.Second},
		},
		{
			name:      "the provider's interval",
			opts:      []oidctest.Option{oidctest.WithDeviceInterval(2)},
			decide:    func(p *oidctest.Provider, u string, n int) { p.ApproveDevice(u) },
			wantCode:  0,
			wantWaits: []time.Duration{2 * time.Second},
		},
		{
			name: "denied",
			decide: func(p *oidctest.Provider, u string, n int) {
				if n == 2 {
					p.DenyDevice(u)
				}
			},
			wantCode: 1,
			wantOut:  []string{"nsauth: the login was denied at the identity provider\n"},
		},
		{
			name: "expired",
			decide: func(p *oidctest.Provider, u string, n int) {
				if n == 2 {
					p.ExpireDevices()
				}
			},
			wantCode: 1,
			wantOut:  []string{"expired before the login was approved; run nsauth login --device again\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := &deviceClock{now: time.Now()}
			e := newDeviceEnv(t, clk, tt.opts...)
			errOut := &syncBuffer{}
			clk.onWait = func(n int) bool {
				m := userCodePattern.FindStringSubmatch(errOut.String())
				if m == nil {
					t.Errorf("no user code shown before polling:\n%s", errOut.String())
					return true
				}
				tt.decide(e.fake, m[1], n)
				return true
			}
			r := runDevice(context.Background(), e, clk, errOut)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s", r.code, tt.wantCode, r.errOut)
			}
			if r.out != "" {
				t.Errorf("login wrote to standard output: %q", r.out)
			}
			mustContain(t, "stderr", r.errOut, append([]string{
				// The fake provider is on loopback, as every httptest server.
				"To log in, open this URL in a browser on this machine:\n\n    " + e.fake.Server.URL + "/device?user_code=",
				"and check that it shows the code ",
				"The code expires at ",
				"Waiting for the login to be approved (Ctrl-C to cancel) …\n",
			}, tt.wantOut...)...)
			if tt.wantWaits != nil && !slices.Equal(clk.Waits(), tt.wantWaits) {
				t.Errorf("waited %v between polls, want %v", clk.Waits(), tt.wantWaits)
			}
			if n := e.fake.Count(oidctest.PathToken); n != len(clk.Waits()) {
				t.Errorf("%d polls reached the provider after %d waits: one each", n, len(clk.Waits()))
			}
			for _, secret := range e.fake.DeviceCodes() {
				mustNotContain(t, "stderr", r.errOut, secret)
			}
			if tt.wantCode == 0 {
				ent := e.entry()
				if ent.AccessToken == "" || ent.RefreshToken == "" {
					t.Errorf("stored entry lacks tokens: %v", ent)
				}
				mustNotContain(t, "stderr", r.errOut, ent.AccessToken, ent.RefreshToken, ent.IDToken)
			}
		})
	}
}

// TestDeviceLoginSaysWhere: `nsauth login --device` says "any device" only
// when the verification URL is reachable from other devices; a loopback one
// (an nsauth server's default issuer is http://localhost:8080) is for a
// browser on this machine, and the output says how to reach it from another
// device anyway (an SSH tunnel) and which server setting fixes it.
func TestDeviceLoginSaysWhere(t *testing.T) {
	t.Parallel()
	const note = "This URL is loopback: no other device can open it"
	const setting = "set NSAUTH_ISSUER (--issuer) on the nsauth server to a URL other devices reach"
	tests := []struct {
		name   string
		verify string // "" is the fake provider's own, http://127.0.0.1:PORT/device
		// want and wantNot are what standard error must and must not
		// contain; PORT stands for the fake provider's port.
		want, wantNot []string
	}{
		{
			name:    "a URL other devices reach",
			verify:  "https://auth.example.com/device",
			want:    []string{"open this URL in a browser on any device:\n\n    https://auth.example.com/device?user_code="},
			wantNot: []string{"loopback", "NSAUTH_ISSUER", "ssh -L", "this machine"},
		},
		{
			name:    "the default issuer's host name",
			verify:  "http://localhost:8080/device",
			want:    []string{"open this URL in a browser on this machine:\n\n    http://localhost:8080/device?user_code=", note, "(ssh -L 8080:localhost:8080 SERVER-HOST)", setting},
			wantNot: []string{"any device:"},
		},
		{
			name:    "an IPv4 loopback address",
			want:    []string{"open this URL in a browser on this machine:", note, "(ssh -L PORT:127.0.0.1:PORT SERVER-HOST)", setting},
			wantNot: []string{"any device:"},
		},
		{
			name:    "IPv6 loopback with the scheme's port",
			verify:  "https://[::1]/device",
			want:    []string{"open this URL in a browser on this machine:\n\n    https://[::1]/device?user_code=", note, "(ssh -L 443:[::1]:443 SERVER-HOST)", setting},
			wantNot: []string{"any device:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := &deviceClock{now: time.Now()}
			var opts []oidctest.Option
			if tt.verify != "" {
				opts = append(opts, oidctest.WithVerificationURI(tt.verify))
			}
			e := newDeviceEnv(t, clk, opts...)
			errOut := &syncBuffer{}
			clk.onWait = func(int) bool {
				if m := userCodePattern.FindStringSubmatch(errOut.String()); m != nil {
					e.fake.ApproveDevice(m[1])
				}
				return true
			}
			r := runDevice(context.Background(), e, clk, errOut)
			if r.code != 0 {
				t.Fatalf("exit %d, want 0\n%s", r.code, r.errOut)
			}
			_, port, err := net.SplitHostPort(strings.TrimPrefix(e.fake.Server.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				mustContain(t, "stderr", r.errOut, strings.ReplaceAll(w, "PORT", port))
			}
			mustNotContain(t, "stderr", r.errOut, tt.wantNot...)
		})
	}
}

// TestDeviceLoginStops: Ctrl-C and --timeout end a device login that is
// waiting, with exit status 1 and nothing stored.
func TestDeviceLoginStops(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		ctrlC    bool
		wantText string
	}{
		{"Ctrl-C", nil, true, "nsauth: login canceled\n"},
		{"--timeout", []string{"--timeout", "200ms"}, false, "nsauth: login timed out after 200ms\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := &deviceClock{now: time.Now()}
			e := newDeviceEnv(t, clk)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			waiting := make(chan struct{})
			clk.onWait = func(n int) bool {
				if n == 2 {
					close(waiting)
					return false // the user never decides
				}
				return true
			}
			done := make(chan result, 1)
			go func() { done <- runDevice(ctx, e, clk, &syncBuffer{}, tt.args...) }()
			if tt.ctrlC {
				<-waiting
				cancel()
			}
			r := wait(t, done)
			if r.code != cli.ExitFailure || !strings.HasSuffix(r.errOut, tt.wantText) {
				t.Errorf("exit %d, want 1 ending with %q:\n%s", r.code, tt.wantText, r.errOut)
			}
			if _, err := e.store().Load(e.normalizedURL()); err == nil {
				t.Error("tokens stored after a login that did not finish")
			}
		})
	}
}

// TestDeviceLoginAgainstAServerWithoutIt: an unmodified Neosync server
// (no StartDeviceLogin) and a provider without a device endpoint are
// named as such, with exit status 1.
func TestDeviceLoginAgainstAServerWithoutIt(t *testing.T) {
	t.Parallel()
	t.Run("unmodified Neosync", func(t *testing.T) {
		t.Parallel()
		fake := oidctest.New(t)
		provider, err := upstream.New(upstream.Config{BaseURL: fake.Issuer, ClientID: fake.ClientID, ClientSecret: fake.ClientSecret})
		if err != nil {
			t.Fatal(err)
		}
		if err := provider.Init(context.Background()); err != nil {
			t.Fatal(err)
		}
		svc, err := authservice.New(authservice.Config{Enabled: true, Broker: provider})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle(mgmtv1alpha1connect.NewAuthServiceHandler(oldServer{svc: svc}))
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		e := &env{t: t, fake: fake, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
		e.apiURL = e.countingProxy(srv.URL)
		clk := &deviceClock{now: time.Now()}
		r := runDevice(context.Background(), e, clk, &syncBuffer{})
		if r.code != cli.ExitFailure || r.errOut != "nsauth: this server does not offer device login (StartDeviceLogin): use nsauth login without --device\n" {
			t.Errorf("exit %d:\n%s", r.code, r.errOut)
		}
	})
	t.Run("provider without a device endpoint", func(t *testing.T) {
		t.Parallel()
		clk := &deviceClock{now: time.Now()}
		e := newDeviceEnv(t, clk, oidctest.WithoutDeviceEndpoint())
		r := runDevice(context.Background(), e, clk, &syncBuffer{})
		if r.code != cli.ExitFailure || r.errOut != "nsauth: this server cannot start device logins: its identity provider offers none, or not to the server's client; use nsauth login without --device\n" {
			t.Errorf("exit %d:\n%s", r.code, r.errOut)
		}
	})
}

// TestLoginSuggestsDeviceWithoutADisplay: when no browser opens and
// there is no display (an SSH session), login says that --device exists;
// with a display, it does not.
func TestLoginSuggestsDeviceWithoutADisplay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		env      map[string]string
		wantHint bool
	}{
		{"SSH session without a display", map[string]string{"SSH_CONNECTION": "192.0.2.1 5000 192.0.2.2 22"}, true},
		{"empty DISPLAY", map[string]string{"DISPLAY": ""}, true},
		{"X display", map[string]string{"DISPLAY": ":0"}, false},
		{"Wayland display", map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, false},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			environ := e.environ()
			environ["NSAUTH_CONFIG_DIR"] = filepath.Join(t.TempDir(), "config")
			environ["BROWSER"] = filepath.Join(t.TempDir(), "no-such-browser")
			for k, v := range tt.env {
				environ[k] = v
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errOut := &syncBuffer{}
			done := make(chan int, 1)
			go func() {
				app := &cli.App{In: strings.NewReader(""), Out: &syncBuffer{}, ErrOut: errOut, Getenv: mapEnv(environ), Now: time.Now}
				done <- cli.Run(ctx, app, []string{"login"})
			}()
			errOut.waitFor(t, regexp.MustCompile(`Waiting for the browser`), 10*time.Second)
			cancel()
			<-done
			hint := strings.Contains(errOut.String(), "nsauth login --device logs you in from a browser on any other device")
			if hint != tt.wantHint {
				t.Errorf("hint shown = %v, want %v:\n%s", hint, tt.wantHint, errOut.String())
			}
		})
	}
}

func TestDeviceRefusesBrowserFlags(t *testing.T) {
	t.Parallel()
	for _, flag := range [][]string{{"--manual"}, {"--port", "4242"}, {"--listen-address", "127.0.0.1"}, {"--redirect-host", "localhost"}} {
		t.Run(flag[0], func(t *testing.T) {
			t.Parallel()
			errOut := &syncBuffer{}
			app := &cli.App{In: strings.NewReader(""), Out: &syncBuffer{}, ErrOut: errOut, Getenv: mapEnv(map[string]string{"NSAUTH_CONFIG_DIR": t.TempDir()}), Now: time.Now}
			code := cli.Run(context.Background(), app, append([]string{"login", "--device"}, flag...))
			if code != cli.ExitUsage || !strings.Contains(errOut.String(), "--device does not use "+flag[0]) {
				t.Errorf("exit %d, want 2:\n%s", code, errOut.String())
			}
		})
	}
}

// scriptedServer is an AuthService whose device login answers as a test
// says: a server the CLI must not trust blindly, and failures a real one
// shows rarely.
type scriptedServer struct {
	mgmtv1alpha1connect.UnimplementedAuthServiceHandler
	start *mgmtv1alpha1.StartDeviceLoginResponse
	polls []error // nil: tokens

	mu sync.Mutex
	n  int
}

func (s *scriptedServer) GetAuthStatus(context.Context, *connect.Request[mgmtv1alpha1.GetAuthStatusRequest]) (*connect.Response[mgmtv1alpha1.GetAuthStatusResponse], error) {
	return connect.NewResponse(&mgmtv1alpha1.GetAuthStatusResponse{IsEnabled: true}), nil
}

func (s *scriptedServer) StartDeviceLogin(context.Context, *connect.Request[mgmtv1alpha1.StartDeviceLoginRequest]) (*connect.Response[mgmtv1alpha1.StartDeviceLoginResponse], error) {
	return connect.NewResponse(s.start), nil
}

func (s *scriptedServer) PollDeviceLogin(context.Context, *connect.Request[mgmtv1alpha1.PollDeviceLoginRequest]) (*connect.Response[mgmtv1alpha1.PollDeviceLoginResponse], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n >= len(s.polls) {
		return nil, connect.NewError(connect.CodeInternal, errors.New("script over"))
	}
	err := s.polls[s.n]
	s.n++
	if err != nil {
		return nil, err
	}
	rt := "rt-scripted"
	return connect.NewResponse(&mgmtv1alpha1.PollDeviceLoginResponse{AccessToken: &mgmtv1alpha1.AccessToken{
		AccessToken: "at-scripted", RefreshToken: &rt, ExpiresIn: 900, TokenType: "Bearer", Scope: "openid"}}), nil
}

func withRetryAfter(err *connect.Error, secs string) *connect.Error {
	err.Meta().Set("Retry-After", secs)
	return err
}

// TestDeviceLoginAgainstAScriptedServer: what the client does with
// answers a well-behaved nsauth rarely gives: per-address limits, passing
// failures, intervals out of bounds, and URLs or codes it must not show.
func TestDeviceLoginAgainstAScriptedServer(t *testing.T) {
	t.Parallel()
	normal := func() *mgmtv1alpha1.StartDeviceLoginResponse {
		return &mgmtv1alpha1.StartDeviceLoginResponse{DeviceCode: "dc-scripted-secret", UserCode: "BCDF-GHJK",
			VerificationUri: "https://idp.example/device", VerificationUriComplete: ptr("https://idp.example/device?user_code=BCDF-GHJK"),
			ExpiresIn: 600, Interval: 5}
	}
	unavailable := func() error { return connect.NewError(connect.CodeUnavailable, errors.New("provider down")) }
	pending := func() error {
		err := connect.NewError(connect.CodeUnavailable, errors.New("pending"))
		d, derr := connect.NewErrorDetail(&mgmtv1alpha1.DeviceLoginError{Error: "authorization_pending"})
		if derr != nil {
			t.Fatal(derr)
		}
		err.AddDetail(d)
		return err
	}
	tests := []struct {
		name      string
		start     func(*mgmtv1alpha1.StartDeviceLoginResponse)
		polls     []error
		wantCode  int
		wantOut   []string
		wantWaits []time.Duration
	}{
		{"per-address limit: Retry-After is kept", nil,
			[]error{withRetryAfter(connect.NewError(connect.CodeResourceExhausted, errors.New("too many")), "30"), nil},
			0, []string{"Logged in as "}, []time.Duration{5 * time.Second, 30 * time.Second}},
		{"per-address limit without Retry-After: 5 s more", nil,
			[]error{connect.NewError(connect.CodeResourceExhausted, errors.New("too many")), nil},
			0, nil, []time.Duration{5 * time.Second, 10 * time.Second}},
		{"a passing failure is retried", nil,
			[]error{unavailable(), unavailable(), nil},
			0, nil, []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second}},
		{"three failures in a row end it", nil,
			[]error{unavailable(), unavailable(), unavailable()},
			1, []string{"nsauth: waiting for the device login: the server or its identity provider is unavailable (unavailable)\n"}, nil},
		{"no interval: RFC 8628's 5 s", func(s *mgmtv1alpha1.StartDeviceLoginResponse) { s.Interval = 0 },
			[]error{nil}, 0, nil, []time.Duration{5 * time.Second}},
		{"an absurd interval is bounded", func(s *mgmtv1alpha1.StartDeviceLoginResponse) { s.Interval = 1 << 40 },
			[]error{nil}, 0, nil, []time.Duration{5 * time.Minute}},
		{"no complete URL: the code is typed", func(s *mgmtv1alpha1.StartDeviceLoginResponse) { s.VerificationUriComplete = nil },
			[]error{nil}, 0, []string{"    https://idp.example/device\n\nand enter the code BCDF-GHJK.\n"}, nil},
		{"a hostile complete URL is not shown", func(s *mgmtv1alpha1.StartDeviceLoginResponse) { s.VerificationUriComplete = ptr("javascript:alert(1)") },
			[]error{nil}, 0, []string{"    https://idp.example/device\n\nand enter the code BCDF-GHJK.\n"}, nil},
		{"a hostile verification URL ends it", func(s *mgmtv1alpha1.StartDeviceLoginResponse) { s.VerificationUri = "file:///etc/passwd" },
			nil, 1, []string{"nsauth: the server gave a verification URL that is not an http(s) URL; refusing to use it\n"}, nil},
		{"a verification URL with an escape sequence ends it", func(s *mgmtv1alpha1.StartDeviceLoginResponse) {
			s.VerificationUri = "https://idp.example/\x1b]0;pwned\x07device"
		},
			nil, 1, []string{"refusing to use it\n"}, nil},
		{"control characters in the user code are dropped", func(s *mgmtv1alpha1.StartDeviceLoginResponse) {
			s.UserCode, s.VerificationUriComplete = "BCDF\x1b[2J-GHJK", nil
		}, []error{nil}, 0, []string{"and enter the code BCDF[2J-GHJK.\n"}, nil},
		{"the code's lifetime ends it", func(s *mgmtv1alpha1.StartDeviceLoginResponse) { s.ExpiresIn = 12 },
			[]error{pending(), pending(), pending(), nil},
			1, []string{"The code expires at ", "nsauth: the code BCDF-GHJK expired before the login was approved; run nsauth login --device again\n"},
			[]time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second}},
		{"no lifetime: five minutes", func(s *mgmtv1alpha1.StartDeviceLoginResponse) { s.ExpiresIn, s.Interval = 0, 60 },
			[]error{pending(), pending(), pending(), pending(), pending(), pending()},
			1, []string{"expired before the login was approved"},
			[]time.Duration{time.Minute, time.Minute, time.Minute, time.Minute, time.Minute, time.Minute}},
		{"denied without a detail", nil,
			[]error{connect.NewError(connect.CodePermissionDenied, errors.New("no"))},
			1, []string{"nsauth: the login was denied at the identity provider\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &scriptedServer{start: normal(), polls: tt.polls}
			if tt.start != nil {
				tt.start(s.start)
			}
			mux := http.NewServeMux()
			mux.Handle(mgmtv1alpha1connect.NewAuthServiceHandler(s))
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			e := &env{t: t, apiURL: srv.URL, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
			clk := &deviceClock{now: time.Now()}
			r := runDevice(context.Background(), e, clk, &syncBuffer{})
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d:\n%s", r.code, tt.wantCode, r.errOut)
			}
			mustContain(t, "stderr", r.errOut, tt.wantOut...)
			mustNotContain(t, "stderr", r.errOut, "dc-scripted-secret", "javascript:", "\x1b")
			if tt.wantWaits != nil && !slices.Equal(clk.Waits(), tt.wantWaits) {
				t.Errorf("waited %v between polls, want %v", clk.Waits(), tt.wantWaits)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
