package loopback_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
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
	resp, err := send(method, target, host)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// send is do for goroutines other than the test's, which must not call
// t.Fatal.
func send(method, target, host string) (response, error) {
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		return response{}, err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := browser.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(b), resp.Header}, nil
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

// forgedQueries are callback queries as a page on another site can make the
// browser send them to a login it knows the port of: anything but this
// login's state, which such a page cannot know.
var forgedQueries = []struct{ name, rawQuery string }{
	{"wrong state", "code=forged-code&state=attacker-state"},
	{"missing state", "code=forged-code"},
	{"empty state", "code=forged-code&state="},
	{"state prefix", "code=forged-code&state=" + state[:len(state)-1]},
	{"state with a suffix", "code=forged-code&state=" + state + "0"},
	{"state in upper case", "code=forged-code&state=" + strings.ToUpper(state)},
	{"state with a leading space", "code=forged-code&state=+" + state},
	{"state with a NUL", "code=forged-code&state=" + state + "%00"},
	{"duplicated state, forged one first", "code=forged-code&state=attacker-state&state=" + state},
	{"state under another name", "code=forged-code&State=" + state},
	{"state after a semicolon", "code=forged-code;state=" + state},
	{"state that does not decode", "code=forged-code&state=%zz"},
	{"wrong state with a provider error", "error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state=attacker-state"},
	{"wrong state and no code", "state=attacker-state"},
	{"markup in state and code", "code=%3Cb%3Eforged-code%3C%2Fb%3E&state=%3Cscript%3Ealert(1)%3C%2Fscript%3E"},
}

// floodSize is how many forged callbacks a test sends at once.
const floodSize = 50

type floodResult struct {
	query string
	resp  response
	err   error
}

// flood sends floodSize GETs on the callback path at once, cycling through
// rawQueries, and returns what each got.
func flood(l *loopback.Listener, rawQueries ...string) []floodResult {
	results := make([]floodResult, floodSize)
	var wg sync.WaitGroup
	for i := range results {
		q := rawQueries[i%len(rawQueries)]
		wg.Go(func() {
			resp, err := send(http.MethodGet, l.RedirectURI()+"?"+q, "")
			results[i] = floodResult{q, resp, err}
		})
	}
	wg.Wait()
	return results
}

// checkIgnored fails unless r is the page for a response that is not this
// login's: a 400 that carries nothing the request sent. Every such page is
// the same, whatever the request carried, and equals reference when that
// is not empty.
func checkIgnored(t *testing.T, r floodResult, reference string) {
	t.Helper()
	if r.err != nil {
		t.Errorf("forged callback %q: %v", r.query, r.err)
		return
	}
	if r.resp.status != http.StatusBadRequest || !strings.Contains(r.resp.body, "does not belong to the login") {
		t.Errorf("forged callback %q: status %d, want 400 and the state page:\n%s", r.query, r.resp.status, r.resp.body)
	}
	if reference != "" && r.resp.body != reference {
		t.Errorf("forged callback %q: the page depends on the request:\n%s\nwant:\n%s", r.query, r.resp.body, reference)
	}
	q, _ := url.ParseQuery(r.query)
	for _, vs := range q {
		for _, v := range vs {
			if len(v) >= 6 && strings.Contains(r.resp.body, v) {
				t.Errorf("forged callback %q: the page reflects %q", r.query, v)
			}
		}
	}
	if csp := r.resp.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("forged callback %q: Content-Security-Policy = %q", r.query, csp)
	}
}

type waitResult struct {
	code string
	err  error
}

// waitInBackground runs l.Wait as the login command does, so requests can
// arrive while a login waits.
func waitInBackground(ctx context.Context, l *loopback.Listener) <-chan waitResult {
	done := make(chan waitResult, 1)
	go func() {
		code, err := l.Wait(ctx)
		done <- waitResult{code, err}
	}()
	return done
}

// checkStillWaiting fails if Wait has returned. A request that ended the
// login would have handed Wait its result before its page was complete,
// so a short grace period after the last page is enough.
func checkStillWaiting(t *testing.T, done <-chan waitResult) {
	t.Helper()
	select {
	case r := <-done:
		t.Fatalf("forged callbacks ended the login: Wait = %q, %v", r.code, r.err)
	case <-time.After(50 * time.Millisecond):
	}
}

func receive(t *testing.T, done <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return")
		return waitResult{}
	}
}

// TestForgedCallbacksDoNotEndTheLogin: a web page that makes the browser
// request the callback URL, without this login's state, gets an error page
// that shows nothing it sent, and the login keeps waiting. A flood of such
// requests neither ends the login nor spends the one-shot the real callback
// needs.
func TestForgedCallbacksDoNotEndTheLogin(t *testing.T) {
	t.Parallel()
	for _, tc := range forgedQueries {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := listen(t, loopback.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := waitInBackground(ctx, l)
			results := flood(l, tc.rawQuery)
			for _, r := range results {
				checkIgnored(t, r, results[0].resp.body)
			}
			checkStillWaiting(t, done)

			good := url.Values{"code": {"the-code"}, "state": {state}}
			if resp := do(t, http.MethodGet, callbackURL(l, good), ""); resp.status != http.StatusOK {
				t.Errorf("real callback after the forged ones: status %d\n%s", resp.status, resp.body)
			}
			if r := receive(t, done); r.err != nil || r.code != "the-code" {
				t.Errorf("Wait = %q, %v; want the real callback's code", r.code, r.err)
			}
			assertClosed(t, l)
		})
	}
}

