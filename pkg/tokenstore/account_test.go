package tokenstore_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// unsignedJWT is a JWT with claims and no valid signature: the store reads
// identities without checking signatures.
func unsignedJWT(claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc(payload) + ".c2ln"
}

// userEntry is an entry for testURL of the user sub at iss, as a login
// stores it.
func userEntry(iss, sub, email, access string) *tokenstore.Entry {
	idt := unsignedJWT(map[string]any{"iss": iss, "sub": sub, "email": email})
	return &tokenstore.Entry{
		APIURL:       testURL,
		AccessToken:  access,
		RefreshToken: "RT-" + access,
		IDToken:      idt,
		TokenType:    "Bearer",
		Expiry:       time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		Account:      tokenstore.AccountFromTokens(idt, access),
	}
}

const testIssuer = "https://idp.example.test"

func TestAccountFromTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		idToken, access  string
		wantName         string
		wantSub, wantIss string
	}{
		{"email first", unsignedJWT(map[string]any{"iss": testIssuer, "sub": "u1", "email": "alice@example.test", "preferred_username": "alice"}), "", "alice@example.test", "u1", testIssuer},
		{"then preferred_username", unsignedJWT(map[string]any{"iss": testIssuer, "sub": "u1", "preferred_username": "alice"}), "", "alice", "u1", testIssuer},
		{"then subject", unsignedJWT(map[string]any{"iss": testIssuer, "sub": "u1"}), "", "u1", "u1", testIssuer},
		{"access token when no ID token", "", unsignedJWT(map[string]any{"iss": testIssuer, "sub": "u2"}), "u2", "u2", testIssuer},
		{"opaque tokens", "", "opaque-token", "unnamed", "", ""},
		{"control characters dropped", unsignedJWT(map[string]any{"iss": testIssuer, "sub": "u1", "email": "ev\x1b[2Jil@example.test"}), "", "ev[2Jil@example.test", "u1", testIssuer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := tokenstore.AccountFromTokens(tc.idToken, tc.access)
			if a.Name != tc.wantName || a.Subject != tc.wantSub || a.Issuer != tc.wantIss || a.ID != tokenstore.AccountID(tc.wantIss, tc.wantSub) {
				t.Errorf("AccountFromTokens = %+v; want name %q, subject %q, issuer %q", a, tc.wantName, tc.wantSub, tc.wantIss)
			}
		})
	}
	if tokenstore.AccountID(testIssuer, "u1") == tokenstore.AccountID("https://other.example.test", "u1") {
		t.Error("one subject at two issuers has one ID")
	}
}

