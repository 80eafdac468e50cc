package authn_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// TestClaimsAMR: the `amr` claim (how the user authenticated) is read
// into Claims.AMR; a token whose amr is not a list of strings is refused;
// each caller gets its own copy.
func TestClaimsAMR(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	v, _ := newVerifier(t, p, nil)
	tests := []struct {
		name    string
		amr     any
		want    []string
		refused bool
	}{
		{"absent", nil, nil, false},
		{"password and one-time code", []string{"pwd", "otp", "mfa"}, []string{"pwd", "otp", "mfa"}, false},
		{"empty list", []string{}, []string{}, false},
		{"a string", "pwd", nil, true},
		{"numbers", []int{1, 2}, nil, true},
		{"null, as absent", "null-literal", nil, false},
		{"too many", strings.Split(strings.Repeat("x ", 40), " ")[:40], nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := p.AccessClaims("alice")
			switch tt.amr {
			case nil:
			case "null-literal":
				c["amr"] = nil
			default:
				c["amr"] = tt.amr
			}
			claims, err := v.Verify(context.Background(), p.Sign(c, map[string]any{"typ": "at+jwt"}))
			if tt.refused {
				if !errors.Is(err, authn.ErrInvalidToken) {
					t.Fatalf("Verify = %v, want ErrInvalidToken", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(claims.AMR, tt.want) || (tt.want == nil) != (claims.AMR == nil) {
				t.Fatalf("AMR = %#v, want %#v", claims.AMR, tt.want)
			}
			if len(claims.AMR) > 0 {
				claims.AMR[0] = "changed"
				again, err := v.Verify(context.Background(), p.Sign(c, map[string]any{"typ": "at+jwt"}))
				if err != nil || again.AMR[0] != tt.want[0] {
					t.Fatalf("a caller's change reached another: %v, %v", again.AMR, err)
				}
			}
		})
	}
}
