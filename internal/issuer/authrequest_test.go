package issuer_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// sealingKey is the provider's auth request key, read from its store as
// anyone holding the database and the secret key could.
func (h *harness) sealingKey() []byte {
	h.t.Helper()
	v, err := h.st.Secret(ctx, issuer.AuthRequestKeyName)
	if err != nil {
		h.t.Fatal(err)
	}
	key, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		h.t.Fatal(err)
	}
	return key
}

func gcm(t *testing.T, key []byte) cipher.AEAD {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return aead
}

// reseal opens blob with key and the auth request purpose, and seals the
// same plaintext again under newKey with purpose as additional data.
func reseal(t *testing.T, key []byte, blob string, newKey []byte, purpose string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(blob)
	if err != nil {
		t.Fatal(err)
	}
	aead := gcm(t, key)
	ns := aead.NonceSize()
	plain, err := aead.Open(nil, raw[:ns], raw[ns:], []byte(issuer.AuthRequestPurpose))
	if err != nil {
		t.Fatalf("the login page's authRequestID does not open as a sealed auth request: %v", err)
	}
	out := make([]byte, ns)
	_, _ = rand.Read(out)
	return base64.RawURLEncoding.EncodeToString(gcm(t, newKey).Seal(out, out, plain, []byte(purpose)))
}

// flip changes one character in the middle of a base64url string.
func flip(s string) string {
	b := []byte(s)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// TestSealedAuthRequestRefused presents the login page with auth requests
// the provider did not seal, or sealed long ago: each is refused, on the
// page and on the form post, with no more detail than expired or
// incomplete.
func TestSealedAuthRequestRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	b := issuertest.NewBrowser(t)
	page := b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
	blob := page.Form.Get("authRequestID")
	if len(blob) == 0 || len(blob) > 1024 {
		t.Fatalf("authRequestID of an ordinary request is %d characters", len(blob))
	}
	key := h.sealingKey()
	otherKey := make([]byte, 32)
	_, _ = rand.Read(otherKey)

	try := func(t *testing.T, id, want string) {
		t.Helper()
		resp, body := h.get("/login?"+url.Values{"authRequestID": {id}}.Encode(), nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), want) {
			t.Fatalf("GET /login: HTTP %d, want 400 saying %q:\n%s", resp.StatusCode, want, body)
		}
		forged := *page
		forged.Form = maps.Clone(page.Form)
		forged.Form.Set("authRequestID", id)
		res := b.Submit(t, &forged, "alice", alicePassword)
		if res.Response.StatusCode != http.StatusBadRequest || !strings.Contains(res.Body, want) {
			t.Fatalf("POST /login: HTTP %d, want 400 saying %q:\n%s", res.Response.StatusCode, want, res.Body)
		}
	}
	for _, tc := range []struct {
		name string
		id   string
	}{
		{"sealed for another purpose under the same key", reseal(t, key, blob, key, "nsauth something else v1")},
		{"sealed under another key", reseal(t, key, blob, otherKey, issuer.AuthRequestPurpose)},
		{"one character changed", flip(blob)},
		{"truncated", blob[:len(blob)-4]},
		{"extended", blob + "AAAA"},
		{"only a nonce", blob[:16]},
		{"not base64url", strings.Repeat("*", 40)},
	} {
		t.Run(tc.name, func(t *testing.T) { try(t, tc.id, "incomplete") })
	}

	// The forgery is faithful: the same plaintext sealed with the right key
	// and purpose logs in. The refusals above are the purpose's, the key's
	// and the tampering's doing.
	page.Form.Set("authRequestID", reseal(t, key, blob, key, issuer.AuthRequestPurpose))
	if _, err := issuertest.RedirectOf(b.Submit(t, page, "alice", alicePassword)); err != nil {
		t.Fatalf("a faithful re-seal was refused: %v", err)
	}

	t.Run("expired", func(t *testing.T) {
		fresh := b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
		h.clock.Advance(issuer.AuthRequestTTL)
		try(t, fresh.Form.Get("authRequestID"), "expired")
	})
}

