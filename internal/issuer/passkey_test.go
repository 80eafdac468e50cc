package issuer_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// softKey is a WebAuthn authenticator in a few lines of Go, written from
// the specification (not with the library the provider uses): a P-256
// key, "none" attestation, a signature counter.
type softKey struct {
	rpID, origin string
	id           []byte
	key          *ecdsa.PrivateKey
	userHandle   []byte
	count        uint32
}

func newSoftKey(t *testing.T, issuerURL string) *softKey {
	t.Helper()
	u, err := url.Parse(issuerURL)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &softKey{rpID: u.Hostname(), origin: issuerURL, id: id, key: key}
}

var b64 = base64.RawURLEncoding

// cbor encodes the few CBOR shapes an attestation needs (RFC 8949):
// unsigned and negative integers, byte and text strings, maps.
func cborHead(major byte, n uint64) []byte {
	switch {
	case n < 24:
		return []byte{major<<5 | byte(n)}
	case n < 1<<8:
		return []byte{major<<5 | 24, byte(n)}
	default:
		return []byte{major<<5 | 25, byte(n >> 8), byte(n)}
	}
}

func cborInt(v int) []byte {
	if v < 0 {
		return cborHead(1, uint64(-1-v))
	}
	return cborHead(0, uint64(v))
}

func cborBytes(b []byte) []byte { return append(cborHead(2, uint64(len(b))), b...) }
func cborText(s string) []byte  { return append(cborHead(3, uint64(len(s))), s...) }

// cborMap joins key/value pairs already encoded.
func cborMap(kv ...[]byte) []byte {
	out := cborHead(5, uint64(len(kv)/2))
	for _, p := range kv {
		out = append(out, p...)
	}
	return out
}

const (
	flagUP = 0x01
	flagUV = 0x04
	flagAT = 0x40
)

func (k *softKey) authData(flags byte, extra []byte) []byte {
	rp := sha256.Sum256([]byte(k.rpID))
	out := append(rp[:], flags)
	out = binary.BigEndian.AppendUint32(out, k.count)
	return append(out, extra...)
}

func (k *softKey) clientData(kind, challenge string) []byte {
	cd, _ := json.Marshal(map[string]any{"type": kind, "challenge": challenge, "origin": k.origin, "crossOrigin": false})
	return cd
}

// options reads what a begin endpoint answered.
type passkeyOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		UserVerification string `json:"userVerification"`
		AllowCredentials []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
	} `json:"publicKey"`
}

// create answers a registration's options: the credential JSON a browser
// posts.
func (k *softKey) create(t *testing.T, o passkeyOptions) string {
	t.Helper()
	handle, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		t.Fatalf("user id %q: %v", o.PublicKey.User.ID, err)
	}
	k.userHandle = handle
	x, y := k.key.X.FillBytes(make([]byte, 32)), k.key.Y.FillBytes(make([]byte, 32))
	cose := cborMap(cborInt(1), cborInt(2), cborInt(3), cborInt(-7), cborInt(-1), cborInt(1), cborInt(-2), cborBytes(x), cborInt(-3), cborBytes(y))
	attested := make([]byte, 16) // AAGUID: none
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(k.id)))
	attested = append(append(attested, k.id...), cose...)
	att := cborMap(cborText("fmt"), cborText("none"), cborText("attStmt"), cborMap(), cborText("authData"),
		cborBytes(k.authData(flagUP|flagUV|flagAT, attested)))
	out, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(k.clientData("webauthn.create", o.PublicKey.Challenge)),
			"attestationObject": b64.EncodeToString(att),
			"transports":        []string{"internal"},
		},
	})
	return string(out)
}

// get answers an assertion's challenge.
func (k *softKey) get(t *testing.T, challenge string) string {
	t.Helper()
	k.count++
	ad := k.authData(flagUP|flagUV, nil)
	cd := k.clientData("webauthn.get", challenge)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(bytes.Clone(ad), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cd),
			"authenticatorData": b64.EncodeToString(ad),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(k.userHandle),
		},
	})
	return string(out)
}

// passkeyFlow drives the passkey endpoints over HTTP as the script does.
type passkeyFlow struct {
	t       *testing.T
	h       *harness
	b       *issuertest.Browser
	page    *issuertest.Page
	trail   *auditTrail
	key     *softKey
	verfier string
}

