package cli_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestUsersPasskeysCommand: nsauth users passkeys lists and removes a
// user's passkeys by name or id, and says what is wrong otherwise. (The
// whole story, with passkeys registered in a browser, is the issuer's
// TestPasskeysInChromium.)
func TestUsersPasskeysCommand(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		if r := runUsers(env, strings.NewReader("a-password-123\n"), "add", "alice"); r.code != 0 {
			t.Fatalf("add: %s", r.errOut)
		}
		u, err := st.UserByUsername(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		none := runUsers(env, nil, "passkeys", "alice")
		if none.code != 0 || !strings.Contains(none.errOut, "has no passkeys") {
			t.Fatalf("no passkeys: exit %d %q", none.code, none.errOut)
		}
		for _, p := range []*store.Passkey{
			{UserID: u.ID, Name: "Laptop", CredentialID: []byte{1}, PublicKey: []byte("k1"), BackupEligible: true},
			{UserID: u.ID, Name: "Security key", CredentialID: []byte{2}, PublicKey: []byte("k2")},
		} {
			if err := st.AddPasskey(context.Background(), p); err != nil {
				t.Fatal(err)
			}
		}
		list := runUsers(env, nil, "passkeys", "alice")
		if list.code != 0 || !regexpLine(list.out, "Laptop", "synced", "never") || !regexpLine(list.out, "Security key", "device-bound") {
			t.Fatalf("list: exit %d\n%s%s", list.code, list.out, list.errOut)
		}
		// Two passkeys added in one millisecond list in either order: find
		// the security key by its name.
		pks, _ := st.PasskeysByUser(context.Background(), u.ID)
		i := slices.IndexFunc(pks, func(p store.Passkey) bool { return p.Name == "Security key" })
		if i < 0 {
			t.Fatalf("stored passkeys %+v", pks)
		}
		cases := []struct {
			name     string
			args     []string
			wantCode bool // exit 0
			wantErr  string
		}{
			{"unknown user", []string{"passkeys", "bob"}, false, "bob"},
			{"no name to remove", []string{"passkeys", "alice", "--remove", ""}, false, "--remove needs"},
			{"unknown passkey", []string{"passkeys", "alice", "--remove", "Phone"}, false, "no passkey named"},
			{"by name", []string{"passkeys", "alice", "--remove", "Laptop"}, true, `Removed the passkey "Laptop"`},
			{"by id", []string{"passkeys", "alice", "--remove", pks[i].ID}, true, `Removed the passkey "Security key"`},
		}
		for _, tc := range cases {
			r := runUsers(env, nil, tc.args...)
			if (r.code == 0) != tc.wantCode || !strings.Contains(r.errOut, tc.wantErr) {
				t.Errorf("%s: exit %d %q, want success %v and %q", tc.name, r.code, r.errOut, tc.wantCode, tc.wantErr)
			}
		}
		if n, _ := st.CountPasskeys(context.Background(), u.ID); n != 0 {
			t.Fatalf("%d passkeys left", n)
		}
	})
}
