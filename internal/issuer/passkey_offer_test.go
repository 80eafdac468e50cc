package issuer_test

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// storedRecoveryCodeHashes reads alice's recovery-code rows from the
// SQLite file on a connection of its own, failing when any row holds a
// code in clear.
func storedRecoveryCodeHashes(t *testing.T, st *store.Store, userID string, shown []string) [][]byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(storetest.SQLiteDir(t, st), store.SQLiteFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT code_hash FROM nsauth_recovery_codes WHERE user_id = ?`, userID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		for _, c := range shown {
			if bytes.Contains(h, []byte(c)) {
				t.Fatal("a recovery code is stored in clear")
			}
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantStoredHashed checks that the database holds exactly the SHA-256
// digests of the codes shown, nothing else.
func wantStoredHashed(t *testing.T, st *store.Store, userID string, shown []string) {
	t.Helper()
	stored := storedRecoveryCodeHashes(t, st, userID, shown)
	if len(stored) != len(shown) {
		t.Fatalf("%d recovery codes stored, %d shown", len(stored), len(shown))
	}
	for _, c := range shown {
		sum := sha256.Sum256([]byte(c))
		if !slices.ContainsFunc(stored, func(h []byte) bool { return bytes.Equal(h, sum[:]) }) {
			t.Fatalf("no SHA-256 digest stored for a code shown")
		}
	}
}

// useRecoveryCode logs alice in with her password and code as the second
// factor, and returns the tokens' amr; a second use of the code is
// refused.
func useRecoveryCode(t *testing.T, h *harness, code string) []string {
	t.Helper()
	v := oauth2.GenerateVerifier()
	b, page := h.mfaPage(v)
	if !strings.Contains(page.Body, `name="recovery_code"`) {
		t.Fatalf("the second-factor page offers no recovery code:\n%s", page.Body)
	}
	res := b.Post(t, page, "/login/mfa", url.Values{"method": {"recovery"}, "recovery_code": {code}})
	if strings.Contains(res.Body, `id="passkey-skip"`) {
		// No passkey was used: the offer of one comes first.
		res = b.Post(t, res, "/login/passkey/skip", nil)
	}
	loc, err := issuertest.RedirectOf(res)
	if err != nil {
		t.Fatalf("a recovery code as the second factor: %v", err)
	}
	amr := amrOf(t, h.exchange(loc.Query().Get("code"), v).IDToken)
	b2, page2 := h.mfaPage(oauth2.GenerateVerifier())
	if res := b2.Post(t, page2, "/login/mfa", url.Values{"method": {"recovery"}, "recovery_code": {code}}); res.Response.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a recovery code used twice: HTTP %d", res.Response.StatusCode)
	}
	return amr
}

// TestPasskeyFirstFactorGivesRecoveryCodes: a passkey that becomes a
// user's first second factor (through an enrolment link, under either
// policy) comes with ten distinct recovery codes, shown once, stored as
// digests; one of them then logs in once as the second factor.
func TestPasskeyFirstFactorGivesRecoveryCodes(t *testing.T) {
	t.Parallel()
	for _, required := range []bool{false, true} {
		t.Run(fmt.Sprintf("required=%v", required), func(t *testing.T) {
			t.Parallel()
			h, trail := newPasskeyHarness(t, sqlite(), func(c *issuer.Config) { c.RequireSecondFactor = required })
			f := &passkeyFlow{t: t, h: h, trail: trail, key: newSoftKey(t, h.url)}
			f.b = issuertest.NewBrowser(t)
			f.page = h.enrolPage(f.b)
			res := f.finish("/login/mfa/passkey/enroll", "enroll", f.key.create(t, f.options("enroll")), url.Values{"name": {"Laptop"}})
			codes := recoveryCodesOn(t, res)
			if res.Response.StatusCode != http.StatusOK || len(codes) != 10 || !strings.Contains(res.Body, `action="/login/mfa/continue"`) ||
				!strings.Contains(res.Body, "Your passkey is added") {
				t.Fatalf("after adding a passkey: HTTP %d, %d codes\n%s", res.Response.StatusCode, len(codes), res.Body)
			}
			if csp := res.Response.Header.Get("Content-Security-Policy"); strings.Contains(csp, "script-src") {
				t.Errorf("the codes page allows scripts: %q", csp)
			}
			wantStoredHashed(t, h.st, h.alice.ID, codes)
			wantLinkDone(t, f.b.Post(t, res, "/login/mfa/continue", nil))
			// The codes page is shown once: its button works once.
			if again := f.b.Post(t, res, "/login/mfa/continue", nil); again.Response.StatusCode != http.StatusBadRequest {
				t.Errorf("continuing twice: HTTP %d", again.Response.StatusCode)
			}
			if got := useRecoveryCode(t, h, codes[7]); !slices.Equal(got, wantMFA) {
				t.Errorf("amr with a recovery code: %v, want %v", got, wantMFA)
			}
			if sf, _ := h.st.SecondFactors(ctx, h.alice.ID); sf.RecoveryCodes != 9 {
				t.Errorf("%d recovery codes left, want 9", sf.RecoveryCodes)
			}
			events, records := trail.records(t)
			enrolled := 0
			for _, ev := range events {
				if ev.Type == audit.SecondFactorEnrolled && ev.Reason == "passkey" {
					enrolled++
				}
			}
			if enrolled != 1 {
				t.Errorf("%d mfa.enrolled events for the passkey, want 1", enrolled)
			}
			for _, c := range codes {
				if strings.Contains(records, c) {
					t.Fatal("a recovery code reached the audit trail")
				}
			}
		})
	}
}

// TestPasskeyKeepsExistingRecoveryCodes: a user who has recovery codes
// (from an authenticator app) gets no new ones with a passkey; theirs
// still work.
func TestPasskeyKeepsExistingRecoveryCodes(t *testing.T) {
	t.Parallel()
	h, trail := newPasskeyHarness(t, sqlite(), nil)
	h.enrollAlice(recoveryCodes...)
	f := &passkeyFlow{t: t, h: h, trail: trail, key: newSoftKey(t, h.url)}
	f.open(nil)
	f.page = f.b.Post(t, f.password(), "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
	if !strings.Contains(f.page.Body, `id="passkey-name"`) {
		t.Fatalf("no offer after password and code: HTTP %d\n%s", f.page.Response.StatusCode, f.page.Body)
	}
	res := f.finish("/login/passkey/register", "register", f.key.create(t, f.options("register")), url.Values{"name": {"Laptop"}})
	loc, err := issuertest.RedirectOf(res)
	if err != nil {
		t.Fatalf("a user with recovery codes was shown something: %v", err)
	}
	if got := amrOf(t, h.exchange(loc.Query().Get("code"), f.verfier).IDToken); !slices.Equal(got, wantMFA) {
		t.Errorf("amr %v: adding a passkey changed what the login earned", got)
	}
	wantStoredHashed(t, h.st, h.alice.ID, recoveryCodes)
	if got := useRecoveryCode(t, h, recoveryCodes[0]); !slices.Equal(got, wantMFA) {
		t.Errorf("amr with an old recovery code: %v", got)
	}
}

// TestPasskeyOfferOneMore: a user with a passkey who logs in without it
// (password and code) is offered one for this device, named apart from
// the first; registered, `nsauth users passkeys` lists both, and the
// login keeps its amr. A login that used a passkey gets no offer, nor
// does a user at the limit, nor a browser that said "Not now".
func TestPasskeyOfferOneMore(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t, sqlite(), nil)
	h := e.h
	first := &passkeyFlow{t: t, h: h, trail: e.trail, key: newSoftKey(t, h.url)}
	first.register("Laptop")
	h.enrollAlice(recoveryCodes...)

	// codeLogin logs alice in with her password and a TOTP code in
	// browser b (a new one when nil) and returns the page that follows.
	codeLogin := func(f *passkeyFlow, b *issuertest.Browser) *issuertest.Page {
		t.Helper()
		h.clock.Advance(30 * time.Second) // a code of a new time step
		f.open(b)
		p := f.password()
		if !strings.Contains(p.Body, `action="/login/mfa"`) {
			t.Fatalf("no second-factor page: HTTP %d\n%s", p.Response.StatusCode, p.Body)
		}
		f.page = f.b.Post(t, p, "/login/mfa", totpForm(totpAt(t, totpSecret, h.clock.Now())))
		return f.page
	}

	phone := &passkeyFlow{t: t, h: h, trail: e.trail, key: newSoftKey(t, h.url)}
	offer := codeLogin(phone, nil)
	if offer.Response.StatusCode != http.StatusOK || !strings.Contains(offer.Body, "Add a passkey for this device") ||
		!strings.Contains(offer.Body, "You have a passkey") {
		t.Fatalf("no offer of one more passkey after password and code: HTTP %d\n%s", offer.Response.StatusCode, offer.Body)
	}
	if name := offerName.FindStringSubmatch(offer.Body); name == nil || name[1] == "Laptop" || name[1] == "" {
		t.Fatalf("the name offered (%v) does not tell the new passkey from Laptop", name)
	}
	o := phone.options("register")
	res := phone.finish("/login/passkey/register", "register", phone.key.create(t, o), url.Values{"name": {"Phone"}})
	loc, err := issuertest.RedirectOf(res)
	if err != nil {
		t.Fatalf("registering a second passkey: %v", err)
	}
	if got := amrOf(t, h.exchange(loc.Query().Get("code"), phone.verfier).IDToken); !slices.Equal(got, wantMFA) {
		t.Errorf("amr %v, want %v: adding a passkey does not change the login", got, wantMFA)
	}
	code, out, errOut := e.users(t, "passkeys", "alice")
	if code != 0 || !strings.Contains(out, "Laptop") || !strings.Contains(out, "Phone") {
		t.Fatalf("nsauth users passkeys alice: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("$ nsauth users passkeys alice\n%s", out)

	t.Run("a login with a passkey is not offered one", func(t *testing.T) {
		f := &passkeyFlow{t: t, h: h, key: phone.key}
		f.open(nil)
		p := f.password()
		res := f.finish("/login/mfa/passkey", "second_factor", f.key.get(t, f.options("second_factor").PublicKey.Challenge), nil)
		if _, err := issuertest.RedirectOf(res); err != nil {
			t.Fatalf("after password and passkey (page %d): %v\n%s", p.Response.StatusCode, err, lastPasskeyFailure(t, e.trail))
		}
		f.open(nil)
		res = f.finish("/login/passkey/finish", "passwordless", f.key.get(t, f.options("passwordless").PublicKey.Challenge), nil)
		if _, err := issuertest.RedirectOf(res); err != nil {
			t.Fatalf("after a passkey alone: %v", err)
		}
	})
	t.Run("Not now is kept by the browser", func(t *testing.T) {
		f := &passkeyFlow{t: t, h: h}
		if p := codeLogin(f, nil); !strings.Contains(p.Body, "Not now") {
			t.Fatalf("no offer: HTTP %d\n%s", p.Response.StatusCode, p.Body)
		}
		if _, err := issuertest.RedirectOf(f.b.Post(t, f.page, "/login/passkey/skip", nil)); err != nil {
			t.Fatal(err)
		}
		if _, err := issuertest.RedirectOf(codeLogin(f, f.b)); err != nil {
			t.Fatalf("offered again in the browser that said Not now: %v", err)
		}
	})
	t.Run("no offer at the limit", func(t *testing.T) {
		for n := 2; n < store.MaxPasskeysPerUser; n++ {
			pk := &store.Passkey{UserID: h.alice.ID, Name: fmt.Sprintf("Key %d", n), CredentialID: []byte(fmt.Sprintf("credential-%d", n)),
				PublicKey: []byte("not a key, never used")}
			if err := h.st.AddPasskey(ctx, pk); err != nil {
				t.Fatal(err)
			}
		}
		f := &passkeyFlow{t: t, h: h}
		if _, err := issuertest.RedirectOf(codeLogin(f, nil)); err != nil {
			t.Fatalf("a user with %d passkeys: %v", store.MaxPasskeysPerUser, err)
		}
		// One fewer, and the offer is back.
		if code, _, errOut := e.users(t, "passkeys", "alice", "--remove", "Key 2"); code != 0 {
			t.Fatalf("--remove: %s", errOut)
		}
		if p := codeLogin(f, nil); !strings.Contains(p.Body, "You have 19 passkeys") {
			t.Fatalf("no offer below the limit: HTTP %d\n%s", p.Response.StatusCode, p.Body)
		}
	})

	events, _ := e.trail.records(t)
	var registered []string
	for _, ev := range events {
		if ev.Type == audit.PasskeyRegistered {
			registered = append(registered, ev.Target)
		}
	}
	if !slices.Equal(registered, []string{"Laptop", "Phone"}) {
		t.Errorf("passkey.registered events name %q", registered)
	}
}

// TestNewPasskeyName: the name suggested for one more passkey tells it
// from the others.
func TestNewPasskeyName(t *testing.T) {
	t.Parallel()
	const (
		firefoxLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
		chromeMac    = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
		edgeWindows  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
		safariIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
		chromeAndroi = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
	)
	cases := []struct {
		name, ua string
		taken    []string
		want     string
	}{
		{"Firefox on Linux", firefoxLinux, []string{"Laptop"}, "Firefox on Linux"},
		{"Chrome on a Mac", chromeMac, nil, "Chrome on macOS"},
		{"Edge, which names Chrome too", edgeWindows, nil, "Edge on Windows"},
		{"Safari on an iPhone, which names Mac OS X too", safariIPhone, nil, "Safari on iPhone"},
		{"Chrome on Android, which names Linux too", chromeAndroi, nil, "Chrome on Android"},
		{"taken", firefoxLinux, []string{"Firefox on Linux"}, "Firefox on Linux (2)"},
		{"taken twice", firefoxLinux, []string{"Firefox on Linux", "Firefox on Linux (2)"}, "Firefox on Linux (3)"},
		{"unknown agent", "curl/8.5.0", nil, "Passkey 2026-11-30"},
		{"unknown agent, fallback taken", "", []string{"Passkey 2026-11-30"}, "Passkey 2026-11-30 (2)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := issuer.NewPasskeyName(tc.ua, "Passkey 2026-11-30", tc.taken); got != tc.want {
				t.Fatalf("name %q, want %q", got, tc.want)
			}
		})
	}
}

var offerName = regexp.MustCompile(`id="passkey-name" name="name" type="text" value="([^"]*)"`)

