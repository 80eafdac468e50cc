package loopback_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/loopback"
)

const state = "expected-state-0123456789abcdef"

// noRedirect is the test's "browser".
var browser = &http.Client{Timeout: 5 * time.Second}

type response struct {
	status int
	body   string
	header http.Header
}

func do(t *testing.T, method, target, host string) response {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(b), resp.Header}
}

func callbackURL(l *loopback.Listener, q url.Values) string {
	return l.RedirectURI() + "?" + q.Encode()
}

func listen(t *testing.T, cfg loopback.Config) *loopback.Listener {
	t.Helper()
	if cfg.State == "" {
		cfg.State = state
	}
	l, err := loopback.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func assertClosed(t *testing.T, l *loopback.Listener) {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second)
	if err == nil {
		c.Close()
		t.Errorf("listener %s still accepts connections after Wait returned", l.Addr())
	}
}

func TestCallbackOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		query      url.Values
		wantCode   string
		wantErr    error
		wantStatus int
		wantBody   []string
		notBody    []string
	}{
		{
			name:       "success",
			query:      url.Values{"code": {"the-code"}, "state": {state}},
			wantCode:   "the-code",
			wantStatus: http.StatusOK,
			wantBody:   []string{"You are logged in"},
			notBody:    []string{"the-code"},
		},
		{
			name:       "wrong state",
			query:      url.Values{"code": {"the-code"}, "state": {"other-state"}},
			wantErr:    loopback.ErrStateMismatch,
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{"does not belong to the login"},
		},
		{
			name:       "missing state",
			query:      url.Values{"code": {"the-code"}},
			wantErr:    loopback.ErrStateMismatch,
			wantStatus: http.StatusBadRequest,
		},
		{
			name:       "state prefix",
			query:      url.Values{"code": {"the-code"}, "state": {state[:10]}},
			wantErr:    loopback.ErrStateMismatch,
			wantStatus: http.StatusBadRequest,
		},
		{
			name:       "wrong state with error is a state mismatch",
			query:      url.Values{"error": {"access_denied"}, "state": {"x"}},
			wantErr:    loopback.ErrStateMismatch,
			wantStatus: http.StatusBadRequest,
		},
		{
			name:       "provider error, description escaped",
			query:      url.Values{"error": {"access_denied"}, "error_description": {`<script>alert("x")</script> & <b>no</b>`}, "state": {state}},
			wantErr:    &loopback.ProviderError{},
			wantStatus: http.StatusBadRequest,
			wantBody:   []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;no&lt;/b&gt;"},
			notBody:    []string{"<script>", "<b>no"},
		},
		{
			name:       "no code",
			query:      url.Values{"state": {state}},
			wantErr:    loopback.ErrNoCode,
			wantStatus: http.StatusBadRequest,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := listen(t, loopback.Config{})
			resp := do(t, http.MethodGet, callbackURL(l, tc.query), "")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			code, err := l.Wait(ctx)
			if code != tc.wantCode {
				t.Errorf("Wait code = %q, want %q", code, tc.wantCode)
			}
			var pe *loopback.ProviderError
			switch {
			case tc.wantErr == nil:
				if err != nil {
					t.Errorf("Wait error = %v, want nil", err)
				}
			case errors.As(tc.wantErr, &pe):
				if !errors.As(err, &pe) {
					t.Errorf("Wait error = %v, want a ProviderError", err)
				}
			default:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Wait error = %v, want %v", err, tc.wantErr)
				}
			}
			if resp.status != tc.wantStatus {
				t.Errorf("page status = %d, want %d", resp.status, tc.wantStatus)
			}
			for _, s := range tc.wantBody {
				if !strings.Contains(resp.body, s) {
					t.Errorf("page does not contain %q:\n%s", s, resp.body)
				}
			}
			for _, s := range tc.notBody {
				if strings.Contains(resp.body, s) {
					t.Errorf("page contains %q:\n%s", s, resp.body)
				}
			}
			if csp := resp.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("Content-Security-Policy = %q", csp)
			}
			if rp := resp.header.Get("Referrer-Policy"); rp != "no-referrer" {
				t.Errorf("Referrer-Policy = %q, want no-referrer", rp)
			}
			assertClosed(t, l)
		})
	}
}

