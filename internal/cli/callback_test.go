package cli_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/oidctest"
)

// callbackOf returns the redirect URI an authorize URL carries.
func callbackOf(t *testing.T, authorizeURL string) *url.URL {
	t.Helper()
	au, err := url.Parse(authorizeURL)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := url.Parse(au.Query().Get("redirect_uri"))
	if err != nil {
		t.Fatal(err)
	}
	return cb
}

func request(t *testing.T, method, target, host string) browserResult {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return browserResult{status: -1, body: err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return browserResult{resp.StatusCode, string(body)}
}

// forgeCallbacks sends, all at once, the callbacks a web page can make the
// browser send to the login's port: the provider's real response q with
// the state replaced, duplicated, removed or changed in case, 50 in all.
// Each must get the page for a response of another login.
func forgeCallbacks(t *testing.T, callback *url.URL, q url.Values) {
	t.Helper()
	forged := []func(url.Values){
		func(q url.Values) { q.Set("state", "forged-state") },
		func(q url.Values) { q.Del("state") },
		func(q url.Values) { q.Set("state", strings.ToUpper(q.Get("state"))) },
		func(q url.Values) { q["state"] = []string{"forged-state", q.Get("state")} },
		func(q url.Values) { q.Set("error", "access_denied"); q.Set("state", "forged-state") },
	}
	pages := make([]browserResult, 50)
	var wg sync.WaitGroup
	for i := range pages {
		fq := url.Values{}
		for k, v := range q {
			fq[k] = append([]string(nil), v...)
		}
		forged[i%len(forged)](fq)
		target := callback.String() + "?" + fq.Encode()
		wg.Go(func() {
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(target)
			if err != nil {
				pages[i] = browserResult{status: -1, body: err.Error()}
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			pages[i] = browserResult{resp.StatusCode, string(body)}
		})
	}
	wg.Wait()
	for _, p := range pages {
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "does not belong to the login") {
			t.Errorf("forged callback: status %d, want 400 and the state page:\n%s", p.status, p.body)
		}
	}
}

// TestCallbackBattery: every way the callback can go wrong ends the login
// with a clear error, or is ignored so that the login waits for the real
// callback (or its timeout, or Ctrl-C), and never reaches LoginCli with
// anything but the real code.
func TestCallbackBattery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// browser acts on the printed authorize URL; it may cancel the
		// login's context.
		browser    func(t *testing.T, e *env, authorizeURL string, cancel context.CancelFunc) browserResult
		wantStatus int    // of the browser's last request; 0 to skip
		wantPage   string // in the browser's last page
		wantExit   int
		wantErr    string // in login's stderr
		wantLogins int    // LoginCli calls that reach the server
	}{
		{
			// Any web page can make the browser send this; it must not be
			// able to end the login.
			name: "wrong state",
			browser: func(t *testing.T, e *env, u string, _ context.CancelFunc) browserResult {
				q := e.fake.Authorize(t, u)
				q.Set("state", "forged-state")
				return request(t, http.MethodGet, callbackOf(t, u).String()+"?"+q.Encode(), "")
			},
			wantStatus: http.StatusBadRequest, wantPage: "does not belong to the login",
			wantExit: 1, wantErr: "login timed out after 1s",
		},
		{
			name: "forged callbacks, then the real one",
			browser: func(t *testing.T, e *env, u string, _ context.CancelFunc) browserResult {
				q := e.fake.Authorize(t, u)
				forgeCallbacks(t, callbackOf(t, u), q)
				return request(t, http.MethodGet, callbackOf(t, u).String()+"?"+q.Encode(), "")
			},
			wantStatus: http.StatusOK, wantPage: "You are logged in",
			wantExit: 0, wantLogins: 1,
		},
		{
			name: "forged callbacks, then the provider's error",
			browser: func(t *testing.T, e *env, u string, _ context.CancelFunc) browserResult {
				forgeCallbacks(t, callbackOf(t, u), url.Values{"code": {"forged-code"}})
				e.fake.SetAuthorizeError("access_denied", "the user said no")
				return browse(t, u)
			},
			wantStatus: http.StatusBadRequest, wantPage: "the user said no",
			wantExit: 1, wantErr: "the identity provider refused the login: access_denied",
		},
		{
			name: "forged callbacks, then Ctrl-C",
			browser: func(t *testing.T, e *env, u string, cancel context.CancelFunc) browserResult {
				forgeCallbacks(t, callbackOf(t, u), e.fake.Authorize(t, u))
				cancel()
				return browserResult{}
			},
			wantExit: 1, wantErr: "login canceled",
		},
		{
			name: "error callback",
			browser: func(t *testing.T, e *env, u string, _ context.CancelFunc) browserResult {
				e.fake.SetAuthorizeError("access_denied", `<script>alert(1)</script>the user said no`)
				return browse(t, u)
			},
			wantStatus: http.StatusBadRequest, wantPage: "&lt;script&gt;alert(1)&lt;/script&gt;the user said no",
			wantExit: 1, wantErr: "the identity provider refused the login: access_denied",
		},
		{
			name: "second callback",
			browser: func(t *testing.T, e *env, u string, _ context.CancelFunc) browserResult {
				q := e.fake.Authorize(t, u)
				cb := callbackOf(t, u).String() + "?" + q.Encode()
				if first := request(t, http.MethodGet, cb, ""); first.status != http.StatusOK {
					t.Errorf("first callback: %d %s", first.status, first.body)
				}
				second := request(t, http.MethodGet, cb, "")
				if second.status != http.StatusGone && second.status != -1 {
					t.Errorf("second callback: status %d, want 410 or a refused connection", second.status)
				}
				return second
			},
			wantExit: 0, wantLogins: 1,
		},
		{
			name: "wrong path",
			browser: func(t *testing.T, e *env, u string, _ context.CancelFunc) browserResult {
				q := e.fake.Authorize(t, u)
				cb := callbackOf(t, u)
				cb.Path = "/api/auth/other"
				return request(t, http.MethodGet, cb.String()+"?"+q.Encode(), "")
			},
			wantStatus: http.StatusNotFound, wantPage: "only receives login responses",
			wantExit: 1, wantErr: "login timed out after 1s",
		},
		{
			name: "wrong method",
			browser: func(t *testing.T, e *env, u string, _ context.CancelFunc) browserResult {
				q := e.fake.Authorize(t, u)
				return request(t, http.MethodPost, callbackOf(t, u).String()+"?"+q.Encode(), "")
			},
			wantStatus: http.StatusMethodNotAllowed, wantPage: "only receives login responses by GET",
			wantExit: 1, wantErr: "login timed out after 1s",
		},
		{
			name: "bad Host header (DNS rebinding)",
			browser: func(t *testing.T, e *env, u string, _ context.CancelFunc) browserResult {
				q := e.fake.Authorize(t, u)
				cb := callbackOf(t, u)
				return request(t, http.MethodGet, cb.String()+"?"+q.Encode(), "attacker.example:"+cb.Port())
			},
			wantStatus: http.StatusMisdirectedRequest, wantPage: "only answers requests addressed to the login",
			wantExit: 1, wantErr: "login timed out after 1s",
		},
		{
			name:     "timeout",
			browser:  func(*testing.T, *env, string, context.CancelFunc) browserResult { return browserResult{} },
			wantExit: 1, wantErr: "login timed out after 1s",
		},
		{
			name: "Ctrl-C",
			browser: func(_ *testing.T, _ *env, _ string, cancel context.CancelFunc) browserResult {
				time.AfterFunc(100*time.Millisecond, cancel)
				return browserResult{}
			},
			wantExit: 1, wantErr: "login canceled",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			u, done := e.startLogin(ctx, nil, "--timeout", "1s")
			page := tc.browser(t, e, u, cancel)
			r := wait(t, done)
			if r.code != tc.wantExit {
				t.Errorf("login exit %d, want %d\n%s", r.code, tc.wantExit, r.errOut)
			}
			if !strings.Contains(r.errOut, tc.wantErr) {
				t.Errorf("login stderr does not say %q:\n%s", tc.wantErr, r.errOut)
			}
			if tc.wantStatus != 0 && page.status != tc.wantStatus {
				t.Errorf("browser status %d, want %d\n%s", page.status, tc.wantStatus, page.body)
			}
			if !strings.Contains(page.body, tc.wantPage) {
				t.Errorf("browser page does not contain %q:\n%s", tc.wantPage, page.body)
			}
			if strings.Contains(page.body, "<script>") {
				t.Errorf("browser page carries the provider's markup unescaped")
			}
			if got := e.calls(procLogin); got != tc.wantLogins {
				t.Errorf("LoginCli calls = %d, want %d", got, tc.wantLogins)
			}
			if got := e.fake.Count(oidctest.PathToken); got != tc.wantLogins {
				t.Errorf("provider token calls = %d, want %d", got, tc.wantLogins)
			}
			mustNotContain(t, "login stderr", r.errOut, "the user said no", "<script>")
			// No leftover listener.
			if c, err := net.DialTimeout("tcp", callbackOf(t, u).Host, time.Second); err == nil {
				c.Close()
				t.Errorf("callback listener still accepts connections after login returned")
			}
		})
	}
}
