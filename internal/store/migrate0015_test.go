package store

import (
	"context"
	"testing"

	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store/connectors"
)

// TestMigration0015KeepsUsers: a database at version 14 with users gains
// the connectors' tables; its users keep their passwords and may be bound
// to upstream identities.
func TestMigration0015KeepsUsers(t *testing.T) {
	t.Parallel()
	before := []string{
		`INSERT INTO nsauth_users (id, username, password_hash, created_at, updated_at) VALUES ('u1', 'alice', '$argon2id$fake', 1000, 1000)`,
	}
	key, err := seal.ParseKey(seal.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	ring := seal.NewKeyring(key)
	open := map[string]func(t *testing.T) (*Store, error){
		"sqlite": func(t *testing.T) (*Store, error) {
			dir := t.TempDir()
			sqliteAtVersion(t, dir, 14, before...)
			return OpenSQLite(context.Background(), dir, Options{Keyring: ring})
		},
		"postgres": func(t *testing.T) (*Store, error) {
			return OpenPostgres(context.Background(), postgresAtVersion(t, 14, before...), Options{Keyring: ring})
		},
	}
	for name, openAt14 := range open {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, err := openAt14(t)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			u, err := s.UserByUsername(ctx, "alice")
			if err != nil || !u.HasPassword() {
				t.Fatalf("alice after 0015: %+v, %v", u, err)
			}
			if err := s.CreateConnector(ctx, &connectors.Connector{Name: "corp", Type: connectors.TypeOIDC, Settings: []byte(`{}`), Secret: "s"}); err != nil {
				t.Fatal(err)
			}
			if err := s.LinkIdentity(ctx, &connectors.Identity{Connector: "corp", Subject: "a", UserID: u.ID}); err != nil {
				t.Fatal(err)
			}
			if ids, err := s.IdentitiesOfUser(ctx, u.ID); err != nil || len(ids) != 1 {
				t.Fatalf("alice's identities: %+v, %v", ids, err)
			}
		})
	}
}
