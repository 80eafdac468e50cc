package cli_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// The fake provider's default user, and a second person.
const (
	aliceEmail = "user@example.test" // Test User, subject user-123
	bobEmail   = "bob@example.test"
)

// loginAs logs in as subject, whom the provider approves from now on.
func (e *env) loginAs(subject, name, email string) result {
	e.t.Helper()
	e.fake.SetUser(subject, name, email)
	return e.login()
}

// tokenSubject runs `nsauth token` with args and returns the subject the
// server finds in the printed token.
func (e *env) tokenSubject(args ...string) string {
	e.t.Helper()
	r := e.run(context.Background(), nil, append([]string{"token"}, args...)...)
	if r.code != 0 {
		e.t.Fatalf("token %v: exit %d\n%s", args, r.code, r.errOut)
	}
	resp, err := e.checkToken(strings.TrimSpace(r.out))
	if err != nil {
		e.t.Fatalf("CheckToken of the token printed by token %v: %v", args, err)
	}
	return resp.GetSubject()
}

// accountsJSON is `nsauth accounts -o json`.
type accountsJSON struct {
	APIURL   string `json:"api_url"`
	Accounts []struct {
		Name    string `json:"name"`
		ID      string `json:"id"`
		Subject string `json:"subject"`
		Active  bool   `json:"active"`
	} `json:"accounts"`
}

func (e *env) accounts() accountsJSON {
	e.t.Helper()
	r := e.run(context.Background(), nil, "accounts", "-o", "json")
	var got accountsJSON
	if err := json.Unmarshal([]byte(r.out), &got); r.code != 0 || err != nil {
		e.t.Fatalf("accounts -o json: exit %d, %v\n%s%s", r.code, err, r.out, r.errOut)
	}
	return got
}

// active returns the names of the accounts, the active one starred.
func (a accountsJSON) names() []string {
	var names []string
	for _, acc := range a.Accounts {
		n := acc.Name
		if acc.Active {
			n = "*" + n
		}
		names = append(names, n)
	}
	return names
}

