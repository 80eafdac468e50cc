package issuer_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestIDTokenNamesItsGrant: every ID token carries a `sid` naming the
// login it came from; refreshed ID tokens keep it, another login gets
// another one, and userinfo does not show it.
func TestIDTokenNamesItsGrant(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		first := h.tokens(nil)
		sid := sidOf(t, first.IDToken)
		if sid == "" {
			t.Fatal("the ID token has no sid")
		}
		refreshed := h.refresh(first.RefreshToken)
		if refreshed.status != http.StatusOK {
			t.Fatalf("refresh: HTTP %d %s", refreshed.status, refreshed.Error)
		}
		if got := sidOf(t, refreshed.IDToken); got != sid {
			t.Errorf("refreshed ID token sid = %q, want %q", got, sid)
		}
		if other := sidOf(t, h.tokens(nil).IDToken); other == "" || other == sid {
			t.Errorf("a second login's sid = %q (first %q)", other, sid)
		}
		if _, info := h.userinfo(first.AccessToken); info["sid"] != nil {
			t.Errorf("userinfo shows sid: %v", info)
		}
		if _, access := jwtParts(t, first.AccessToken); access["sid"] != nil {
			t.Errorf("the access token carries sid: %v", access)
		}
	})
}

func TestDiscoveryAdvertisesSessionID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	_, body := h.get("/.well-known/openid-configuration", nil)
	var d struct {
		Claims     []string `json:"claims_supported"`
		EndSession string   `json:"end_session_endpoint"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(d.Claims, "sid") {
		t.Errorf("claims_supported = %v, lacks sid", d.Claims)
	}
	if d.EndSession != h.url+"/oauth/end_session" {
		t.Errorf("end_session_endpoint = %q", d.EndSession)
	}
}

// sidOf returns the `sid` claim of a token, unverified.
func sidOf(t *testing.T, token string) string {
	t.Helper()
	_, claims := jwtParts(t, token)
	sid, _ := claims["sid"].(string)
	return sid
}
