package storage

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nsauth/nsauth/internal/store"
)

func TestResources(t *testing.T) {
	t.Parallel()
	s := New(Config{Issuer: "https://id.example", Audience: "https://api.example"})
	app := &Client{stored: &store.Client{ID: "app", Audiences: []string{"https://neosync.example"}}}
	other := &Client{stored: &store.Client{ID: "other"}}
	for _, tc := range []struct {
		name      string
		client    *Client
		requested []string
		want      []string
		target    bool // invalid_target
	}{
		{"none", app, nil, nil, false},
		{"the app's", app, []string{"https://neosync.example"}, []string{"https://neosync.example"}, false},
		{"the server's and the issuer", other, []string{"https://api.example", "https://id.example"}, []string{"https://api.example", "https://id.example"}, false},
		{"repeats dropped", app, []string{"https://neosync.example", "https://neosync.example"}, []string{"https://neosync.example"}, false},
		{"another app's", other, []string{"https://neosync.example"}, nil, true},
		{"unknown", app, []string{"https://evil.example"}, nil, true},
		{"too many", app, slices.Repeat([]string{"https://neosync.example"}, MaxResources+1), nil, true},
		{"too long", app, []string{"https://neosync.example/" + strings.Repeat("a", MaxResourceLen)}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.Resources(tc.client, tc.requested)
			if tc.target {
				var oe *oidc.Error
				if !errors.As(err, &oe) || oe.ErrorType != "invalid_target" {
					t.Fatalf("Resources = %v, %v; want invalid_target", got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Resources = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestNarrowResources(t *testing.T) {
	t.Parallel()
	s := New(Config{Issuer: "https://id.example", Audience: "https://api.example"})
	grant := []string{"https://neosync.example"}
	if got, err := s.narrowResources(grant, []string{"https://api.example", "https://neosync.example"}); err != nil || len(got) != 2 {
		t.Fatalf("narrowing to the grant's = %v, %v", got, err)
	}
	if _, err := s.narrowResources(grant, []string{"https://id.example"}); err == nil {
		t.Fatal("a refresh widened the grant to the issuer")
	}
}

func TestTokenAudienceJSON(t *testing.T) {
	t.Parallel()
	s := New(Config{Audience: "https://api.example"})
	for _, tc := range []struct {
		name      string
		resources []string
		want      string
	}{
		{"server only", nil, `"https://api.example"`},
		{"server again", []string{"https://api.example"}, `"https://api.example"`},
		{"more", []string{"https://neosync.example", "https://api.example", "https://neosync.example"}, `["https://api.example","https://neosync.example"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(s.tokenAudience(tc.resources))
			if err != nil || string(b) != tc.want {
				t.Fatalf("aud = %s, %v; want %s", b, err, tc.want)
			}
		})
	}
}