// TestTwoAccountsOnOneServer: a second user's login keeps the first;
// switch, per-account token, whoami and logout; logging out of the active
// account leaves the other, and none active.
func TestTwoAccountsOnOneServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	switchBack := "run nsauth switch --api-url " + e.apiURL + " "

	r := e.login()
	mustNotContain(t, "first login", r.errOut, "accounts on this server")
	r = e.loginAs("user-bob", "Bob", bobEmail)
	mustContain(t, "second login", r.errOut, "Logged in as Bob <bob@example.test> until ", "2 accounts on this server; "+switchBack+aliceEmail+" to go back")
	if got := strings.Join(e.accounts().names(), " "); got != "*"+bobEmail+" "+aliceEmail {
		t.Errorf("accounts after the second login: %s; want bob (active) and alice", got)
	}
	r = e.run(ctx, nil, "accounts")
	mustContain(t, "accounts", columns(r.out), "ACCOUNT ID STORAGE SESSION", "* bob@example.test "+tokenstore.AccountID(e.fake.Issuer, "user-bob")+" file access token expires ", " user@example.test ")

	tests := []struct {
		name string
		args []string
		want string // subject
	}{
		{"active account", nil, "user-bob"},
		{"other account by name", []string{"--account", aliceEmail}, "user-123"},
		{"other account by ID", []string{"--account", tokenstore.AccountID(e.fake.Issuer, "user-123")}, "user-123"},
		{"active account by name", []string{"--account", bobEmail}, "user-bob"},
	}
	for _, tc := range tests {
		if got := e.tokenSubject(tc.args...); got != tc.want {
			t.Errorf("token %s: subject %q, want %q", tc.name, got, tc.want)
		}
	}
	r = e.run(ctx, nil, "whoami", "--account", aliceEmail, "-o", "json")
	var who struct{ Account, Subject, Email string }
	if err := json.Unmarshal([]byte(r.out), &who); err != nil || who.Account != aliceEmail || who.Subject != "user-123" || who.Email != aliceEmail {
		t.Errorf("whoami --account %s: %+v (%v)\n%s", aliceEmail, who, err, r.errOut)
	}
	r = e.run(ctx, nil, "whoami")
	mustContain(t, "whoami", columns(r.out), "Account: bob@example.test", "Subject: user-bob", "Name: Bob")
	r = e.run(ctx, nil, "status")
	mustContain(t, "status", columns(r.out), "Account: bob@example.test (active; 2 accounts on this server", "Logged in: yes")

	// switch
	r = e.run(ctx, nil, "switch", aliceEmail)
	if r.code != 0 || !strings.Contains(r.errOut, "Switched to "+aliceEmail+" on "+e.apiURL) {
		t.Errorf("switch: exit %d\n%s", r.code, r.errOut)
	}
	if got := e.tokenSubject(); got != "user-123" {
		t.Errorf("token after switch: subject %q, want user-123", got)
	}
	if r := e.run(ctx, nil, "switch", aliceEmail); r.code != 0 || !strings.Contains(r.errOut, "already the active account") {
		t.Errorf("switch to the active account: exit %d\n%s", r.code, r.errOut)
	}

	// A login as a stored account replaces its tokens and makes it active.
	before, err := e.store().LoadAccount(e.normalizedURL(), bobEmail)
	if err != nil {
		t.Fatal(err)
	}
	r = e.login() // still bob at the provider
	mustContain(t, "bob's second login", r.errOut, "2 accounts on this server; "+switchBack+aliceEmail+" to go back; this one's tokens were replaced")
	after, err := e.store().LoadAccount(e.normalizedURL(), bobEmail)
	if err != nil || after.RefreshToken == before.RefreshToken || len(e.accounts().Accounts) != 2 || e.accounts().names()[0] != "*"+bobEmail {
		t.Errorf("bob's second login: tokens replaced %v, accounts %v (%v)", after.RefreshToken != before.RefreshToken, e.accounts().names(), err)
	}

	// Per-account logout leaves the other account, and the active one.
	revokes := e.calls(procRevoke)
	r = e.run(ctx, nil, "logout", "--account", aliceEmail)
	mustContain(t, "logout --account", r.errOut, "Revoked the refresh token", "Deleted the stored tokens for "+e.apiURL+" ("+aliceEmail+").")
	if r.code != 0 || e.calls(procRevoke) != revokes+1 {
		t.Errorf("logout --account: exit %d, %d revocations\n%s", r.code, e.calls(procRevoke)-revokes, r.errOut)
	}
	if got := strings.Join(e.accounts().names(), " "); got != "*"+bobEmail {
		t.Errorf("accounts after logging out of alice: %s", got)
	}
	if got := e.tokenSubject(); got != "user-bob" {
		t.Errorf("token after logging out of alice: subject %q", got)
	}

	// Logging out of the active account makes none active.
	e.loginAs("user-123", "Test User", aliceEmail)
	r = e.run(ctx, nil, "logout")
	mustContain(t, "logout of the active account", r.errOut, "Deleted the stored tokens for "+e.apiURL+" ("+aliceEmail+").",
		"Still logged in as "+bobEmail+", which is not active; "+switchBack+bobEmail+" to use it.")
	calls := e.totalCalls()
	r = e.run(ctx, nil, "token")
	if r.code != 1 || r.out != "" {
		t.Errorf("token with no active account: exit %d, stdout %q", r.code, r.out)
	}
	mustContain(t, "token with no active account", r.errOut, "no account is active on "+e.apiURL+" (its accounts: "+bobEmail+"); "+switchBack+"ACCOUNT, or run nsauth login --api-url "+e.apiURL)
	if n := e.totalCalls() - calls; n != 0 {
		t.Errorf("token with no active account asked the server %d times", n)
	}
	r = e.run(ctx, nil, "status")
	mustContain(t, "status with no active account", columns(r.out), "Logged in: no active account (1 account on this server; "+switchBack+"ACCOUNT)")
	r = e.run(ctx, nil, "accounts")
	mustContain(t, "accounts with no active account", r.errOut, "No account is active; "+switchBack+"ACCOUNT.")
	if r := e.run(ctx, nil, "logout"); r.code != 0 || !strings.Contains(r.errOut, "No account is active on "+e.apiURL+"; nothing to do") {
		t.Errorf("logout with no active account: exit %d\n%s", r.code, r.errOut)
	}

	// --all logs out of the rest.
	e.loginAs("user-123", "Test User", aliceEmail)
	r = e.run(ctx, nil, "logout", "--all")
	if r.code != 0 || strings.Count(r.errOut, "Deleted the stored tokens") != 2 || strings.Count(r.errOut, "Revoked the refresh token") != 2 {
		t.Errorf("logout --all: exit %d\n%s", r.code, r.errOut)
	}
	if got := e.accounts().Accounts; len(got) != 0 {
		t.Errorf("accounts after logout --all: %v", got)
	}
	if r := e.run(ctx, nil, "accounts"); r.code != 0 || r.out != "" || !strings.Contains(r.errOut, "Not logged in to "+e.apiURL) {
		t.Errorf("accounts with none: exit %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
}

// TestAccountSelectionErrors: an --account (or switch's argument) that
// selects no account, or several, is a usage error that lists them.
func TestAccountSelectionErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	// Another person with the same email address: one name, two accounts.
	e.loginAs("user-456", "Other User", aliceEmail)
	e.loginAs("user-bob", "Bob", bobEmail)
	id123 := tokenstore.AccountID(e.fake.Issuer, "user-123")
	id456 := tokenstore.AccountID(e.fake.Issuer, "user-456")
	unknown := []string{`unknown account: "carol@example.test" is not logged in to ` + e.apiURL + "; its accounts: " + bobEmail + " (active), "}
	ambiguous := []string{`"` + aliceEmail + `" names 2 accounts on ` + e.apiURL + "; give one's ID instead: ", id123 + " (subject user-123 at " + e.fake.Issuer + ")", id456}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"token", "--account", "carol@example.test"}, unknown},
		{[]string{"whoami", "--account", "carol@example.test"}, unknown},
		{[]string{"logout", "--account", "carol@example.test"}, unknown},
		{[]string{"switch", "carol@example.test"}, unknown},
		{[]string{"token", "--account", "bob"}, []string{`"bob" is not logged in`}}, // names are exact, not prefixes
		{[]string{"token", "--account", aliceEmail}, ambiguous},
		{[]string{"whoami", "--account", aliceEmail}, ambiguous},
		{[]string{"logout", "--account", aliceEmail}, ambiguous},
		{[]string{"switch", aliceEmail}, ambiguous},
	}
	calls := e.totalCalls()
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := e.run(context.Background(), nil, tc.args...)
			if r.code != 2 || r.out != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", r.code, r.out)
			}
			mustContain(t, "stderr", r.errOut, tc.want...)
		})
	}
	if n := e.totalCalls() - calls; n != 0 {
		t.Errorf("commands with a bad --account asked the server %d times", n)
	}
	if got := e.tokenSubject("--account", id456); got != "user-456" {
		t.Errorf("token --account ID: subject %q", got)
	}
	// Completion offers names, and IDs where names clash.
	for _, args := range [][]string{{"__complete", "switch", ""}, {"__complete", "token", "--account", ""}, {"__complete", "logout", "--account", ""}} {
		r := e.run(context.Background(), nil, args...)
		if got := strings.Fields(r.out); r.code != 0 || len(got) != 4 || got[0] != bobEmail || !slices.Contains(got, id123) || !slices.Contains(got, id456) || got[3] != ":4" {
			t.Errorf("%v: exit %d, %q; want bob's name, the two IDs and :4 (no files)", args, r.code, r.out)
		}
	}
	// Where the names clash, the hints give the ID.
	r := e.run(context.Background(), nil, "switch", id456)
	mustContain(t, "switch by ID", r.errOut, "Switched to "+id456)
	r = e.loginAs("user-bob", "Bob", bobEmail)
	mustContain(t, "login", r.errOut, "3 accounts on this server; run nsauth switch --api-url "+e.apiURL+" "+id456+" to go back")
}

