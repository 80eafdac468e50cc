package cli_test

import (
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/oidctest"
)

var promptPattern = regexp.MustCompile(`Redirected URL: `)

// TestManualLogin drives --manual through standard input: the user opens
// the URL elsewhere and pastes the address the browser ended on.
func TestManualLogin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// pastes returns the lines to paste, given the real callback URL.
		pastes     func(callback string) []string
		wantExit   int
		wantErr    []string
		wantLogins int
	}{
		{
			name:       "pasted callback URL",
			pastes:     func(cb string) []string { return []string{cb} },
			wantErr:    []string{"Logged in as Test User <user@example.test>"},
			wantLogins: 1,
		},
		{
			name:       "pasted with spaces around",
			pastes:     func(cb string) []string { return []string{"   " + cb + "  \t"} },
			wantErr:    []string{"Logged in as"},
			wantLogins: 1,
		},
		{
			name:       "garbage first, then the URL",
			pastes:     func(cb string) []string { return []string{"not a url", cb} },
			wantErr:    []string{"that is not a URL", "Logged in as"},
			wantLogins: 1,
		},
		{
			name: "wrong state",
			pastes: func(cb string) []string {
				return []string{regexp.MustCompile(`state=[^&]+`).ReplaceAllString(cb, "state=forged")}
			},
			wantExit: 1,
			wantErr:  []string{"state does not match this login"},
		},
		{
			name: "three bad pastes",
			pastes: func(cb string) []string {
				return []string{"x", "https://elsewhere.example/page?state=a", "y"}
			},
			wantExit: 1,
			wantErr:  []string{"not a URL", "not the login callback"},
		},
		{
			name:     "end of input",
			pastes:   func(string) []string { return nil },
			wantExit: 1,
			wantErr:  []string{"no URL was pasted"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			stdinR, stdinW := io.Pipe()
			defer stdinW.Close()
			errOut := &syncBuffer{}
			done := make(chan result, 1)
			go func() {
				done <- e.runWith(context.Background(), stdinR, errOut, "login", "--manual", "--timeout", "10s")
			}()
			authURL := errOut.waitFor(t, authorizeURLPattern, 10*time.Second)
			errOut.waitFor(t, promptPattern, 10*time.Second)
			// The browser, on another machine: the redirect to
			// 127.0.0.1 fails there, and the user copies the address.
			q := e.fake.Authorize(t, authURL)
			cb := callbackOf(t, authURL).String() + "?" + q.Encode()
			for _, line := range tc.pastes(cb) {
				if _, err := io.WriteString(stdinW, line+"\n"); err != nil {
					t.Fatal(err)
				}
			}
			stdinW.Close()
			r := wait(t, done)
			if r.code != tc.wantExit {
				t.Errorf("login exit %d, want %d\n%s", r.code, tc.wantExit, r.errOut)
			}
			mustContain(t, "login stderr", r.errOut, tc.wantErr...)
			mustNotContain(t, "login stderr", r.errOut, q.Get("code"))
			if got := e.calls(procLogin); got != tc.wantLogins {
				t.Errorf("LoginCli calls = %d, want %d", got, tc.wantLogins)
			}
			if got := e.fake.Count(oidctest.PathToken); got != tc.wantLogins {
				t.Errorf("provider token calls = %d, want %d", got, tc.wantLogins)
			}
			if tc.wantLogins == 1 {
				if r := e.run(context.Background(), nil, "token"); r.code != 0 || strings.TrimSpace(r.out) == "" {
					t.Errorf("token after manual login: exit %d\n%s", r.code, r.errOut)
				}
			}
		})
	}
}

func TestManualLoginFixedPort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, done := e.startLogin(context.Background(), strings.NewReader(""), "--manual", "--port", "4242", "--timeout", "5s")
	if cb := callbackOf(t, u).String(); cb != "http://127.0.0.1:4242/api/auth/callback" {
		t.Errorf("redirect URI = %s, want Neosync's http://127.0.0.1:4242/api/auth/callback", cb)
	}
	if r := wait(t, done); r.code != 1 || !strings.Contains(r.errOut, "no URL was pasted") {
		t.Errorf("login with empty input: exit %d\n%s", r.code, r.errOut)
	}
}
