package loopback_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/loopback"
)

func TestParsePasted(t *testing.T) {
	t.Parallel()
	const redirect = "http://127.0.0.1:4242/api/auth/callback"
	tests := []struct {
		name     string
		pasted   string
		wantCode string
		wantErr  error
		wantText string
	}{
		{name: "full URL", pasted: redirect + "?code=abc&state=" + state, wantCode: "abc"},
		{name: "other host and port", pasted: "http://localhost:9/api/auth/callback?state=" + state + "&code=abc", wantCode: "abc"},
		{name: "wrong state", pasted: redirect + "?code=abc&state=nope", wantErr: loopback.ErrStateMismatch},
		{name: "provider error", pasted: redirect + "?error=access_denied&error_description=no&state=" + state, wantText: "refused the login: access_denied"},
		{name: "odd error code not echoed", pasted: redirect + "?error=%1b%5b31mred&state=" + state, wantText: "refused the login: unrecognised error"},
		{name: "no code", pasted: redirect + "?state=" + state, wantErr: loopback.ErrNoCode},
		{name: "authorize URL by mistake", pasted: "https://idp.example/authorize?state=" + state + "&client_id=x", wantText: "not the login callback"},
		{name: "not a URL", pasted: "code=abc", wantText: "not a URL"},
		{name: "empty", pasted: "", wantText: "not a URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, err := loopback.ParsePasted(tc.pasted, redirect, state)
			if code != tc.wantCode {
				t.Errorf("code = %q, want %q", code, tc.wantCode)
			}
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			case tc.wantText != "" && (err == nil || !strings.Contains(err.Error(), tc.wantText)):
				t.Errorf("err = %v, want it to say %q", err, tc.wantText)
			case tc.wantErr == nil && tc.wantText == "" && err != nil:
				t.Errorf("err = %v", err)
			}
			if err != nil && strings.Contains(err.Error(), "abc") {
				t.Errorf("error echoes the code: %v", err)
			}
		})
	}
}

func TestRedirectURIFunc(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, host string
		port       int
		path, want string
		wantErr    bool
	}{
		{name: "ipv4", host: "127.0.0.1", port: 4242, path: "/api/auth/callback", want: "http://127.0.0.1:4242/api/auth/callback"},
		{name: "ipv6 bare", host: "::1", port: 4242, path: "/cb", want: "http://[::1]:4242/cb"},
		{name: "ipv6 bracketed", host: "[::1]", port: 4242, path: "/cb", want: "http://[::1]:4242/cb"},
		{name: "localhost upper case", host: "LocalHost", port: 1, path: "/", want: "http://localhost:1/"},
		{name: "port zero", host: "127.0.0.1", port: 0, path: "/", wantErr: true},
		{name: "host with path", host: "a/b", port: 1, path: "/", wantErr: true},
		{name: "relative path", host: "127.0.0.1", port: 1, path: "cb", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := loopback.RedirectURI(tc.host, tc.port, tc.path)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("RedirectURI = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
