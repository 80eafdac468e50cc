package cli_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for writing old data
	_ "modernc.org/sqlite"             // the "sqlite" driver

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// override is U+202E RIGHT-TO-LEFT OVERRIDE: "Lap\u202Epotkcab" shows in
// a terminal as "Lapbackstop".
const override = "\u202E"

func runAudit(env map[string]string, args ...string) usersResult {
	return runServerCommand(env, nil, append([]string{"audit"}, args...)...)
}

// writeOldData runs a statement (with ? placeholders) on the database env
// points at, as an nsauth from before the rule stored what it was given.
func writeOldData(t *testing.T, env map[string]string, query string, args ...any) {
	t.Helper()
	driver, dsn := "sqlite", filepath.Join(env["NSAUTH_DATA_DIR"], store.SQLiteFileName)
	if u, ok := env["NSAUTH_DATABASE_URL"]; ok {
		driver, dsn = "pgx", u
		for i := 1; strings.Contains(query, "?"); i++ {
			query = strings.Replace(query, "?", fmt.Sprintf("$%d", i), 1)
		}
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s changed %d rows, want 1", query, n)
	}
}

// TestNamesShowAsStored is the attack of a name that reads as another: a
// bidirectional override (U+202E) in a passkey name, a user's name, a
// federation policy or an audit record. Where a name is chosen it is
// refused, with the rule; where old data holds one, nsauth users list,
// users passkeys, federation list and audit (table and JSON) show it
// escaped, never raw.
func TestNamesShowAsStored(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		ctx := context.Background()
		if r := runUsers(env, strings.NewReader("a-password-123\n"), "add", "alice", "--name", "Alice"); r.code != 0 {
			t.Fatalf("add: %s", r.errOut)
		}
		u, err := st.UserByUsername(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}

		// Refused where chosen.
		if r := runUsers(env, strings.NewReader("a-password-123\n"), "add", "mallory", "--name", "Mallory"+override+"nimda"); r.code == 0 || !strings.Contains(r.errOut, "U+202E") {
			t.Errorf("users add with an override in the name: exit %d %q, want a refusal naming U+202E", r.code, r.errOut)
		}
		if err := st.AddPasskey(ctx, &store.Passkey{UserID: u.ID, Name: "Lap" + override + "potkcab", CredentialID: []byte{9}, PublicKey: []byte("k")}); err == nil || !strings.Contains(err.Error(), "U+202E") {
			t.Errorf("AddPasskey with an override in the name: %v, want a refusal naming U+202E", err)
		}
		if r := runClients(env, "add", "ci-deployer"); r.code != 0 {
			t.Fatalf("clients add: %s", r.errOut)
		}
		for name, args := range map[string][]string{
			"the policy name": {"add", "deploy" + override + "niam", "--subject", "repo:acme/app:ref:refs/heads/main"},
			"the subject":     {"add", "deploy", "--subject", "repo:acme/app:ref:refs/heads/" + override + "niam"},
		} {
			r := runFederation(env, append(args, "--issuer", "https://ci.example.test", "--audience", "nsauth", "--client", "ci-deployer")...)
			if r.code == 0 || !strings.Contains(r.errOut, "U+202E") || !strings.Contains(r.errOut, name) {
				t.Errorf("federation add with an override in %s: exit %d %q, want a refusal naming it and U+202E", name, r.code, r.errOut)
			}
		}

		// Old data: stored before the rule.
		if err := st.AddPasskey(ctx, &store.Passkey{UserID: u.ID, Name: "Laptop", CredentialID: []byte{1}, PublicKey: []byte("k1")}); err != nil {
			t.Fatal(err)
		}
		writeOldData(t, env, `UPDATE nsauth_passkeys SET name = ? WHERE name = ?`, "Lap"+override+"potkcab", "Laptop")
		writeOldData(t, env, `UPDATE nsauth_users SET name = ? WHERE username = ?`, "Alice"+override+"nimda", "alice")
		if r := runFederation(env, "add", "deploy", "--issuer", "https://ci.example.test", "--audience", "nsauth", "--subject", "repo:acme/app:ref:refs/heads/main", "--client", "ci-deployer"); r.code != 0 {
			t.Fatalf("federation add: %s", r.errOut)
		}
		writeOldData(t, env, `UPDATE nsauth_federation_policies SET subject = ? WHERE name = ?`, "repo:acme/app:ref:refs/heads/"+override+"niam", "deploy")
		rec, err := app.StoreAuditor(st, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := rec.Record(ctx, audit.Event{Type: audit.PasskeyRegistered, Subject: u.ID, Username: "alice", Target: "Lap" + override + "potkcab"}); err != nil {
			t.Fatal(err)
		}
		// A username with an override and an isolate, in an older record.
		if err := rec.Record(ctx, audit.Event{Type: audit.LoginFailed, Outcome: audit.Failure, Username: "admin" + override + "\u2066x", Reason: "bad_credentials"}); err != nil {
			t.Fatal(err)
		}

		for _, tc := range []struct {
			name    string
			run     func() usersResult
			escaped string
		}{
			{"users passkeys", func() usersResult { return runUsers(env, nil, "passkeys", "alice") }, "Lap<U+202E>potkcab"},
			{"users list", func() usersResult { return runUsers(env, nil, "list") }, "Alice<U+202E>nimda"},
			{"federation list", func() usersResult { return runFederation(env, "list") }, "refs/heads/<U+202E>niam"},
			{"audit", func() usersResult { return runAudit(env, "--since", "all") }, "Lap<U+202E>potkcab"},
			{"audit, the username of an older record", func() usersResult { return runAudit(env, "--since", "all") }, "admin<U+202E><U+2066>x"},
		} {
			r := tc.run()
			if r.code != 0 {
				t.Fatalf("%s: exit %d %s", tc.name, r.code, r.errOut)
			}
			if strings.Contains(r.out, override) || !strings.Contains(r.out, tc.escaped) {
				t.Errorf("%s shows the name raw or not at all, want %q:\n%s", tc.name, tc.escaped, r.out)
			}
		}
		js := runAudit(env, "--since", "all", "-o", "json")
		if js.code != 0 || strings.Contains(js.out, override) || !strings.Contains(js.out, `Lap\u202epotkcab`) {
			t.Fatalf("audit -o json: exit %d, want the override escaped as \\u202e:\n%s", js.code, js.out)
		}
		// The JSON still holds the value as stored.
		found := false
		for _, line := range strings.Split(strings.TrimSpace(js.out), "\n") {
			var e audit.Event
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("audit -o json line %q: %v", line, err)
			}
			found = found || e.Target == "Lap"+override+"potkcab"
		}
		if !found {
			t.Fatal("audit -o json lost the stored name")
		}
	})
}
