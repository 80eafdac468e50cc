package session_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/cli/cliapp"
	"github.com/nsauth/nsauth/internal/cli/session"
)

// Moved from package cli's flags_test.go and helpers_test.go with the
// helpers they test; every assertion is as it was.

func getenv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestOptionsResolve(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		flag       string
		env        map[string]string
		wantURL    string
		wantDir    string
		wantErr    string
		wantUsage  bool
		allowHTTP  bool
		flagDirSet string
	}{
		{name: "default", env: map[string]string{"NSAUTH_CONFIG_DIR": "/c"}, wantURL: "http://localhost:8080", wantDir: "/c"},
		{name: "NEOSYNC_API_URL", env: map[string]string{"NEOSYNC_API_URL": "https://neo.example.com/", "NSAUTH_CONFIG_DIR": "/c"}, wantURL: "https://neo.example.com", wantDir: "/c"},
		{name: "NSAUTH_API_URL wins over NEOSYNC_API_URL", env: map[string]string{"NSAUTH_API_URL": "https://a.example.com", "NEOSYNC_API_URL": "https://b.example.com", "NSAUTH_CONFIG_DIR": "/c"}, wantURL: "https://a.example.com", wantDir: "/c"},
		{name: "flag wins", flag: "http://127.0.0.1:9090", env: map[string]string{"NSAUTH_API_URL": "https://a.example.com", "NSAUTH_CONFIG_DIR": "/c"}, wantURL: "http://127.0.0.1:9090", wantDir: "/c"},
		{name: "config dir flag wins", env: map[string]string{"NSAUTH_CONFIG_DIR": "/c"}, flagDirSet: "/flag", wantURL: "http://localhost:8080", wantDir: "/flag"},
		{name: "bad URL", flag: "nope", wantErr: "not an absolute http(s) URL", wantUsage: true},
		{name: "plain HTTP remote", flag: "http://neo.example.com", wantErr: "plain HTTP", wantUsage: true},
		{name: "plain HTTP remote allowed", flag: "http://neo.example.com", allowHTTP: true, env: map[string]string{"NSAUTH_CONFIG_DIR": "/c"}, wantURL: "http://neo.example.com", wantDir: "/c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := session.Options{APIURL: tc.flag, ConfigDir: tc.flagDirSet, InsecureAllowHTTP: tc.allowHTTP}
			err := o.Resolve(getenv(tc.env))
			if tc.wantErr != "" {
				var ue *cliapp.UsageError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || tc.wantUsage != errors.As(err, &ue) {
					t.Fatalf("resolve: %v, want usage error %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || o.APIURL != tc.wantURL || o.ConfigDir != tc.wantDir {
				t.Fatalf("resolve = %q %q %v; want %q %q", o.APIURL, o.ConfigDir, err, tc.wantURL, tc.wantDir)
			}
		})
	}
}

func TestDisplayText(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"plain", "Ada Lovelace", "Ada Lovelace"},
		{"unicode", "Zoë Ångström", "Zoë Ångström"},
		{"ANSI escape", "evil\x1b[2J\x1b]0;title\x07name", "evil[2J]0;titlename"},
		{"newlines", "a\nb\rc\td", "abcd"},
		{"a bidirectional override", "admin\u202Egpj.exe", "admingpj.exe"},
		{"zero-width and tag characters", "ad\u200Bmin\U000E0041", "admin"},
		{"long", strings.Repeat("x", 300), strings.Repeat("x", 200) + "…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := session.DisplayText(tc.in); got != tc.want {
				t.Errorf("displayText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestIdentityWho(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   session.Identity
		want string
	}{
		{"name and email", session.Identity{Name: "Ada", Email: "ada@example.com", Subject: "s"}, "Ada <ada@example.com>"},
		{"email", session.Identity{Email: "ada@example.com", Subject: "s"}, "ada@example.com"},
		{"name", session.Identity{Name: "Ada", Subject: "s"}, "Ada"},
		{"username", session.Identity{Username: "ada", Subject: "s"}, "ada"},
		{"subject", session.Identity{Subject: "s"}, "s"},
		{"nothing", session.Identity{}, "an unnamed user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.id.Who(); got != tc.want {
				t.Errorf("who = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIdentityFromTokens(t *testing.T) {
	t.Parallel()
	// {"alg":"none"}.{"sub":"u1","name":"Ada\u001b[31m","email":"ada@example.com"}.
	idToken := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSIsIm5hbWUiOiJBZGFcdTAwMWJbMzFtIiwiZW1haWwiOiJhZGFAZXhhbXBsZS5jb20ifQ.x"
	id := session.IdentityFromTokens(idToken, "opaque")
	if id.Subject != "u1" || id.Name != "Ada[31m" || id.Email != "ada@example.com" {
		t.Errorf("identity = %+v", id)
	}
	if id := session.IdentityFromTokens("", "not-a-jwt"); id != (session.Identity{}) {
		t.Errorf("identity from nothing = %+v", id)
	}
}

func TestFormatExpiry(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"future", now.Add(14*time.Minute + 30*time.Second), "(in 14m30s)"},
		{"past", now.Add(-time.Hour), "(1h0m0s ago)"},
		{"unknown", time.Time{}, "an unknown time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := session.FormatExpiry(tc.t, now); !strings.Contains(got, tc.want) {
				t.Errorf("formatExpiry = %q, want it to contain %q", got, tc.want)
			}
		})
	}
}
