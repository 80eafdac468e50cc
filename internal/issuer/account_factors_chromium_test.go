package issuer_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestAccountPasskeyInChromium adds a passkey on the account page in
// headless Chromium with a DevTools virtual authenticator, through the
// page's static script, on each backend: alice signs in to /account with
// her password and a code, adds a passkey, and once her sign-in is old
// confirms it is her with that passkey alone.
func TestAccountPasskeyInChromium(t *testing.T) {
	t.Parallel()
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			e := newPasskeyEnv(t, b, nil)
			h := e.h
			h.enrollAlice(recoveryCodes...)
			c := issuertest.NewChromium(t, 150*time.Second)
			css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
			authID := virtualAuthenticator(t, c)

			h.clock.Advance(30 * time.Second)
			c.Do(t, "signing in to the account page",
				chromedp.Navigate(h.url+"/account"),
				chromedp.WaitVisible(css("#password")),
				chromedp.SendKeys(css("#username"), "alice"),
				chromedp.SendKeys(css("#password"), alicePassword),
				chromedp.Click(css("form[action='/login'] button[type=submit]")),
				chromedp.WaitVisible(css("#code")),
				chromedp.SendKeys(css("#code"), totpAt(t, totpSecret, h.clock.Now())),
				chromedp.Click(css("form[action='/login/mfa'] button[type=submit]")),
				chromedp.WaitVisible(css("#passkey-skip")),
				chromedp.Click(css("#passkey-skip")),
				chromedp.WaitVisible(css("form[action='/account/passkeys/finish'] #passkey-button")),
			)
			screenshot(t, c, "account-passkeys")
			c.Do(t, "adding a passkey",
				chromedp.SetValue(css("#passkey-name"), "Laptop"),
				chromedp.Click(css("form[action='/account/passkeys/finish'] #passkey-button")),
				chromedp.WaitVisible(css("#account-notice")),
			)
			if msg := issuertest.Get(t, c, chromedp.Text(css("#account-notice"))); !strings.Contains(msg, `"Laptop" is added`) {
				t.Fatalf("the page after adding a passkey says %q", msg)
			}
			pks, err := h.st.PasskeysByUser(ctx, h.alice.ID)
			if err != nil || len(pks) != 1 || pks[0].Name != "Laptop" || !pks[0].UserVerified {
				t.Fatalf("stored passkeys = %+v, %v", pks, err)
			}
			creds := authenticatorCredentials(t, c, authID)
			if len(creds) != 1 || !creds[0].IsResidentCredential || !bytes.Equal(creds[0].CredentialID, pks[0].CredentialID) ||
				string(creds[0].UserHandle) != h.alice.ID {
				t.Fatalf("authenticator holds %+v; want one resident credential for alice", creds)
			}
			if names := issuertest.Get(t, c, chromedp.Evaluate[[]string](
				`[...document.querySelectorAll("#passkey-list .client")].map(e => e.textContent)`)); !slices.Equal(names, []string{"Laptop"}) {
				t.Errorf("the page lists passkeys %q", names)
			}

			// An old sign-in: "confirm it's you" with the passkey.
			h.stale()
			c.Do(t, "confirming with the passkey",
				chromedp.Navigate(h.url+"/account"),
				chromedp.WaitVisible(css("form[action='/account/reauth/passkey'] #passkey-button")),
				chromedp.Click(css("form[action='/account/reauth/passkey'] #passkey-button")),
				chromedp.WaitVisible(css("form[action='/account/passkeys/remove']")),
			)
			used, err := h.st.PasskeyByCredentialID(ctx, pks[0].CredentialID)
			if err != nil || used.LastUsedAt.IsZero() {
				t.Fatalf("the passkey after confirming with it: %+v, %v", used, err)
			}
		})
	}
}
