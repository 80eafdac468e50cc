package endsession

import (
	"net/url"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/issuer/storage"
	"github.com/nsauth/nsauth/internal/redirect"
)

// TestReadEndSessionParams: each parameter is refused past its bound or
// when it is not UTF-8, and taken as sent otherwise.
func TestReadEndSessionParams(t *testing.T) {
	t.Parallel()
	ok := url.Values{"id_token_hint": {"a.b.c"}, "client_id": {"app"},
		"post_logout_redirect_uri": {"https://app.example/bye"}, "state": {"s"}}
	with := func(name, v string) url.Values {
		f := url.Values{}
		for k, vs := range ok {
			f[k] = vs
		}
		f.Set(name, v)
		return f
	}
	tests := []struct {
		name string
		form url.Values
		ok   bool
	}{
		{"all in bounds", ok, true},
		{"hint at its bound", with("id_token_hint", strings.Repeat("a", MaxIDTokenHint)), true},
		{"hint too long", with("id_token_hint", strings.Repeat("a", MaxIDTokenHint+1)), false},
		{"client id too long", with("client_id", strings.Repeat("c", storage.MaxClientIDLen+1)), false},
		{"redirect URI too long", with("post_logout_redirect_uri", "https://app.example/"+strings.Repeat("p", redirect.MaxURILen)), false},
		{"state too long", with("state", strings.Repeat("s", redirect.MaxStateLen+1)), false},
		{"state not UTF-8", with("state", "\xff"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, got := readEndSessionParams(tc.form)
			if got != tc.ok {
				t.Fatalf("ok = %v, want %v", got, tc.ok)
			}
			if tc.ok && (p.IDTokenHint != tc.form.Get("id_token_hint") || p.ClientID != "app" ||
				p.PostLogoutRedirectURI != "https://app.example/bye" || p.State != "s") {
				t.Errorf("params %+v, not as sent", p)
			}
		})
	}
}