// TestLoginEndsOnlyWithItsOwnState: while forged callbacks of every kind
// keep arriving, the login ends only on a response with its state (whatever
// that response says) or on Ctrl-C.
func TestLoginEndsOnlyWithItsOwnState(t *testing.T) {
	t.Parallel()
	var forged []string
	for _, f := range forgedQueries {
		forged = append(forged, f.rawQuery)
	}
	tests := []struct {
		name string
		// duringFlood sends the ending while the forged callbacks arrive,
		// rather than after them.
		duringFlood bool
		// rawQuery is the response that ends the login (none if empty);
		// cancel then cancels the login's context, as Ctrl-C does.
		rawQuery   string
		cancel     bool
		wantCode   string
		wantErr    error
		wantStatus int
		wantBody   string
	}{
		{
			name:     "the real callback",
			rawQuery: "code=the-code&state=" + state,
			wantCode: "the-code", wantStatus: http.StatusOK, wantBody: "You are logged in",
		},
		{
			name:        "the real callback in the middle of the flood",
			duringFlood: true,
			rawQuery:    "code=the-code&state=" + state,
			wantCode:    "the-code", wantStatus: http.StatusOK, wantBody: "You are logged in",
		},
		{
			name:     "duplicated state, real one first",
			rawQuery: "code=the-code&state=" + state + "&state=attacker-state",
			wantCode: "the-code", wantStatus: http.StatusOK, wantBody: "You are logged in",
		},
		{
			name:     "a provider error with the right state",
			rawQuery: "error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E&state=" + state,
			wantErr:  &loopback.ProviderError{}, wantStatus: http.StatusBadRequest, wantBody: "&lt;b&gt;no&lt;/b&gt;",
		},
		{
			name:     "no code with the right state",
			rawQuery: "state=" + state,
			wantErr:  loopback.ErrNoCode, wantStatus: http.StatusBadRequest, wantBody: "carried no authorization code",
		},
		{
			name:    "Ctrl-C",
			cancel:  true,
			wantErr: context.Canceled,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := listen(t, loopback.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := waitInBackground(ctx, l)

			var resp response
			end := func() {
				if tc.rawQuery != "" {
					resp = do(t, http.MethodGet, l.RedirectURI()+"?"+tc.rawQuery, "")
				}
				if tc.cancel {
					cancel()
				}
			}
			if tc.duringFlood {
				flooded := make(chan []floodResult, 1)
				go func() { flooded <- flood(l, forged...) }()
				end()
				// Forged callbacks that arrive after the real one are told
				// the login is over, or find the listener gone.
				for _, r := range <-flooded {
					if r.err == nil && r.resp.status != http.StatusGone {
						checkIgnored(t, r, "")
					}
				}
			} else {
				for _, r := range flood(l, forged...) {
					checkIgnored(t, r, "")
				}
				checkStillWaiting(t, done)
				end()
			}

			r := receive(t, done)
			if r.code != tc.wantCode {
				t.Errorf("Wait code = %q, want %q", r.code, tc.wantCode)
			}
			var pe *loopback.ProviderError
			switch {
			case tc.wantErr == nil:
				if r.err != nil {
					t.Errorf("Wait error = %v, want nil", r.err)
				}
			case errors.As(tc.wantErr, &pe):
				if !errors.As(r.err, &pe) || pe.Code != "access_denied" {
					t.Errorf("Wait error = %v, want the provider's access_denied", r.err)
				}
			default:
				if !errors.Is(r.err, tc.wantErr) {
					t.Errorf("Wait error = %v, want %v", r.err, tc.wantErr)
				}
			}
			if tc.rawQuery != "" && (resp.status != tc.wantStatus || !strings.Contains(resp.body, tc.wantBody)) {
				t.Errorf("ending response: status %d, want %d and %q:\n%s", resp.status, tc.wantStatus, tc.wantBody, resp.body)
			}
			assertClosed(t, l)
		})
	}
}

// TestSecondCallbackIsRefused: once a response with the login's state has
// been taken, every later callback is told the login is over, whatever
// state it carries, and cannot change the outcome.
func TestSecondCallbackIsRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		second url.Values
	}{
		{"same state, another code", url.Values{"code": {"second"}, "state": {state}}},
		{"same state, an error", url.Values{"error": {"access_denied"}, "state": {state}}},
		{"wrong state", url.Values{"code": {"second"}, "state": {"attacker-state"}}},
		{"missing state", url.Values{"code": {"second"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := listen(t, loopback.Config{})
			first := do(t, http.MethodGet, callbackURL(l, url.Values{"code": {"first"}, "state": {state}}), "")
			second := do(t, http.MethodGet, callbackURL(l, tc.second), "")
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
		})
	}
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
			// A forged callback leaves the login waiting for its deadline
			// or Ctrl-C.
			if resp := do(t, http.MethodGet, callbackURL(l, url.Values{"code": {"c"}, "state": {"attacker-state"}}), ""); resp.status != http.StatusBadRequest {
				t.Errorf("forged callback: status %d, want 400", resp.status)
			}
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
