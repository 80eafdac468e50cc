package tokenstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/pkg/tokenstore"
)

func TestNormalizeAPIURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "plain", in: "http://localhost:8080", want: "http://localhost:8080"},
		{name: "trailing slash", in: "http://localhost:8080/", want: "http://localhost:8080"},
		{name: "upper case", in: "HTTPS://API.Example.COM/Neosync/", want: "https://api.example.com/Neosync"},
		{name: "default https port", in: "https://api.example.com:443", want: "https://api.example.com"},
		{name: "default http port", in: "http://api.example.com:80/", want: "http://api.example.com"},
		{name: "ipv6", in: "http://[::1]:8080", want: "http://[::1]:8080"},
		{name: "ipv6 default port", in: "http://[::1]:80", want: "http://[::1]"},
		{name: "spaces", in: "  http://127.0.0.1:8080 ", want: "http://127.0.0.1:8080"},
		{name: "no scheme", in: "localhost:8080", wantErr: "not an absolute http(s) URL"},
		{name: "ftp", in: "ftp://example.com", wantErr: "not an absolute http(s) URL"},
		{name: "relative", in: "/api", wantErr: "not an absolute http(s) URL"},
		{name: "user info", in: "https://user:pw@example.com", wantErr: "must not contain user info"},
		{name: "query", in: "https://example.com?x=1", wantErr: "must not contain user info, a query"},
		{name: "fragment", in: "https://example.com#x", wantErr: "must not contain"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tokenstore.NormalizeAPIURL(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NormalizeAPIURL(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeAPIURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestCheckTransport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		url      string
		insecure bool
		wantErr  bool
	}{
		{"https remote", "https://api.example.com", false, false},
		{"http localhost", "http://localhost:8080", false, false},
		{"http 127.0.0.1", "http://127.0.0.1:8080", false, false},
		{"http 127.1.2.3", "http://127.1.2.3:8080", false, false},
		{"http ::1", "http://[::1]:8080", false, false},
		{"http remote", "http://api.example.com", false, true},
		{"http private IP", "http://10.0.0.5:8080", false, true},
		{"http remote allowed", "http://api.example.com", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tokenstore.CheckTransport(tc.url, tc.insecure)
			if tc.wantErr != (err != nil) {
				t.Fatalf("CheckTransport(%q, %v) = %v, want error %v", tc.url, tc.insecure, err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, tokenstore.ErrInsecureHTTP) {
				t.Errorf("error %v does not wrap ErrInsecureHTTP", err)
			}
		})
	}
}

func TestUnverifiedClaims(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		token   string
		wantSub string
		wantErr bool
	}{
		// {"alg":"none"}.{"sub":"u1","exp":2000000000}.
		{"jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSIsImV4cCI6MjAwMDAwMDAwMH0.sig", "u1", false},
		{"opaque", "opaque-token", "", true},
		{"bad base64", "a.!!!.c", "", true},
		{"not an object", "a.WzFd.c", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			claims, err := tokenstore.UnverifiedClaims(tc.token)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("UnverifiedClaims(%q) = %v, want an error", tc.token, claims)
				}
				return
			}
			if err != nil || claims["sub"] != tc.wantSub {
				t.Fatalf("UnverifiedClaims = %v, %v; want sub %q", claims, err, tc.wantSub)
			}
		})
	}
}

func TestDefaultDir(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	got, err := tokenstore.DefaultDir(env(map[string]string{"NSAUTH_CONFIG_DIR": "/x/y"}))
	if err != nil || got != "/x/y" {
		t.Errorf("DefaultDir with NSAUTH_CONFIG_DIR = %q, %v; want /x/y", got, err)
	}
	got, err = tokenstore.DefaultDir(env(nil))
	if err == nil && !strings.Contains(got, "nsauth") {
		t.Errorf("DefaultDir = %q, want a directory named nsauth", got)
	}
}