// TestStrayRequestsDoNotEndTheLogin: requests that are not the callback are
// refused with a clear error, and the login keeps waiting (until its
// deadline here, or the real callback below).
func TestStrayRequestsDoNotEndTheLogin(t *testing.T) {
	t.Parallel()
	good := url.Values{"code": {"the-code"}, "state": {state}}
	tests := []struct {
		name       string
		send       func(t *testing.T, l *loopback.Listener) response
		wantStatus int
		wantBody   string
	}{
		{"wrong path", func(t *testing.T, l *loopback.Listener) response {
			u := strings.Replace(callbackURL(l, good), loopback.DefaultPath, "/elsewhere", 1)
			return do(t, http.MethodGet, u, "")
		}, http.StatusNotFound, "only receives login responses"},
		{"favicon", func(t *testing.T, l *loopback.Listener) response {
			return do(t, http.MethodGet, "http://"+l.Addr().String()+"/favicon.ico", "")
		}, http.StatusNotFound, "only receives login responses"},
		{"wrong method", func(t *testing.T, l *loopback.Listener) response {
			return do(t, http.MethodPost, callbackURL(l, good), "")
		}, http.StatusMethodNotAllowed, "only receives login responses by GET"},
		{"DNS-rebinding Host", func(t *testing.T, l *loopback.Listener) response {
			_, port, _ := net.SplitHostPort(l.Addr().String())
			return do(t, http.MethodGet, callbackURL(l, good), "evil.example:"+port)
		}, http.StatusMisdirectedRequest, "only answers requests addressed to the login"},
		{"Host without port", func(t *testing.T, l *loopback.Listener) response {
			return do(t, http.MethodGet, callbackURL(l, good), "127.0.0.1")
		}, http.StatusMisdirectedRequest, "Refused"},
		{"localhost instead of 127.0.0.1", func(t *testing.T, l *loopback.Listener) response {
			_, port, _ := net.SplitHostPort(l.Addr().String())
			return do(t, http.MethodGet, callbackURL(l, good), "localhost:"+port)
		}, http.StatusMisdirectedRequest, "Refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := listen(t, loopback.Config{})
			resp := tc.send(t, l)
			if resp.status != tc.wantStatus || !strings.Contains(resp.body, tc.wantBody) {
				t.Errorf("stray request: status %d body %q; want %d and %q", resp.status, resp.body, tc.wantStatus, tc.wantBody)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if code, err := l.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) || code != "" {
				t.Errorf("Wait after a stray request = %q, %v; want the deadline", code, err)
			}
			assertClosed(t, l)
		})
		t.Run(tc.name+" then the real callback", func(t *testing.T) {
			t.Parallel()
			l := listen(t, loopback.Config{})
			tc.send(t, l)
			if resp := do(t, http.MethodGet, callbackURL(l, good), ""); resp.status != http.StatusOK {
				t.Errorf("real callback after a stray request: status %d", resp.status)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if code, err := l.Wait(ctx); err != nil || code != "the-code" {
				t.Errorf("Wait = %q, %v; want the code", code, err)
			}
		})
	}
}

func TestSecondCallbackIsRefused(t *testing.T) {
	t.Parallel()
	l := listen(t, loopback.Config{})
	first := do(t, http.MethodGet, callbackURL(l, url.Values{"code": {"first"}, "state": {state}}), "")
	second := do(t, http.MethodGet, callbackURL(l, url.Values{"code": {"second"}, "state": {state}}), "")
	if first.status != http.StatusOK {
		t.Errorf("first callback status = %d", first.status)
	}
	if second.status != http.StatusGone || !strings.Contains(second.body, "already received its response") {
		t.Errorf("second callback: status %d body %q; want 410 and an explanation", second.status, second.body)
	}
	code, err := l.Wait(context.Background())
	if err != nil || code != "first" {
		t.Errorf("Wait = %q, %v; want the first callback's code", code, err)
	}
	assertClosed(t, l)
}

