package store

import (
	"context"
	"reflect"
	"testing"
)

// TestMigration0014MakesTheBrokerAnApp: the native client registered
// before apps existed (the broker's nsauth-cli) becomes a native,
// first-party app with the device flow and takes its id as its name;
// machine clients stay as they were.
func TestMigration0014MakesTheBrokerAnApp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	sqliteAtVersion(t, dir, 13,
		`INSERT INTO nsauth_clients (id, secret_hash, redirect_uris, created_at) VALUES ('nsauth-cli', x'0102', '[]', 1000)`,
		`INSERT INTO nsauth_clients (id, secret_hash, redirect_uris, created_at, kind, name, updated_at) VALUES ('m-abc', x'0304', '[]', 1000, 'machine', 'robot', 1000)`)

	s, err := OpenSQLite(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cli, err := s.ClientByID(ctx, "nsauth-cli")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"authorization_code", "refresh_token", DeviceCodeGrantType}
	if !cli.Native || cli.Public || cli.ThirdParty || !reflect.DeepEqual(cli.GrantTypes, want) || cli.PostLogoutRedirectURIs != nil || cli.UpdatedAt.UnixMilli() != 1000 {
		t.Errorf("nsauth-cli after 0014: %+v", cli)
	}
	var name string
	if err := s.QueryRowForTest(ctx, `SELECT name FROM nsauth_clients WHERE id = 'nsauth-cli'`).Scan(&name); err != nil || name != "nsauth-cli" {
		t.Errorf("nsauth-cli's name: %q, %v", name, err)
	}
	m, err := s.MachineClientByName(ctx, "robot")
	if err != nil || m.ID != "m-abc" {
		t.Errorf("the machine client after 0014: %+v, %v", m, err)
	}
	apps, err := s.ListApps(ctx)
	if err != nil || len(apps) != 1 {
		t.Errorf("ListApps = %+v, %v", apps, err)
	}
}