func newPasskeyHarness(t *testing.T, b storetest.Backend, mod func(*issuer.Config)) (*harness, *auditTrail) {
	t.Helper()
	var trail *auditTrail
	h := newHarness(t, b, func(c *issuer.Config) {
		c.Issuer = strings.Replace(c.Issuer, "127.0.0.1", "localhost", 1)
		trail = withAudit(t, c)
		if mod != nil {
			mod(c)
		}
	})
	return h, trail
}

// open starts a login in a fresh browser (or b's) and stops at the login
// page.
func (f *passkeyFlow) open(b *issuertest.Browser) *issuertest.Page {
	f.t.Helper()
	if b == nil {
		b = issuertest.NewBrowser(f.t)
	}
	f.b = b
	f.verfier = oauth2.GenerateVerifier()
	f.page = b.Open(f.t, f.h.authorizeURL(f.verfier, nil))
	if f.page.Response.StatusCode != http.StatusOK || f.page.Form.Get("authRequestID") == "" {
		f.t.Fatalf("no login page: HTTP %d\n%s", f.page.Response.StatusCode, f.page.Body)
	}
	return f.page
}

// begin posts a begin request; body nil means the usual one.
func (f *passkeyFlow) begin(mode string, body []byte, header http.Header) (int, []byte) {
	f.t.Helper()
	if body == nil {
		body, _ = json.Marshal(map[string]string{"authRequestID": f.page.Form.Get("authRequestID"), "mode": mode, "token": f.page.Form.Get("token")})
	}
	req, err := http.NewRequest(http.MethodPost, f.h.url+"/login/passkey/begin", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", f.page.Form.Get("csrf"))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.b.Client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (f *passkeyFlow) options(mode string) passkeyOptions {
	f.t.Helper()
	status, body := f.begin(mode, nil, nil)
	if status != http.StatusOK {
		f.t.Fatalf("begin %s: HTTP %d %s", mode, status, body)
	}
	var o passkeyOptions
	if err := json.Unmarshal(body, &o); err != nil || o.PublicKey.Challenge == "" {
		f.t.Fatalf("begin %s answered %s (%v)", mode, body, err)
	}
	return o
}

// finish posts the credential to path with the page's hidden fields.
func (f *passkeyFlow) finish(path, mode, credential string, extra url.Values) *issuertest.Page {
	f.t.Helper()
	fields := url.Values{"mode": {mode}, "credential": {credential}}
	for k, v := range extra {
		fields[k] = v
	}
	return f.b.Post(f.t, f.page, path, fields)
}

// password submits alice's password on the login page.
func (f *passkeyFlow) password() *issuertest.Page {
	f.t.Helper()
	f.page = f.b.Submit(f.t, f.page, "alice", alicePassword)
	return f.page
}

// register adds f.key as alice's first passkey through an enrolment link
// (a password alone adds none), with the ten recovery codes that come
// with a first factor.
func (f *passkeyFlow) register(name string) {
	f.t.Helper()
	f.b = issuertest.NewBrowser(f.t)
	f.page = f.h.enrolPage(f.b)
	o := f.options("enroll")
	if o.PublicKey.RP.ID != "localhost" {
		f.t.Fatalf("relying party id %q, want the issuer's host", o.PublicKey.RP.ID)
	}
	res := f.finish("/login/mfa/passkey/enroll", "enroll", f.key.create(f.t, o), url.Values{"name": {name}})
	if codes := recoveryCodesOn(f.t, res); len(codes) != 10 {
		f.t.Fatalf("registering a first passkey showed %d recovery codes, want 10\n%s", len(codes), res.Body)
	}
	wantLinkDone(f.t, f.b.Post(f.t, res, "/login/mfa/continue", nil))
}

// recoveryCodesOn returns the recovery codes a page shows, failing when
// they repeat.
func recoveryCodesOn(t *testing.T, p *issuertest.Page) []string {
	t.Helper()
	var codes []string
	seen := map[string]bool{}
	for _, m := range codesOnPage.FindAllStringSubmatch(p.Body, -1) {
		if seen[m[1]] {
			t.Fatalf("recovery code %d repeats", len(codes))
		}
		seen[m[1]] = true
		codes = append(codes, m[1])
	}
	return codes
}

func newPasskeyFlow(t *testing.T, mod func(*issuer.Config)) *passkeyFlow {
	t.Helper()
	h, trail := newPasskeyHarness(t, sqlite(), mod)
	f := &passkeyFlow{t: t, h: h, trail: trail, key: newSoftKey(t, h.url)}
	f.register("soft key")
	return f
}

func lastPasskeyFailure(t *testing.T, trail *auditTrail) string {
	t.Helper()
	events, _ := trail.records(t)
	for j := len(events) - 1; j >= 0; j-- {
		if events[j].Type == audit.PasskeyFailed {
			return events[j].Reason
		}
	}
	return ""
}

// TestPasskeyBeginRefusals: what the begin endpoint refuses before it
// stores anything.
func TestPasskeyBeginRefusals(t *testing.T) {
	t.Parallel()
	f := newPasskeyFlow(t, nil)
	f.open(nil)
	valid, _ := json.Marshal(map[string]string{"authRequestID": f.page.Form.Get("authRequestID"), "mode": "passwordless"})
	other, _ := json.Marshal(map[string]string{"authRequestID": f.page.Form.Get("authRequestID") + "x", "mode": "passwordless"})
	cases := []struct {
		name   string
		body   []byte
		header http.Header
		want   int
	}{
		{"bad JSON", []byte(`{"authRequestID":`), nil, http.StatusBadRequest},
		{"unknown field", []byte(`{"authRequestID":"a","mode":"passwordless","admin":true}`), nil, http.StatusBadRequest},
		{"oversize body", append(append([]byte(`{"authRequestID":"`), bytes.Repeat([]byte("a"), 64<<10)...), `"}`...), nil, http.StatusRequestEntityTooLarge},
		{"not JSON", valid, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, http.StatusUnsupportedMediaType},
		{"CSRF token missing", valid, http.Header{"X-Csrf-Token": {""}}, http.StatusForbidden},
		{"CSRF token wrong", valid, http.Header{"X-Csrf-Token": {strings.Repeat("A", 43)}}, http.StatusForbidden},
		{"another origin", valid, http.Header{"Origin": {"http://evil.example"}}, http.StatusForbidden},
		{"cross-site fetch", valid, http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"forged auth request", other, nil, http.StatusBadRequest},
		{"unknown mode", []byte(`{"authRequestID":"` + f.page.Form.Get("authRequestID") + `","mode":"root"}`), nil, http.StatusBadRequest},
		{"registration without a password login", []byte(`{"authRequestID":"` + f.page.Form.Get("authRequestID") + `","mode":"register"}`), nil, http.StatusBadRequest},
		{"second factor without its state", []byte(`{"authRequestID":"` + f.page.Form.Get("authRequestID") + `","mode":"second_factor","token":"` + strings.Repeat("A", 43) + `"}`), nil, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.begin("", tc.body, tc.header)
			if status != tc.want {
				t.Fatalf("HTTP %d %s, want %d", status, body, tc.want)
			}
			var e struct{ Error string }
			if json.Unmarshal(body, &e) != nil || e.Error == "" || strings.Contains(e.Error, "sql") {
				t.Fatalf("answer %s is not a plain JSON error", body)
			}
		})
	}
	// None of them left a ceremony behind: the usual begin and the usual
	// answer still work.
	o := f.options("passwordless")
	if o.PublicKey.UserVerification != "required" || len(o.PublicKey.AllowCredentials) != 0 {
		t.Fatalf("passwordless options %+v: want user verification required and no allow list (discoverable)", o.PublicKey)
	}
	if _, err := issuertest.RedirectOf(f.finish("/login/passkey/finish", "passwordless", f.key.get(t, o.PublicKey.Challenge), nil)); err != nil {
		t.Fatal(err)
	}
}

