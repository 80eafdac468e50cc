package issuer_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// totpSecret is alice's TOTP secret in these tests (base32 of
// "12345678901234567890", RFC 6238's SHA-1 test key).
const totpSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

// totpAt computes the RFC 6238 code of secret at t, on its own (RFC 4226
// dynamic truncation), so the tests do not judge the provider with the
// library it uses.
func totpAt(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
	if err != nil {
		t.Fatal(err)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1000000)
}

func TestTOTPOracleMatchesRFC6238(t *testing.T) {
	t.Parallel()
	// RFC 6238 appendix B, SHA-1, last six digits.
	cases := []struct {
		unix int64
		want string
	}{{59, "287082"}, {1111111109, "081804"}, {1234567890, "005924"}, {2000000000, "279037"}}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.unix), func(t *testing.T) {
			if got := totpAt(t, totpSecret, time.Unix(c.unix, 0)); got != c.want {
				t.Fatalf("code at %d = %s, want %s", c.unix, got, c.want)
			}
		})
	}
}

// enrollAlice gives alice the test TOTP secret and recovery codes.
func (h *harness) enrollAlice(codes ...string) {
	h.t.Helper()
	if err := h.st.EnrollTOTP(ctx, h.alice.ID, totpSecret, 0, codes); err != nil {
		h.t.Fatal(err)
	}
}

// passwordStep opens a login and submits alice's password, returning the
// page that follows.
func (h *harness) passwordStep(b *issuertest.Browser, verifier string) *issuertest.Page {
	h.t.Helper()
	page := b.Open(h.t, h.authorizeURL(verifier, nil))
	if page.Response.StatusCode != http.StatusOK {
		h.t.Fatalf("authorize: HTTP %d", page.Response.StatusCode)
	}
	return b.Submit(h.t, page, "alice", alicePassword)
}

func totpForm(code string) url.Values {
	return url.Values{"method": {"totp"}, "code": {code}}
}

func TestSecondFactorTOTPLogin(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		h.enrollAlice()
		br := issuertest.NewBrowser(t)
		v := oauth2.GenerateVerifier()
		page := h.passwordStep(br, v)
		if page.Response.StatusCode != http.StatusOK || !strings.Contains(page.Body, `action="/login/mfa"`) || page.Form.Get("token") == "" {
			t.Fatalf("the password did not lead to the second-factor page: HTTP %d\n%s", page.Response.StatusCode, page.Body)
		}
		if strings.Contains(page.Body, "passkey") {
			t.Error("the page offers a passkey to a user without one")
		}
		res := br.Post(t, page, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
		loc, err := issuertest.RedirectOf(res)
		if err != nil {
			t.Fatal(err)
		}
		tr := h.exchange(loc.Query().Get("code"), v)
		if tr.status != http.StatusOK {
			t.Fatalf("exchange: HTTP %d %s", tr.status, tr.Error)
		}
		_, id := jwtParts(t, tr.IDToken)
		var amr []string
		for _, a := range id["amr"].([]any) {
			amr = append(amr, a.(string))
		}
		if want := []string{"pwd", "otp", "mfa"}; !slices.Equal(amr, want) {
			t.Errorf("ID token amr = %v, want %v", amr, want)
		}
	})
}

func TestSecondFactorNotAskedWithoutOne(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) {})
	tr := h.tokens(nil)
	_, id := jwtParts(t, tr.IDToken)
	if fmt.Sprint(id["amr"]) != "[pwd]" {
		t.Errorf("amr = %v, want [pwd]", id["amr"])
	}
}
