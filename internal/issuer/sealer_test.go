package issuer

import (
	"slices"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
)

// TestSealerRoundTrip: what the authorize endpoint decided (resources,
// max_age) comes back from the login page's authRequestID unchanged.
func TestSealerRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Now()
	s, err := newRequestSealer(make([]byte, 32), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   store.AuthRequest
	}{
		{"no max_age", store.AuthRequest{ClientID: "app", Scopes: []string{"openid"}, Resources: []string{"https://api.example"}}},
		{"max_age zero", store.AuthRequest{ClientID: "app", HasMaxAge: true}},
		{"max_age an hour", store.AuthRequest{ClientID: "app", HasMaxAge: true, MaxAge: time.Hour, Resources: []string{"a", "b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := tc.in
			blob, err := s.seal(&in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.open(blob)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(out.Resources, in.Resources) || out.HasMaxAge != in.HasMaxAge || out.MaxAge != in.MaxAge || out.ClientID != in.ClientID {
				t.Errorf("opened %+v, sealed %+v", out, in)
			}
		})
	}
}
