package tokensource_test

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/pkg/tokensource"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// setupAccounts stores logins of alice (active) and bob for api, with
// expired access tokens, and returns the config dir and the store.
func setupAccounts(t *testing.T, f *fakeAuth, api string) (string, *tokenstore.Store) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cfg")
	store, err := tokenstore.New(tokenstore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	norm, err := tokenstore.NormalizeAPIURL(api)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "bob"} {
		at, rt := f.issue()
		e := &tokenstore.Entry{
			APIURL: norm, AccessToken: at, RefreshToken: rt, TokenType: "Bearer", Expiry: time.Now().Add(-time.Minute),
			Account: tokenstore.Account{ID: tokenstore.AccountID("https://idp.test", name), Name: name, Subject: name, Issuer: "https://idp.test"},
		}
		if err := store.Save(e); err != nil {
			t.Fatal(err)
		}
	}
	return dir, store
}

// TestConcurrentSourcesRefreshOncePerAccount: sources of two accounts of
// one server, many at once, make one refresh per account, and each gets
// its own account's token.
func TestConcurrentSourcesRefreshOncePerAccount(t *testing.T) {
	t.Parallel()
	f, api := newFakeAuth(t)
	f.delay = 50 * time.Millisecond
	dir, store := setupAccounts(t, f, api)
	norm := strings.TrimRight(api, "/")
	const perAccount = 6
	tokens := map[string][]string{"alice": make([]string, perAccount), "bob": make([]string, perAccount)}
	var wg sync.WaitGroup
	for name, got := range tokens {
		for i := range perAccount {
			wg.Go(func() {
				ts, err := tokensource.New(tokensource.Config{APIURL: api, ConfigDir: dir, Account: name})
				if err != nil {
					t.Error(err)
					return
				}
				tok, err := ts.Token()
				if err != nil {
					t.Error(err)
					return
				}
				if a := ts.Account(); a.Name != name {
					t.Errorf("source for %s: Account() = %+v", name, a)
				}
				got[i] = tok.AccessToken
			})
		}
	}
	wg.Wait()
	if n := f.refreshCalls.Load(); n != 2 {
		t.Errorf("RefreshCli calls = %d, want 2 (one per account)", n)
	}
	for name, got := range tokens {
		e, err := store.LoadAccount(norm, name)
		if err != nil {
			t.Fatal(err)
		}
		for i, tok := range got {
			if tok != e.AccessToken {
				t.Errorf("%s's source %d got %q; %s's stored token is %q", name, i, tok, name, e.AccessToken)
			}
		}
	}
	if tokens["alice"][0] == tokens["bob"][0] {
		t.Error("alice and bob got the same token")
	}
}

// TestSourceKeepsToItsAccount: a source without Config.Account uses the
// active account, and keeps to it after another becomes active.
func TestSourceKeepsToItsAccount(t *testing.T) {
	t.Parallel()
	f, api := newFakeAuth(t)
	dir, store := setupAccounts(t, f, api)
	norm := strings.TrimRight(api, "/")
	// Fifteen-minute tokens and a one-hour margin: every call refreshes,
	// reading the store each time.
	ts := newSource(t, tokensource.Config{APIURL: api, ConfigDir: dir, Margin: time.Hour})
	if _, err := ts.Token(); err != nil {
		t.Fatal(err)
	}
	if err := store.SetActive(norm, "bob"); err != nil {
		t.Fatal(err)
	}
	bobBefore, _ := store.LoadAccount(norm, "bob")
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := store.LoadAccount(norm, "alice")
	bob, _ := store.LoadAccount(norm, "bob")
	if ts.Account().Name != "alice" || tok.AccessToken != alice.AccessToken || bob.RefreshToken != bobBefore.RefreshToken {
		t.Errorf("after the switch the source served %s's token %q (alice's %q); bob's refresh token %q → %q", ts.Account().Name, tok.AccessToken, alice.AccessToken, bobBefore.RefreshToken, bob.RefreshToken)
	}
	// A new source follows the switch.
	tok, err = newSource(t, tokensource.Config{APIURL: api, ConfigDir: dir}).Token()
	if bob, _ = store.LoadAccount(norm, "bob"); err != nil || tok.AccessToken != bob.AccessToken {
		t.Errorf("a new source after the switch: %v, %v; want bob's token", tok, err)
	}
}

func TestUnknownAccount(t *testing.T) {
	t.Parallel()
	f, api := newFakeAuth(t)
	dir, _ := setupAccounts(t, f, api)
	_, err := newSource(t, tokensource.Config{APIURL: api, ConfigDir: dir, Account: "carol"}).Token()
	if !errors.Is(err, tokensource.ErrLoginRequired) || !errors.Is(err, tokenstore.ErrUnknownAccount) || !strings.Contains(err.Error(), "alice (active), bob") {
		t.Errorf("Token for an unknown account: %v; want ErrLoginRequired and ErrUnknownAccount, listing alice and bob", err)
	}
	if n := f.refreshCalls.Load(); n != 0 {
		t.Errorf("RefreshCli calls = %d, want 0", n)
	}
}