// TestPasskeyFinishRefusals: assertions that must not log anyone in, and
// what each leaves in the audit trail.
func TestPasskeyFinishRefusals(t *testing.T) {
	t.Parallel()
	t.Run("replayed assertion", func(t *testing.T) {
		t.Parallel()
		f := newPasskeyFlow(t, nil)
		f.open(nil)
		old := f.key.get(t, f.options("passwordless").PublicKey.Challenge)
		if _, err := issuertest.RedirectOf(f.finish("/login/passkey/finish", "passwordless", old, nil)); err != nil {
			t.Fatal(err)
		}
		f.open(nil)
		f.options("passwordless")
		res := f.finish("/login/passkey/finish", "passwordless", old, nil)
		if res.Response.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Body, "not accepted") {
			t.Fatalf("replay: HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
		if r := lastPasskeyFailure(t, f.trail); r != "bad_assertion" {
			t.Fatalf("audit reason %q", r)
		}
	})
	t.Run("answer posted twice", func(t *testing.T) {
		t.Parallel()
		f := newPasskeyFlow(t, nil)
		f.open(nil)
		o := f.options("passwordless")
		bad := f.finish("/login/passkey/finish", "passwordless", `{"id":"x"}`, nil)
		if bad.Response.StatusCode != http.StatusUnauthorized {
			t.Fatalf("garbage answer: HTTP %d", bad.Response.StatusCode)
		}
		// The ceremony was answered (wrongly): the right answer comes too late.
		res := f.finish("/login/passkey/finish", "passwordless", f.key.get(t, o.PublicKey.Challenge), nil)
		if res.Response.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Body, "expired") {
			t.Fatalf("second answer: HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
	})
	t.Run("expired ceremony", func(t *testing.T) {
		t.Parallel()
		f := newPasskeyFlow(t, nil)
		f.open(nil)
		o := f.options("passwordless")
		f.h.clock.Advance(6 * time.Minute) // the auth request (10 min) is still good
		res := f.finish("/login/passkey/finish", "passwordless", f.key.get(t, o.PublicKey.Challenge), nil)
		if res.Response.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Body, "expired") {
			t.Fatalf("HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
		if r := lastPasskeyFailure(t, f.trail); r != "expired" {
			t.Fatalf("audit reason %q", r)
		}
	})
	t.Run("wrong auth request", func(t *testing.T) {
		t.Parallel()
		f := newPasskeyFlow(t, nil)
		f.open(nil)
		o := f.options("passwordless")
		first := f.page
		f.open(f.b) // a second login in the same browser, no ceremony of its own
		res := f.finish("/login/passkey/finish", "passwordless", f.key.get(t, o.PublicKey.Challenge), nil)
		if res.Response.StatusCode != http.StatusUnauthorized {
			t.Fatalf("HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
		// The first login's ceremony is untouched by the other's refusal.
		f.page = first
		if _, err := issuertest.RedirectOf(f.finish("/login/passkey/finish", "passwordless", f.key.get(t, o.PublicKey.Challenge), nil)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CSRF token missing", func(t *testing.T) {
		t.Parallel()
		f := newPasskeyFlow(t, nil)
		f.open(nil)
		o := f.options("passwordless")
		res := f.finish("/login/passkey/finish", "passwordless", f.key.get(t, o.PublicKey.Challenge), url.Values{"csrf": {""}})
		if res.Response.StatusCode != http.StatusForbidden {
			t.Fatalf("HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
	})
	t.Run("oversize form", func(t *testing.T) {
		t.Parallel()
		f := newPasskeyFlow(t, nil)
		f.open(nil)
		res := f.finish("/login/passkey/finish", "passwordless", strings.Repeat("a", 100<<10), nil)
		if res.Response.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("HTTP %d", res.Response.StatusCode)
		}
	})
	t.Run("disabled user", func(t *testing.T) {
		t.Parallel()
		f := newPasskeyFlow(t, nil)
		if err := f.h.st.SetDisabled(ctx, "alice", true); err != nil {
			t.Fatal(err)
		}
		f.open(nil)
		res := f.finish("/login/passkey/finish", "passwordless", f.key.get(t, f.options("passwordless").PublicKey.Challenge), nil)
		if res.Response.StatusCode != http.StatusUnauthorized {
			t.Fatalf("HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
		if r := lastPasskeyFailure(t, f.trail); r != "disabled" {
			t.Fatalf("audit reason %q", r)
		}
	})
	t.Run("counter went backwards", func(t *testing.T) {
		t.Parallel()
		f := newPasskeyFlow(t, nil)
		f.open(nil)
		if _, err := issuertest.RedirectOf(f.finish("/login/passkey/finish", "passwordless", f.key.get(t, f.options("passwordless").PublicKey.Challenge), nil)); err != nil {
			t.Fatal(err)
		}
		f.key.count = 0 // a clone of the key, used once before
		f.open(nil)
		res := f.finish("/login/passkey/finish", "passwordless", f.key.get(t, f.options("passwordless").PublicKey.Challenge), nil)
		if res.Response.StatusCode != http.StatusUnauthorized {
			t.Fatalf("HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
		if r := lastPasskeyFailure(t, f.trail); r != "clone_warning" {
			t.Fatalf("audit reason %q", r)
		}
		pk, err := f.h.st.PasskeyByCredentialID(ctx, f.key.id)
		if err != nil || !pk.CloneWarning {
			t.Fatalf("passkey %+v, %v: want the clone warning kept", pk, err)
		}
	})
}

// TestPasskeyFailuresCountTowardLoginLimits: refused assertions take
// places in the login counters like wrong passwords; when they are used
// up the endpoint answers 429 without checking anything.
func TestPasskeyFailuresCountTowardLoginLimits(t *testing.T) {
	t.Parallel()
	f := newPasskeyFlow(t, func(c *issuer.Config) { c.LoginAttempts = 3 })
	stranger := newSoftKey(t, f.h.url) // a key nsauth never saw
	stranger.userHandle = []byte(f.h.alice.ID)
	f.open(nil)
	for n := 1; n <= 3; n++ {
		res := f.finish("/login/passkey/finish", "passwordless", stranger.get(t, f.options("passwordless").PublicKey.Challenge), nil)
		if res.Response.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: HTTP %d\n%s", n, res.Response.StatusCode, res.Body)
		}
	}
	res := f.finish("/login/passkey/finish", "passwordless", f.key.get(t, f.options("passwordless").PublicKey.Challenge), nil)
	if res.Response.StatusCode != http.StatusTooManyRequests || res.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("after 3 failures even the right passkey: HTTP %d (want 429 with Retry-After)", res.Response.StatusCode)
	}
	if r := lastPasskeyFailure(t, f.trail); r != "unknown_credential" {
		t.Fatalf("audit reason %q", r)
	}
	events, _ := f.trail.records(t)
	locked := false
	for _, e := range events {
		locked = locked || e.Type == audit.LoginLockedOut
	}
	if !locked {
		t.Error("no login.locked_out event")
	}
	f.h.clock.Advance(issuer.LoginWindow + time.Second)
	if _, err := issuertest.RedirectOf(f.finish("/login/passkey/finish", "passwordless", f.key.get(t, f.options("passwordless").PublicKey.Challenge), nil)); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestPasskeyOfferNotNow: after a login that proved two factors (password
// and code), "Not now" finishes the login as it was and keeps the offer
// away from that browser; another browser is offered again.
func TestPasskeyOfferNotNow(t *testing.T) {
	t.Parallel()
	h, trail := newPasskeyHarness(t, sqlite(), nil)
	h.enrollAlice(recoveryCodes...)
	f := &passkeyFlow{t: t, h: h, trail: trail}
	codeLogin := func(b *issuertest.Browser) *issuertest.Page {
		t.Helper()
		h.clock.Advance(30 * time.Second) // a code of a new time step
		f.open(b)
		f.page = f.b.Post(t, f.password(), "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
		return f.page
	}
	if p := codeLogin(nil); !strings.Contains(p.Body, "Not now") {
		t.Fatalf("no offer: HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
	loc, err := issuertest.RedirectOf(f.b.Post(t, f.page, "/login/passkey/skip", nil))
	if err != nil {
		t.Fatal(err)
	}
	tr := h.exchange(loc.Query().Get("code"), f.verfier)
	if _, claims := jwtParts(t, tr.IDToken); !slices.Equal(claimAMR(claims), wantMFA) {
		t.Fatalf("amr %v", claimAMR(claims))
	}
	// "Not now" again: the offer was used up.
	if again := f.b.Post(t, f.page, "/login/passkey/skip", nil); again.Response.StatusCode != http.StatusBadRequest {
		t.Fatalf("second Not now: HTTP %d", again.Response.StatusCode)
	}
	if _, err := issuertest.RedirectOf(codeLogin(f.b)); err != nil {
		t.Fatalf("the same browser is offered again: %v", err)
	}
	if p := codeLogin(nil); !strings.Contains(p.Body, "Not now") {
		t.Fatalf("another browser is not offered: HTTP %d", p.Response.StatusCode)
	}
}

// TestPasskeyCeremoniesAreBounded: one live ceremony per auth request,
// however often begin is called; a new one replaces the old.
func TestPasskeyCeremoniesAreBounded(t *testing.T) {
	t.Parallel()
	f := newPasskeyFlow(t, nil)
	f.open(nil)
	first := f.options("passwordless")
	for range 19 {
		f.options("passwordless")
	}
	res := f.finish("/login/passkey/finish", "passwordless", f.key.get(t, first.PublicKey.Challenge), nil)
	if res.Response.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the first of 20 challenges: HTTP %d, want it replaced", res.Response.StatusCode)
	}
	if _, err := f.h.st.DeleteExpired(ctx); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		f.options("passwordless")
	}
	f.h.clock.Advance(6 * time.Minute) // past the ceremony, not the auth request
	if n, err := f.h.st.DeleteExpired(ctx); err != nil || n != 1 {
		t.Fatalf("DeleteExpired after 20 begins of one login = %d, %v; want the one ceremony", n, err)
	}
}

// TestPasskeySecondFactorOverHTTP: with a passkey, the password leads to
// the second-factor page, where the passkey (and nothing else) completes
// the login; a wrong key is refused and counted.
func TestPasskeySecondFactorOverHTTP(t *testing.T) {
	t.Parallel()
	f := newPasskeyFlow(t, nil)
	f.open(nil)
	p := f.password()
	if p.Response.StatusCode != http.StatusOK || p.Form.Get("token") == "" || !strings.Contains(p.Body, "Use your passkey") {
		t.Fatalf("second-factor page: HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
	if csp := p.Response.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("CSP %q", csp)
	}
	// The pending state works only in the browser that typed the password.
	thief := &passkeyFlow{t: t, h: f.h}
	thief.open(nil)
	stolen, _ := json.Marshal(map[string]string{"authRequestID": p.Form.Get("authRequestID"), "mode": "second_factor", "token": p.Form.Get("token")})
	if status, body := thief.begin("", stolen, nil); status != http.StatusBadRequest {
		t.Fatalf("another browser began the second factor: HTTP %d %s", status, body)
	}
	o := f.options("second_factor")
	if len(o.PublicKey.AllowCredentials) != 1 || o.PublicKey.AllowCredentials[0].ID != b64.EncodeToString(f.key.id) {
		t.Fatalf("second-factor options allow %+v, want alice's one passkey", o.PublicKey.AllowCredentials)
	}
	stranger := newSoftKey(t, f.h.url)
	stranger.userHandle = []byte(f.h.alice.ID)
	res := f.finish("/login/mfa/passkey", "second_factor", stranger.get(t, o.PublicKey.Challenge), nil)
	if res.Response.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Body, "not accepted") {
		t.Fatalf("a stranger's key: HTTP %d\n%s", res.Response.StatusCode, res.Body)
	}
	o = f.options("second_factor")
	res = f.finish("/login/mfa/passkey", "second_factor", f.key.get(t, o.PublicKey.Challenge), nil)
	loc, err := issuertest.RedirectOf(res)
	if err != nil {
		t.Fatal(err)
	}
	tr := f.h.exchange(loc.Query().Get("code"), f.verfier)
	_, claims := jwtParts(t, tr.IDToken)
	if got := claimAMR(claims); strings.Join(got, " ") != "pwd hwk mfa" {
		t.Fatalf("amr %v", got)
	}
}

// TestPasskeyEnrolmentWhenRequired: under NSAUTH_MFA=required, a user
// without a second factor cannot finish a login with the password; an
// enrolment link and the password let them register a passkey (with ten
// recovery codes), after which the password and the passkey log in as
// multi-factor, and the passkey alone satisfies the policy.
func TestPasskeyEnrolmentWhenRequired(t *testing.T) {
	t.Parallel()
	h, trail := newPasskeyHarness(t, sqlite(), func(c *issuer.Config) { c.RequireSecondFactor = true })
	f := &passkeyFlow{t: t, h: h, trail: trail, key: newSoftKey(t, h.url)}
	f.open(nil)
	if p := f.password(); p.Response.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "nsauth users enrol-link alice") ||
		strings.Contains(p.Body, "/login/mfa/passkey/enroll") {
		t.Fatalf("a password alone under a required policy: HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
	f.register("Laptop")
	f.open(nil)
	f.password()
	res := f.finish("/login/mfa/passkey", "second_factor", f.key.get(t, f.options("second_factor").PublicKey.Challenge), nil)
	loc, err := issuertest.RedirectOf(res)
	if err != nil {
		t.Fatal(err)
	}
	tr := f.h.exchange(loc.Query().Get("code"), f.verfier)
	_, claims := jwtParts(t, tr.IDToken)
	if got := strings.Join(claimAMR(claims), " "); got != "pwd hwk mfa" {
		t.Fatalf("amr with the enrolled passkey: %v", got)
	}
	f.open(nil)
	res = f.finish("/login/passkey/finish", "passwordless", f.key.get(t, f.options("passwordless").PublicKey.Challenge), nil)
	if loc, err = issuertest.RedirectOf(res); err != nil {
		t.Fatalf("passwordless under a required policy: %v", err)
	}
	tr = f.h.exchange(loc.Query().Get("code"), f.verfier)
	if _, claims := jwtParts(t, tr.IDToken); strings.Join(claimAMR(claims), " ") != "hwk user mfa" {
		t.Fatalf("passwordless amr %v", claimAMR(claims))
	}
}

// TestPasskeysNeedAHostName: on an issuer whose host is an IP address
// (browsers refuse it as a relying party id), nothing offers passkeys, the
// login page stays script-free, and the endpoints say passkeys are not
// available.
func TestPasskeysNeedAHostName(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil) // http://127.0.0.1:PORT
	b := issuertest.NewBrowser(t)
	page := b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
	if strings.Contains(page.Body, "passkey") {
		t.Fatalf("login page offers passkeys:\n%s", page.Body)
	}
	if csp := page.Response.Header.Get("Content-Security-Policy"); strings.Contains(csp, "script-src") {
		t.Fatalf("CSP %q allows scripts", csp)
	}
	if _, err := issuertest.RedirectOf(b.Submit(t, page, "alice", alicePassword)); err != nil {
		t.Fatalf("password login offered something else: %v", err)
	}
	f := &passkeyFlow{t: t, h: h, b: b}
	f.open(b)
	if status, _ := f.begin("passwordless", nil, nil); status != http.StatusNotFound {
		t.Fatalf("begin: HTTP %d", status)
	}
}

// TestPasskeyLoginPageStandards: the login page with passkeys runs only
// our own script, from our origin.
func TestPasskeyLoginPageStandards(t *testing.T) {
	t.Parallel()
	h, _ := newPasskeyHarness(t, sqlite(), nil)
	page := issuertest.NewBrowser(t).Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
	csp := page.Response.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(page.Body, "<script>") || strings.Contains(page.Body, "onclick") {
		t.Errorf("inline script on the page or allowed by %q", csp)
	}
	if !strings.Contains(page.Body, `<script src="/assets/passkey.js" defer></script>`) {
		t.Errorf("login page does not load the passkey script")
	}
	resp, body := h.get("/assets/passkey.js", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || !strings.Contains(string(body), "navigator.credentials") {
		t.Fatalf("script: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestPasskeyDeviceLogin: a device login's page offers the passkey too,
// and a passkey alone leads to the approval page, whose approval gives
// the device tokens that say how the user logged in.
func TestPasskeyDeviceLogin(t *testing.T) {
	t.Parallel()
	f := newPasskeyFlow(t, nil)
	d := f.h.startDevice("openid")
	f.b = issuertest.NewBrowser(t)
	f.page = f.h.enterCode(f.b, d.UserCode)
	if f.page.URL.Path != "/login" || !strings.Contains(f.page.Body, "Sign in with a passkey") {
		t.Fatalf("device login page: %s HTTP %d\n%s", f.page.URL, f.page.Response.StatusCode, f.page.Body)
	}
	approval := f.finish("/login/passkey/finish", "passwordless", f.key.get(t, f.options("passwordless").PublicKey.Challenge), nil)
	if approval.Response.StatusCode != http.StatusOK || approval.Form.Get("ticket") == "" {
		t.Fatalf("passkey did not lead to the approval page: HTTP %d\n%s", approval.Response.StatusCode, approval.Body)
	}
	if res := decide(f.h, f.b, approval, "approve"); res.Response.StatusCode != http.StatusOK {
		t.Fatalf("approving: HTTP %d", res.Response.StatusCode)
	}
	tr := f.h.wantPoll(d.DeviceCode, "")
	if _, claims := jwtParts(t, tr.IDToken); strings.Join(claimAMR(claims), " ") != "hwk user mfa" || claims["sub"] != f.h.alice.ID {
		t.Fatalf("device tokens: sub %v amr %v", claims["sub"], claimAMR(claims))
	}
}
