package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store/accountlinks"
)

// TestMigration0016KeepsUsersAndSessions: a database at version 15 with a
// user, a connector identity and a browser session gains groups and
// account links; the user keeps its password and connector groups, its
// session goes on, and it may be put in groups and given a link.
func TestMigration0016KeepsUsersAndSessions(t *testing.T) {
	t.Parallel()
	before := []string{
		`INSERT INTO nsauth_users (id, username, password_hash, created_at, updated_at) VALUES ('u1', 'alice', '$argon2id$fake', 1000, 1000)`,
		`INSERT INTO nsauth_connectors (name, type, settings, created_at, updated_at) VALUES ('corp', 'oidc', '{}', 1000, 1000)`,
		`INSERT INTO nsauth_identities (connector, subject, user_id, group_names, created_at) VALUES ('corp', 'a', 'u1', '["corp:dev"]', 1000)`,
		`INSERT INTO nsauth_browser_sessions (id, token_hash, user_id, browser, auth_time, amr, created_at, last_seen_at, expires_at)
			VALUES ('s1', 'h', 'u1', 'b1', 1000, 'pwd', 1000, 1000, 9999999999999)`,
	}
	open := map[string]func(t *testing.T) (*Store, error){
		"sqlite": func(t *testing.T) (*Store, error) {
			dir := t.TempDir()
			sqliteAtVersion(t, dir, 15, before...)
			return OpenSQLite(context.Background(), dir, Options{})
		},
		"postgres": func(t *testing.T) (*Store, error) {
			return OpenPostgres(context.Background(), postgresAtVersion(t, 15, before...), Options{})
		},
	}
	for name, openAt15 := range open {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, err := openAt15(t)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			u, err := s.UserByUsername(ctx, "alice")
			if err != nil || !u.HasPassword() {
				t.Fatalf("alice after 0016: %+v, %v", u, err)
			}
			if groups, err := s.UserGroups(ctx, u.ID); err != nil || !slices.Equal(groups, []string{"corp:dev"}) {
				t.Fatalf("alice's groups after 0016: %q, %v", groups, err)
			}
			if groups, err := s.ListGroups(ctx); err != nil || len(groups) != 0 {
				t.Fatalf("groups after 0016: %+v, %v; want none", groups, err)
			}
			if _, err := s.CreateGroup(ctx, "admin", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := s.SetUserGroups(ctx, u.ID, []string{"admin"}, nil); err != nil {
				t.Fatal(err)
			}
			if groups, err := s.UserGroups(ctx, u.ID); err != nil || !slices.Equal(groups, []string{"admin", "corp:dev"}) {
				t.Fatalf("alice's groups: %q, %v", groups, err)
			}
			if _, _, err := s.CreateLink(ctx, u.ID, accountlinks.PurposeReset, "secret", time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if err := s.ReauthenticateSession(ctx, "s1", time.Now(), []string{"pwd", "otp"}); err != nil {
				t.Fatal(err)
			}
			if sess, err := s.SessionByID(ctx, "s1"); err != nil || !slices.Equal(sess.AMR, []string{"pwd", "otp"}) {
				t.Fatalf("the session after 0016: %+v, %v", sess, err)
			}
			// Deleting the user takes its memberships and link with it.
			if err := s.DeleteUser(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{`SELECT COUNT(*) FROM nsauth_group_members`, `SELECT COUNT(*) FROM nsauth_account_links`} {
				var n int
				if err := s.db.QueryRow(ctx, s.db, q).Scan(&n); err != nil || n != 0 {
					t.Errorf("%s = %d, %v after the user was deleted", q, n, err)
				}
			}
		})
	}
}