// TestTwoAccountsOnOneServer: a second user's login keeps the first; one
// account is active, SetActive switches, and deleting the active one
// leaves the other stored and none active.
func TestTwoAccountsOnOneServer(t *testing.T) {
	t.Parallel()
	for _, storage := range []tokenstore.Storage{tokenstore.StorageFile, tokenstore.StorageKeyring} {
		t.Run(string(storage), func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t, newFakeKeyring())
			alice := userEntry(testIssuer, "u-alice", "alice@example.test", "AT-alice")
			bob := userEntry(testIssuer, "u-bob", "bob@example.test", "AT-bob")
			for _, e := range []*tokenstore.Entry{alice, bob} {
				e.Storage = storage
				if err := s.Save(e); err != nil {
					t.Fatal(err)
				}
			}
			wantActive := func(who *tokenstore.Entry) {
				t.Helper()
				got, err := s.Load(testURL)
				if err != nil || got.AccessToken != who.AccessToken || got.Account != who.Account {
					t.Fatalf("Load = %v, %v; want %s's entry", got, err, who.Account.Name)
				}
				entries, active, err := s.Accounts(testURL)
				if err != nil || active != who.Account.ID || len(entries) != 2 {
					t.Fatalf("Accounts = %d entries, active %q, %v; want 2, %q", len(entries), active, err, who.Account.ID)
				}
				if entries[0].Account.Name != "alice@example.test" || entries[1].Account.Name != "bob@example.test" || entries[0].AccessToken != "" && storage == tokenstore.StorageKeyring {
					t.Errorf("Accounts = %v; want alice then bob, as metadata", entries)
				}
			}
			wantActive(alice) // the first saved; saving bob did not switch

			for _, sel := range []string{"bob@example.test", bob.Account.ID} {
				got, err := s.LoadAccount(testURL, sel)
				if err != nil || got.AccessToken != "AT-bob" {
					t.Errorf("LoadAccount(%q) = %v, %v; want bob's", sel, got, err)
				}
			}
			if err := s.SetActive(testURL, "bob@example.test"); err != nil {
				t.Fatal(err)
			}
			wantActive(bob)

			// A refresh saves an entry of the active account without naming it.
			refreshed := &tokenstore.Entry{APIURL: testURL, Storage: storage, AccessToken: "AT-bob-2", RefreshToken: "RT-bob-2"}
			if err := s.Save(refreshed); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.LoadAccount(testURL, "bob@example.test"); got == nil || got.AccessToken != "AT-bob-2" || got.Account != bob.Account {
				t.Errorf("after saving the active account's entry: bob's = %v", got)
			}
			if got, _ := s.LoadAccount(testURL, "alice@example.test"); got == nil || got.AccessToken != "AT-alice" {
				t.Errorf("saving bob's tokens changed alice's: %v", got)
			}

			if existed, err := s.Delete(testURL); err != nil || !existed {
				t.Fatalf("Delete of the active account = %v, %v", existed, err)
			}
			_, err := s.Load(testURL)
			if !errors.Is(err, tokenstore.ErrNoActiveAccount) || !errors.Is(err, tokenstore.ErrNotFound) || !strings.Contains(err.Error(), "alice@example.test") {
				t.Errorf("Load with none active: %v; want ErrNoActiveAccount naming alice", err)
			}
			if got, err := s.LoadAccount(testURL, "alice@example.test"); err != nil || got.AccessToken != "AT-alice" {
				t.Errorf("alice after bob's deletion: %v, %v", got, err)
			}
			if existed, err := s.DeleteAccount(testURL, "alice@example.test"); err != nil || !existed {
				t.Fatalf("DeleteAccount(alice) = %v, %v", existed, err)
			}
			if entries, active, err := s.Accounts(testURL); err != nil || len(entries) != 0 || active != "" {
				t.Errorf("Accounts after deleting both = %v, %q, %v", entries, active, err)
			}
			// As on a server never logged in to, the next account is active.
			if err := s.Save(bob); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Load(testURL); err != nil || got.Account != bob.Account {
				t.Errorf("Load after a new first account = %v, %v", got, err)
			}
		})
	}
}

func TestAccountSelectionErrors(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, nil)
	// One email address at two identity providers: two accounts, one name.
	for _, e := range []*tokenstore.Entry{
		userEntry(testIssuer, "u1", "same@example.test", "AT-1"),
		userEntry("https://other-idp.example.test", "u1", "same@example.test", "AT-2"),
		userEntry(testIssuer, "u3", "carol@example.test", "AT-3"),
	} {
		if err := s.Save(e); err != nil {
			t.Fatal(err)
		}
	}
	id2 := tokenstore.AccountID("https://other-idp.example.test", "u1")
	tests := []struct {
		name    string
		account string
		wantIs  error
		wantMsg []string
	}{
		{"unknown name", "dave@example.test", tokenstore.ErrUnknownAccount, []string{`"dave@example.test" is not logged in to ` + testURL, "carol@example.test", id2, "(active)"}},
		{"prefix is not a name", "carol", tokenstore.ErrUnknownAccount, []string{"carol@example.test"}},
		{"ambiguous name", "same@example.test", tokenstore.ErrAmbiguousAccount, []string{"names 2 accounts", id2, "other-idp.example.test", tokenstore.AccountID(testIssuer, "u1")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for op, err := range map[string]error{
				"LoadAccount": func() error { _, err := s.LoadAccount(testURL, tc.account); return err }(),
				"SetActive":   s.SetActive(testURL, tc.account),
			} {
				if !errors.Is(err, tc.wantIs) {
					t.Errorf("%s: %v; want %v", op, err, tc.wantIs)
					continue
				}
				for _, m := range tc.wantMsg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("%s: %q does not say %q", op, err, m)
					}
				}
			}
		})
	}
	// The ID selects one of the two.
	if got, err := s.LoadAccount(testURL, id2); err != nil || got.AccessToken != "AT-2" {
		t.Errorf("LoadAccount by ID = %v, %v", got, err)
	}
	if existed, err := s.DeleteAccount(testURL, "dave@example.test"); err != nil || existed {
		t.Errorf("DeleteAccount of an unknown account = %v, %v; want false, nil", existed, err)
	}
}