// TestPasskeyEnrolmentKeepsExistingRecoveryCodes: under a required
// policy, a user left with recovery codes only (their app removed)
// enrols a passkey through an enrolment link and is done at once: no new
// codes; theirs still work.
func TestPasskeyEnrolmentKeepsExistingRecoveryCodes(t *testing.T) {
	t.Parallel()
	h, trail := newPasskeyHarness(t, sqlite(), func(c *issuer.Config) { c.RequireSecondFactor = true })
	if err := h.st.ReplaceRecoveryCodes(ctx, h.alice.ID, recoveryCodes); err != nil {
		t.Fatal(err)
	}
	f := &passkeyFlow{t: t, h: h, trail: trail, key: newSoftKey(t, h.url)}
	f.b = issuertest.NewBrowser(t)
	f.page = h.enrolPage(f.b)
	wantLinkDone(t, f.finish("/login/mfa/passkey/enroll", "enroll", f.key.create(t, f.options("enroll")), url.Values{"name": {"Laptop"}}))
	f.open(nil)
	f.password()
	loc, err := issuertest.RedirectOf(f.finish("/login/mfa/passkey", "second_factor", f.key.get(t, f.options("second_factor").PublicKey.Challenge), nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(amrOf(t, h.exchange(loc.Query().Get("code"), f.verfier).IDToken), " "); got != "pwd hwk mfa" {
		t.Errorf("amr %q", got)
	}
	wantStoredHashed(t, h.st, h.alice.ID, recoveryCodes)
	if got := useRecoveryCode(t, h, recoveryCodes[2]); !slices.Equal(got, wantMFA) {
		t.Errorf("amr with an old recovery code: %v", got)
	}
}
