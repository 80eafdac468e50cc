package grants

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMachineScopes(t *testing.T) {
	t.Parallel()
	allowed := []string{"read", "write"}
	many := strings.Fields(strings.Repeat("read ", 33))
	tests := []struct {
		name      string
		requested []string
		want      []string
		refused   bool
	}{
		{"none asked: all allowed", nil, allowed, false},
		{"a subset", []string{"write"}, []string{"write"}, false},
		{"repeats folded", []string{"read", "read", "write"}, []string{"read", "write"}, false},
		{"one not allowed", []string{"read", "admin"}, nil, true},
		{"too many", many, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := machineScopes(tc.requested, allowed)
			if (err != nil) != tc.refused {
				t.Fatalf("error %v, refused want %v", err, tc.refused)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("scopes %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRequestClientID: every spelling of one client id lands in its
// rate-limit bucket.
func TestRequestClientID(t *testing.T) {
	t.Parallel()
	form := func(v url.Values) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(v.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		_ = r.ParseForm()
		return r
	}
	basic := form(url.Values{})
	basic.SetBasicAuth(url.QueryEscape("m-ci job"), "secret")
	raw := form(url.Values{})
	raw.SetBasicAuth("m-%zz", "secret")
	for _, tc := range []struct {
		name string
		r    *http.Request
		want string
	}{
		{"form", form(url.Values{"client_id": {"m-ci job"}}), "m-ci job"},
		{"basic, form-encoded", basic, "m-ci job"},
		{"basic, not decodable", raw, "m-%zz"},
		{"none", form(url.Values{}), ""},
	} {
		if got := requestClientID(tc.r); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestMachineTokenTTL(t *testing.T) {
	t.Parallel()
	h := &Handler{cfg: Config{AccessTokenTTL: 15 * time.Minute}}
	for _, tc := range []struct{ ttl, want time.Duration }{
		{0, 15 * time.Minute},
		{-time.Second, 15 * time.Minute},
		{5 * time.Minute, 5 * time.Minute},
		{time.Hour, 15 * time.Minute},
	} {
		if got := h.MachineTokenTTL(tc.ttl); got != tc.want {
			t.Errorf("MachineTokenTTL(%s) = %s, want %s", tc.ttl, got, tc.want)
		}
	}
}