// loginPost is a login form ready to post from another goroutine.
type loginPost struct {
	form     url.Values
	cookies  []*http.Cookie
	verifier string
}

func newLoginPost(t *testing.T, h *harness) loginPost {
	t.Helper()
	b := issuertest.NewBrowser(t)
	verifier := oauth2.GenerateVerifier()
	page := b.Open(t, h.authorizeURL(verifier, nil))
	if page.Response.StatusCode != http.StatusOK {
		t.Fatalf("authorize: HTTP %d", page.Response.StatusCode)
	}
	form := maps.Clone(page.Form)
	form.Set("username", "alice")
	form.Set("password", alicePassword)
	return loginPost{form: form, cookies: b.Client.Jar.Cookies(page.URL), verifier: verifier}
}

// send posts the form to base's login page and returns the status, the
// redirect's code (if any) and the body.
func (p loginPost) send(base string) (int, string, string, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(p.form.Encode()))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range p.cookies {
		req.AddCookie(c)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code := ""
	if loc != nil {
		code = loc.Query().Get("code")
	}
	return resp.StatusCode, code, string(body), nil
}

// TestLoginCompletesOnce posts one login form twice at the same moment,
// to one provider and to two replicas on one database: exactly one post
// gets a code. Once the code is redeemed (and the stored request deleted),
// the form is still refused.
func TestLoginCompletesOnce(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		other := "http://" + h.replica(nil)
		for _, tc := range []struct {
			name    string
			targets [2]string
		}{
			{"two posts to one provider", [2]string{h.url, h.url}},
			{"one post to each replica", [2]string{h.url, other}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := newLoginPost(t, h)
				type result struct {
					status     int
					code, body string
					err        error
				}
				results := make([]result, 2)
				var wg sync.WaitGroup
				for i, target := range tc.targets {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r := &results[i]
						r.status, r.code, r.body, r.err = p.send(target)
					}()
				}
				wg.Wait()
				var code string
				for _, r := range results {
					switch {
					case r.err != nil:
						t.Fatal(r.err)
					case r.status == http.StatusSeeOther && r.code != "":
						if code != "" {
							t.Fatal("both posts got a code")
						}
						code = r.code
					case r.status == http.StatusBadRequest && strings.Contains(r.body, "expired or was already used"):
					default:
						t.Fatalf("HTTP %d, want a redirect with a code or the expired page:\n%s", r.status, r.body)
					}
				}
				if code == "" {
					t.Fatal("neither post got a code")
				}
				if tr := h.exchange(code, p.verifier); tr.status != http.StatusOK {
					t.Fatalf("exchanging the winner's code: HTTP %d %s", tr.status, tr.Error)
				}
				if status, _, body, err := p.send(tc.targets[1]); err != nil || status != http.StatusBadRequest {
					t.Fatalf("a third post: HTTP %d, %v:\n%s", status, err, body)
				}
			})
		}

		// A redeemed code deletes its stored request; the form still cannot
		// complete a second time.
		verifier := oauth2.GenerateVerifier()
		browser := issuertest.NewBrowser(t)
		page := browser.Open(t, h.authorizeURL(verifier, nil))
		loc, err := issuertest.RedirectOf(browser.Submit(t, page, "alice", alicePassword))
		if err != nil {
			t.Fatal(err)
		}
		if tr := h.exchange(loc.Query().Get("code"), verifier); tr.status != http.StatusOK {
			t.Fatalf("exchange: HTTP %d %s", tr.status, tr.Error)
		}
		again := browser.Submit(t, page, "alice", alicePassword)
		if again.Response.StatusCode != http.StatusBadRequest || !strings.Contains(again.Body, "expired or was already used") {
			t.Fatalf("after the code was redeemed: HTTP %d\n%s", again.Response.StatusCode, again.Body)
		}
		// Within the request's lifetime, still refused.
		h.clock.Advance(time.Minute)
		if _, err := issuertest.RedirectOf(browser.Submit(t, page, "alice", alicePassword)); err == nil {
			t.Fatal("a used request completed again")
		}
	})
}
