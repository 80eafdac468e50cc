package tokenstore_test

import (
	"testing"
	"time"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

func TestFromAccessToken(t *testing.T) {
	t.Parallel()
	issued := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	rt, id := "rt", "idt"
	// {"alg":"none"}.{"exp":1900000000}.
	jwt := "eyJhbGciOiJub25lIn0.eyJleHAiOjE5MDAwMDAwMDB9.x"
	tests := []struct {
		name       string
		in         *mgmtv1alpha1.AccessToken
		wantExpiry time.Time
		wantType   string
		wantErr    bool
	}{
		{"expires_in", &mgmtv1alpha1.AccessToken{AccessToken: "a", ExpiresIn: 900, TokenType: "bearer", RefreshToken: &rt, IdToken: &id}, issued.Add(15 * time.Minute), "Bearer", false},
		{"exp from JWT", &mgmtv1alpha1.AccessToken{AccessToken: jwt}, time.Unix(1900000000, 0).UTC(), "Bearer", false},
		{"unknown expiry", &mgmtv1alpha1.AccessToken{AccessToken: "opaque", TokenType: "DPoP"}, time.Time{}, "DPoP", false},
		{"no access token", &mgmtv1alpha1.AccessToken{}, time.Time{}, "", true},
		{"nil", nil, time.Time{}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := tokenstore.FromAccessToken("http://127.0.0.1:1", tc.in, issued)
			if tc.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !e.Expiry.Equal(tc.wantExpiry) || e.TokenType != tc.wantType {
				t.Errorf("expiry %v type %q, want %v %q", e.Expiry, e.TokenType, tc.wantExpiry, tc.wantType)
			}
		})
	}
}