// legacyStem is the file name stem a format-1 store gave testURL, computed
// here as that format defined it (host and port, then 6 bytes of the URL's
// SHA-256), independently of the package.
func legacyStem() string {
	sum := sha256.Sum256([]byte(testURL))
	return "127.0.0.1_8080-" + hex.EncodeToString(sum[:6])
}

// writeFormat1 writes a store as nsauth wrote it before accounts: one
// file per server; with keyring storage, the secrets under the API URL.
func writeFormat1(t *testing.T, dir string, kr *fakeKeyring, storage tokenstore.Storage, idToken string) string {
	t.Helper()
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	secretFields := `"access_token": "AT-legacy", "refresh_token": "RT-legacy", "id_token": "` + idToken + `",`
	if storage == tokenstore.StorageKeyring {
		kr.items["nsauth/"+testURL] = `{"access_token":"AT-legacy","refresh_token":"RT-legacy","id_token":"` + idToken + `"}`
		secretFields = ""
	}
	content := `{
  "version": 1,
  "api_url": "` + testURL + `",
  "storage": "` + string(storage) + `",
  ` + secretFields + `
  "token_type": "Bearer",
  "scope": "openid offline_access",
  "expiry": "2030-01-02T03:04:05Z",
  "updated_at": "2026-01-01T00:00:00Z"
}
`
	path := filepath.Join(tokens, legacyStem()+".json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFormat1StoreKeepsWorking: a store written before accounts reads as
// its server's one active account, and moves to the accounts layout on the
// next write without losing it, whether its secrets are in the file or in
// the keyring.
func TestFormat1StoreKeepsWorking(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	idt := unsignedJWT(map[string]any{"iss": testIssuer, "sub": "u-alice", "email": "alice@example.test"})
	aliceID := tokenstore.AccountID(testIssuer, "u-alice")
	writes := []struct {
		name  string
		write func(t *testing.T, s *tokenstore.Store) // the write that migrates
		// wantAT is alice's access token after it.
		wantAT string
	}{
		{"second account logs in", func(t *testing.T, s *tokenstore.Store) {
			if err := s.Save(userEntry(testIssuer, "u-bob", "bob@example.test", "AT-bob")); err != nil {
				t.Fatal(err)
			}
		}, "AT-legacy"},
		{"refresh of the one entry", func(t *testing.T, s *tokenstore.Store) {
			e, err := s.Load(testURL)
			if err != nil {
				t.Fatal(err)
			}
			e.AccessToken = "AT-refreshed"
			if err := s.Save(e); err != nil {
				t.Fatal(err)
			}
		}, "AT-refreshed"},
		{"switch to the one account", func(t *testing.T, s *tokenstore.Store) {
			if err := s.SetActive(testURL, "alice@example.test"); err != nil {
				t.Fatal(err)
			}
		}, "AT-legacy"},
	}
	for _, storage := range []tokenstore.Storage{tokenstore.StorageFile, tokenstore.StorageKeyring} {
		for _, w := range writes {
			t.Run(string(storage)+"/"+w.name, func(t *testing.T) {
				t.Parallel()
				kr := newFakeKeyring()
				s, dir := newStore(t, kr)
				legacy := writeFormat1(t, dir, kr, storage, idt)

				// Read as it is.
				e, err := s.Load(testURL)
				if err != nil || e.AccessToken != "AT-legacy" || e.RefreshToken != "RT-legacy" || e.Account.ID != aliceID || e.Account.Name != "alice@example.test" {
					t.Fatalf("Load of a format-1 store = %v (account %+v), %v", e, e.Account, err)
				}
				entries, active, err := s.Accounts(testURL)
				if err != nil || len(entries) != 1 || active != aliceID || entries[0].Account.Name != "alice@example.test" {
					t.Fatalf("Accounts of a format-1 store = %v, %q, %v", entries, active, err)
				}
				if e, err := s.LoadAccount(testURL, "alice@example.test"); err != nil || e.AccessToken != "AT-legacy" {
					t.Fatalf("LoadAccount by name of a format-1 store = %v, %v", e, err)
				}
				if s.Path(testURL) != legacy {
					t.Errorf("Path = %s, want the format-1 file %s", s.Path(testURL), legacy)
				}

				w.write(t, s)

				if _, err := os.Lstat(legacy); !os.IsNotExist(err) {
					t.Errorf("the format-1 file is still there after a write (%v)", err)
				}
				if _, err := kr.Get("nsauth", testURL); !errors.Is(err, tokenstore.ErrNotFound) {
					t.Errorf("the format-1 keyring item is still there after a write (%v)", err)
				}
				e, err = s.LoadAccount(testURL, aliceID)
				if err != nil || e.AccessToken != w.wantAT || e.RefreshToken != "RT-legacy" || e.Storage != storage || e.Account.Name != "alice@example.test" {
					t.Fatalf("alice after the move = %v, %v; want access token %s, storage %s", e, err, w.wantAT, storage)
				}
				if e, err := s.Load(testURL); err != nil || e.Account.ID != aliceID {
					t.Errorf("the active account after the move = %v, %v; want alice", e, err)
				}
				if s.Path(testURL) != s.AccountPath(testURL, aliceID) || mode(t, s.Path(testURL)) != 0o600 {
					t.Errorf("Path = %s, want alice's file with mode 0600", s.Path(testURL))
				}
				if storage == tokenstore.StorageKeyring {
					if _, err := kr.Get("nsauth", testURL+"#"+aliceID); err != nil {
						t.Errorf("alice's secrets are not in her account's keyring item: %v", err)
					}
					raw, _ := os.ReadFile(s.AccountPath(testURL, aliceID))
					if strings.Contains(string(raw), "legacy") {
						t.Errorf("a keyring account's file holds a token:\n%s", raw)
					}
				}
			})
		}
	}
}

// TestFormat1LeftoverIsNotRead: a format-1 file beside the accounts layout
// (a move interrupted after the index was written) is never read again,
// since the account's file may hold newer tokens, and the next write
// removes it.
func TestFormat1LeftoverIsNotRead(t *testing.T) {
	t.Parallel()
	kr := newFakeKeyring()
	s, dir := newStore(t, kr)
	alice := userEntry(testIssuer, "u-alice", "alice@example.test", "AT-new")
	if err := s.Save(alice); err != nil {
		t.Fatal(err)
	}
	legacy := writeFormat1(t, dir, kr, tokenstore.StorageFile, alice.IDToken)
	if e, err := s.Load(testURL); err != nil || e.AccessToken != "AT-new" {
		t.Fatalf("Load beside a leftover = %v, %v; want the account's tokens", e, err)
	}
	if err := s.Save(userEntry(testIssuer, "u-bob", "bob@example.test", "AT-bob")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(legacy); !os.IsNotExist(err) {
		t.Errorf("leftover format-1 file survived a write (%v)", err)
	}
	if e, err := s.Load(testURL); err != nil || e.AccessToken != "AT-new" {
		t.Errorf("Load after the write = %v, %v; want alice's newer tokens", e, err)
	}
}

// TestFormat1RefusedSessionIsNotAnAccount: a format-1 entry of a session
// the server refused holds no tokens, so nothing says whose it was; the
// login that replaces it does not leave it behind as an unnamed account.
func TestFormat1RefusedSessionIsNotAnAccount(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t, nil)
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	refused := `{"version": 1, "api_url": "` + testURL + `", "storage": "file", "token_type": "Bearer", "refused_at": "2026-01-01T00:00:00Z"}`
	if err := os.WriteFile(filepath.Join(tokens, legacyStem()+".json"), []byte(refused), 0o600); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Load(testURL); err != nil || !e.Refused() {
		t.Fatalf("Load of a refused format-1 entry = %v, %v; want it, refused", e, err)
	}
	alice := userEntry(testIssuer, "u-alice", "alice@example.test", "AT-alice")
	if err := s.Save(alice); err != nil {
		t.Fatal(err)
	}
	entries, active, err := s.Accounts(testURL)
	if err != nil || len(entries) != 1 || active != alice.Account.ID {
		t.Errorf("Accounts after a login over a refused format-1 entry = %v, %q, %v; want alice alone", entries, active, err)
	}
}

func TestAccountFilesAreChecked(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, s *tokenstore.Store, bobID string)
		load   func(s *tokenstore.Store) error
		want   string
	}{
		{"group-accessible server directory", func(t *testing.T, s *tokenstore.Store, _ string) {
			chmod(t, filepath.Dir(s.Path(testURL)), 0o750)
		}, func(s *tokenstore.Store) error { _, err := s.Load(testURL); return err }, "accessible by other users (mode 0750)"},
		{"world-readable index", func(t *testing.T, s *tokenstore.Store, _ string) {
			chmod(t, filepath.Join(filepath.Dir(s.Path(testURL)), "index.json"), 0o644)
		}, func(s *tokenstore.Store) error { _, err := s.Load(testURL); return err }, "accessible by other users (mode 0644)"},
		{"another account's world-readable file, when listing", func(t *testing.T, s *tokenstore.Store, bobID string) {
			chmod(t, s.AccountPath(testURL, bobID), 0o644)
		}, func(s *tokenstore.Store) error { _, _, err := s.Accounts(testURL); return err }, "accessible by other users (mode 0644)"},
		{"an account's file copied to another's name", func(t *testing.T, s *tokenstore.Store, bobID string) {
			data, err := os.ReadFile(s.Path(testURL))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.AccountPath(testURL, bobID), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}, func(s *tokenstore.Store) error { _, err := s.LoadAccount(testURL, "bob@example.test"); return err }, "holds account"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t, nil)
			bob := userEntry(testIssuer, "u-bob", "bob@example.test", "AT-bob")
			for _, e := range []*tokenstore.Entry{userEntry(testIssuer, "u-alice", "alice@example.test", "AT-alice"), bob} {
				if err := s.Save(e); err != nil {
					t.Fatal(err)
				}
			}
			tc.tamper(t, s, bob.Account.ID)
			err := tc.load(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "AT-") {
				t.Errorf("error leaks a token: %q", err)
			}
		})
	}
}

func TestSaveRefusesBadAccountIDs(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, nil)
	for _, id := range []string{"../escape", "UPPER", "a/b", strings.Repeat("a", 65)} {
		e := sampleEntry()
		e.Account = tokenstore.Account{ID: id, Name: "x"}
		if err := s.Save(e); err == nil {
			t.Errorf("Save with account ID %q succeeded", id)
		}
	}
}
