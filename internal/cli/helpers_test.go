package cli

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

func TestCheckAuthorizeURL(t *testing.T) {
	t.Parallel()
	const state, challenge = "st", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	base := "https://idp.example/authorize?client_id=c&state=st"
	tests := []struct {
		name     string
		url      string
		wantPKCE bool
		wantErr  string
	}{
		{"PKCE passed on", base + "&code_challenge=" + challenge + "&code_challenge_method=S256", true, ""},
		{"old server: no PKCE", base, false, ""},
		{"http loopback provider", "http://127.0.0.1:8080/authorize?state=st", false, ""},
		{"no state in URL", "https://idp.example/authorize?client_id=c", false, ""},
		{"other state", "https://idp.example/authorize?state=other", false, "its state differs"},
		{"other challenge", base + "&code_challenge=xyz&code_challenge_method=S256", false, "PKCE challenge this client did not send"},
		{"plain method", base + "&code_challenge=" + challenge + "&code_challenge_method=plain", false, "PKCE challenge this client did not send"},
		{"javascript", "javascript:alert(1)", false, "not an http(s) URL"},
		{"file", "file:///etc/passwd", false, "not an http(s) URL"},
		{"relative", "/authorize", false, "not an http(s) URL"},
		{"empty", "", false, "not an http(s) URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pkce, err := checkAuthorizeURL(tc.url, state, challenge)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || pkce != tc.wantPKCE {
				t.Fatalf("checkAuthorizeURL = %v, %v; want %v", pkce, err, tc.wantPKCE)
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
			if got := displayText(tc.in); got != tc.want {
				t.Errorf("displayText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestIdentityWho(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   identity
		want string
	}{
		{"name and email", identity{Name: "Ada", Email: "ada@example.com", Subject: "s"}, "Ada <ada@example.com>"},
		{"email", identity{Email: "ada@example.com", Subject: "s"}, "ada@example.com"},
		{"name", identity{Name: "Ada", Subject: "s"}, "Ada"},
		{"username", identity{Username: "ada", Subject: "s"}, "ada"},
		{"subject", identity{Subject: "s"}, "s"},
		{"nothing", identity{}, "an unnamed user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.id.who(); got != tc.want {
				t.Errorf("who = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIdentityFromTokens(t *testing.T) {
	t.Parallel()
	// {"alg":"none"}.{"sub":"u1","name":"Ada\u001b[31m","email":"ada@example.com"}.
	idToken := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSIsIm5hbWUiOiJBZGFcdTAwMWJbMzFtIiwiZW1haWwiOiJhZGFAZXhhbXBsZS5jb20ifQ.x"
	id := identityFromTokens(idToken, "opaque")
	if id.Subject != "u1" || id.Name != "Ada[31m" || id.Email != "ada@example.com" {
		t.Errorf("identity = %+v", id)
	}
	if id := identityFromTokens("", "not-a-jwt"); id != (identity{}) {
		t.Errorf("identity from nothing = %+v", id)
	}
}

func TestReadLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		limit   int
		want    string
		wantErr bool
	}{
		{"line", "abc\nrest", 100, "abc\n", false},
		{"last line without newline", "abc", 100, "abc", true}, // io.EOF with the text
		{"longer than the buffer", strings.Repeat("a", 10000) + "\n", 20000, strings.Repeat("a", 10000) + "\n", false},
		{"over the limit", strings.Repeat("a", 200) + "\n", 100, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := readLine(bufio.NewReaderSize(strings.NewReader(tc.in), 16), tc.limit)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("readLine = %d bytes, %v; want %d bytes, error %v", len(got), err, len(tc.want), tc.wantErr)
			}
		})
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
			if got := formatExpiry(tc.t, now); !strings.Contains(got, tc.want) {
				t.Errorf("formatExpiry = %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

func TestNewStateHasEnoughEntropy(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		s, err := newState()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 43 || seen[s] {
			t.Fatalf("state %q: want 43 base64url characters (256 bits), never repeated", s)
		}
		seen[s] = true
	}
}