// TestSingleAccountStoreKeepsWorking: a store written before accounts (one
// file per server, written here by hand in that format) is the server's
// one account, active; the next login adds a second account without losing
// it, and moves it to the new layout.
func TestSingleAccountStoreKeepsWorking(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	e.login()
	ent := e.entry()
	// Replace the store by the single file an older nsauth wrote.
	if err := os.RemoveAll(e.configDir); err != nil {
		t.Fatal(err)
	}
	legacy := writeSingleAccountStore(t, e, ent)

	if got := e.tokenSubject(); got != "user-123" {
		t.Errorf("token from a single-account store: subject %q", got)
	}
	if got := strings.Join(e.accounts().names(), " "); got != "*"+aliceEmail {
		t.Errorf("accounts of a single-account store: %s", got)
	}
	r := e.run(ctx, nil, "status")
	mustContain(t, "status", columns(r.out), "Logged in: yes (tokens in "+legacy+")", "Account: "+aliceEmail)
	if got := e.tokenSubject("--account", aliceEmail); got != "user-123" {
		t.Errorf("token --account from a single-account store: subject %q", got)
	}
	if _, err := os.Lstat(legacy); err != nil {
		t.Fatalf("reading moved the single-account file: %v", err)
	}

	r = e.loginAs("user-bob", "Bob", bobEmail)
	mustContain(t, "login as bob", r.errOut, "2 accounts on this server")
	if _, err := os.Lstat(legacy); !os.IsNotExist(err) {
		t.Errorf("the single-account file is still there after a login (%v)", err)
	}
	if got := e.tokenSubject("--account", aliceEmail); got != "user-123" {
		t.Errorf("alice after the move: subject %q", got)
	}
	moved, err := e.store().LoadAccount(e.normalizedURL(), aliceEmail)
	if err != nil || moved.RefreshToken != ent.RefreshToken {
		t.Errorf("alice's refresh token after the move: changed %v (%v)", moved.RefreshToken != ent.RefreshToken, err)
	}
}

// writeSingleAccountStore writes ent as nsauth wrote a server's tokens
// before accounts, independently of pkg/tokenstore: the file is named by
// the host and port and 6 bytes of the API URL's SHA-256, and holds the
// format-1 JSON. It returns the file's path.
func writeSingleAccountStore(t *testing.T, e *env, ent *tokenstore.Entry) string {
	t.Helper()
	u, err := url.Parse(e.normalizedURL())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(e.normalizedURL()))
	stem := strings.NewReplacer(":", "_").Replace(u.Host) + "-" + hex.EncodeToString(sum[:6])
	dir := filepath.Join(e.configDir, "tokens")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(map[string]any{
		"version":       1,
		"api_url":       e.normalizedURL(),
		"storage":       "file",
		"access_token":  ent.AccessToken,
		"refresh_token": ent.RefreshToken,
		"id_token":      ent.IDToken,
		"token_type":    "Bearer",
		"scope":         ent.Scope,
		"expiry":        ent.Expiry.Format(time.RFC3339),
		"updated_at":    time.Now().UTC().Format(time.RFC3339),
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, stem+".json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