func TestTimeoutAndCancelCloseTheListener(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"timeout", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel (Ctrl-C)", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := listen(t, loopback.Config{})
			// An idle keep-alive connection must not hold the listener open.
			conn, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			if _, err := l.Wait(ctx); !errors.Is(err, tc.want) {
				t.Errorf("Wait = %v, want %v", err, tc.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Wait took %v to give up", d)
			}
			assertClosed(t, l)
		})
	}
}

func TestRedirectURI(t *testing.T) {
	t.Parallel()
	free := freePort(t)
	tests := []struct {
		name    string
		cfg     loopback.Config
		want    string // with PORT for the chosen port
		wantErr string
	}{
		{name: "default", cfg: loopback.Config{}, want: "http://127.0.0.1:PORT/api/auth/callback"},
		{name: "fixed port", cfg: loopback.Config{Port: free}, want: "http://127.0.0.1:" + strconv.Itoa(free) + "/api/auth/callback"},
		{name: "localhost", cfg: loopback.Config{RedirectHost: "localhost"}, want: "http://localhost:PORT/api/auth/callback"},
		{name: "ipv6", cfg: loopback.Config{ListenAddress: "::1", RedirectHost: "[::1]"}, want: "http://[::1]:PORT/api/auth/callback"},
		{name: "custom path", cfg: loopback.Config{Path: "/cb"}, want: "http://127.0.0.1:PORT/cb"},
		{name: "listen address not an IP", cfg: loopback.Config{ListenAddress: "localhost"}, wantErr: "not an IP address"},
		{name: "port out of range", cfg: loopback.Config{Port: 70000}, wantErr: "not from 0 to 65535"},
		{name: "redirect host with port", cfg: loopback.Config{RedirectHost: "localhost:80"}, wantErr: "give no port"},
		{name: "redirect host with path", cfg: loopback.Config{RedirectHost: "evil.example/x"}, wantErr: "not a host name"},
		{name: "redirect host with userinfo", cfg: loopback.Config{RedirectHost: "a@b"}, wantErr: "not a host name"},
		{name: "relative path", cfg: loopback.Config{Path: "cb"}, wantErr: "must start with /"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.State = state
			l, err := loopback.Listen(cfg)
			if tc.wantErr != "" {
				if err == nil {
					l.Close()
					t.Fatalf("Listen succeeded, want error %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Listen error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				if tc.cfg.ListenAddress == "::1" {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			defer l.Close()
			_, port, _ := net.SplitHostPort(l.Addr().String())
			if want := strings.Replace(tc.want, "PORT", port, 1); l.RedirectURI() != want {
				t.Errorf("RedirectURI = %q, want %q", l.RedirectURI(), want)
			}
			// The URI works: its own host is accepted.
			if resp := do(t, http.MethodGet, l.RedirectURI()+"?state="+state+"&code=c", ""); resp.status != http.StatusOK {
				t.Errorf("callback on the redirect URI: status %d", resp.status)
			}
		})
	}
}

func TestListenRequiresState(t *testing.T) {
	t.Parallel()
	if _, err := loopback.Listen(loopback.Config{}); err == nil {
		t.Fatal("Listen without a state succeeded")
	}
}

func TestPortInUse(t *testing.T) {
	t.Parallel()
	l := listen(t, loopback.Config{})
	_, port, _ := net.SplitHostPort(l.Addr().String())
	n, _ := strconv.Atoi(port)
	_, err := loopback.Listen(loopback.Config{State: state, Port: n})
	if err == nil || !strings.Contains(err.Error(), "listening for the login callback") {
		t.Fatalf("Listen on a busy port: %v", err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
