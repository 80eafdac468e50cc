package store_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/connectors"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func corpOIDC() *store.Connector {
	return &store.Connector{Name: "corp", Type: store.ConnectorOIDC, DisplayName: "Corp SSO",
		Settings: []byte(`{"issuer":"https://idp.corp.example","client_id":"nsauth"}`), Secret: "client-s3cret",
		CreateUsers: true, TrustUpstreamMFA: true}
}

func addConnector(t *testing.T, s *store.Store, c *store.Connector) {
	t.Helper()
	if err := s.CreateConnector(ctx, c); err != nil {
		t.Fatal(err)
	}
}

func TestConnectorLifecycle(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		c := corpOIDC()
		addConnector(t, f.s, c)
		if !c.CreatedAt.Equal(f.clock.Now()) || !c.UpdatedAt.Equal(f.clock.Now()) {
			t.Fatalf("created %+v", c)
		}
		got, err := f.s.ConnectorByName(ctx, "corp")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("read back\n %+v\nwant\n %+v", got, c)
		}
		raw, err := store.RawForTest(f.s, `SELECT secret FROM nsauth_connectors WHERE name = 'corp'`)
		if err != nil {
			t.Fatal(err)
		}
		if !seal.IsSealed(raw) || bytes.Contains(raw, []byte("client-s3cret")) {
			t.Fatalf("the secret is stored as %q, want it sealed", raw)
		}
		gh := &store.Connector{Name: "github", Type: store.ConnectorGitHub, Settings: []byte(`{}`)}
		addConnector(t, f.s, gh)
		if got, err := f.s.ConnectorByName(ctx, "github"); err != nil || got.Secret != "" || got.DisplayName != "" {
			t.Fatalf("a connector without secret read back as %+v, %v", got, err)
		}

		refused := []struct {
			name string
			c    *store.Connector
			err  error
		}{
			{"name taken", &store.Connector{Name: "corp", Type: store.ConnectorLDAP, Settings: []byte(`{}`)}, store.ErrConflict},
			{"upper case", &store.Connector{Name: "Corp2", Type: store.ConnectorOIDC, Settings: []byte(`{}`)}, nil},
			{"starts with a digit", &store.Connector{Name: "1corp", Type: store.ConnectorOIDC, Settings: []byte(`{}`)}, nil},
			{"a colon", &store.Connector{Name: "corp:x", Type: store.ConnectorOIDC, Settings: []byte(`{}`)}, nil},
			{"too long", &store.Connector{Name: "c" + strings.Repeat("x", connectors.MaxNameLen), Type: store.ConnectorOIDC, Settings: []byte(`{}`)}, nil},
			{"empty name", &store.Connector{Type: store.ConnectorOIDC, Settings: []byte(`{}`)}, nil},
			{"unknown type", &store.Connector{Name: "saml", Type: "saml", Settings: []byte(`{}`)}, nil},
			{"settings not JSON", &store.Connector{Name: "bad", Type: store.ConnectorOIDC, Settings: []byte(`{issuer`)}, nil},
			{"no settings", &store.Connector{Name: "bad", Type: store.ConnectorOIDC}, nil},
			{"hidden display name", &store.Connector{Name: "bad", Type: store.ConnectorOIDC, DisplayName: "Corp\u202eOSS", Settings: []byte(`{}`)}, nil},
			{"long display name", &store.Connector{Name: "bad", Type: store.ConnectorOIDC, DisplayName: strings.Repeat("x", connectors.MaxDisplayNameLen+1), Settings: []byte(`{}`)}, nil},
			{"long secret", &store.Connector{Name: "bad", Type: store.ConnectorOIDC, Secret: strings.Repeat("x", connectors.MaxSecretLen+1), Settings: []byte(`{}`)}, nil},
		}
		for _, tc := range refused {
			err := f.s.CreateConnector(ctx, tc.c)
			if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Errorf("%s: %v, want an error (%v)", tc.name, err, tc.err)
			}
		}
		if _, err := f.s.ConnectorByName(ctx, "bad"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a refused connector was stored: %v", err)
		}

		list, err := f.s.Connectors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].Name != "corp" || list[1].Name != "github" || list[0].Secret != "" || !list[0].CreateUsers {
			t.Fatalf("listed %+v", list)
		}

		// An update keeps the name, the type and (when none is given)
		// the secret; its time is the store's.
		f.clock.Advance(time.Minute)
		err = f.s.UpdateConnector(ctx, "corp", func(c *store.Connector) error {
			if c.Secret != "" || c.DisplayName != "Corp SSO" {
				t.Errorf("change is given %+v, want the stored connector without its secret", c)
			}
			c.Name, c.Type, c.DisplayName, c.CreateUsers = "other", store.ConnectorLDAP, "Corp", false
			c.Settings = []byte(`{"issuer":"https://idp2.corp.example"}`)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err = f.s.ConnectorByName(ctx, "corp")
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != store.ConnectorOIDC || got.DisplayName != "Corp" || got.CreateUsers || !got.TrustUpstreamMFA || got.Secret != "client-s3cret" ||
			string(got.Settings) != `{"issuer":"https://idp2.corp.example"}` || !got.UpdatedAt.Equal(f.clock.Now()) || !got.CreatedAt.Equal(c.CreatedAt) {
			t.Fatalf("after the update: %+v", got)
		}
		if err := f.s.UpdateConnector(ctx, "corp", func(c *store.Connector) error { c.Secret = "rotated"; return nil }); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.s.ConnectorByName(ctx, "corp"); got.Secret != "rotated" {
			t.Fatalf("secret after update: %q", got.Secret)
		}
		boom := errors.New("boom")
		if err := f.s.UpdateConnector(ctx, "corp", func(c *store.Connector) error { c.DisplayName = "X"; return boom }); !errors.Is(err, boom) {
			t.Fatalf("a change's error: %v", err)
		}
		if err := f.s.UpdateConnector(ctx, "corp", func(c *store.Connector) error { c.Settings = []byte("nope"); return nil }); err == nil {
			t.Fatal("an update to settings that are not JSON was accepted")
		}
		if got, _ := f.s.ConnectorByName(ctx, "corp"); got.DisplayName != "Corp" {
			t.Fatalf("a refused update changed the connector: %+v", got)
		}
		if err := f.s.UpdateConnector(ctx, "nope", func(*store.Connector) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("updating a missing connector: %v", err)
		}

		// Disabled, then enabled.
		if err := f.s.SetConnectorDisabled(ctx, "corp", true); err != nil {
			t.Fatal(err)
		}
		at := f.clock.Now()
		f.clock.Advance(time.Minute)
		if err := f.s.SetConnectorDisabled(ctx, "corp", true); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.s.ConnectorByName(ctx, "corp"); !got.Disabled() || !got.DisabledAt.Equal(at) {
			t.Fatalf("disabled twice: %+v, want disabled at %v", got, at)
		}
		if err := f.s.UpdateConnector(ctx, "corp", func(c *store.Connector) error { c.DisabledAt = time.Time{}; return nil }); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.s.ConnectorByName(ctx, "corp"); !got.Disabled() {
			t.Fatal("UpdateConnector enabled a connector")
		}
		if err := f.s.SetConnectorDisabled(ctx, "corp", false); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.s.ConnectorByName(ctx, "corp"); got.Disabled() {
			t.Fatal("still disabled")
		}
		if err := f.s.SetConnectorDisabled(ctx, "nope", true); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("disabling a missing connector: %v", err)
		}

		// Deleting a connector deletes its identities, not its users.
		if err := f.s.LinkIdentity(ctx, &store.Identity{Connector: "corp", Subject: "alice-sub", UserID: f.user.ID}); err != nil {
			t.Fatal(err)
		}
		if err := f.s.DeleteConnector(ctx, "corp"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.IdentityBySubject(ctx, "corp", "alice-sub"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("identity after its connector's deletion: %v", err)
		}
		if _, err := f.s.UserByID(ctx, f.user.ID); err != nil {
			t.Fatalf("the user after the connector's deletion: %v", err)
		}
		if err := f.s.DeleteConnector(ctx, "corp"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting it again: %v", err)
		}
		if _, err := f.s.ConnectorByName(ctx, "corp"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("reading a deleted connector: %v", err)
		}
	})
}

// TestConnectorSecretNeedsTheKeyring: a store that lacks the key
// lists connectors and updates what is not secret, but opens and seals no
// secret.
func TestConnectorSecretNeedsTheKeyring(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t, store.Options{})
		addConnector(t, s, corpOIDC())
		bare := b.Reopen(t, s, store.Options{Keyring: seal.NewKeyring(newKey(t))})
		if _, err := bare.ConnectorByName(ctx, "corp"); err == nil {
			t.Fatal("a store with another key opened the secret")
		}
		if list, err := bare.Connectors(ctx); err != nil || len(list) != 1 {
			t.Fatalf("listing: %v, %v", list, err)
		}
		if err := bare.UpdateConnector(ctx, "corp", func(c *store.Connector) error { c.DisplayName = "Corp"; return nil }); err != nil {
			t.Fatalf("an update that sets no secret: %v", err)
		}
		if got, err := s.ConnectorByName(ctx, "corp"); err != nil || got.Secret != "client-s3cret" || got.DisplayName != "Corp" {
			t.Fatalf("after the update: %+v, %v", got, err)
		}
	})
}

func TestIdentities(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		addConnector(t, f.s, corpOIDC())
		addConnector(t, f.s, &store.Connector{Name: "ldap", Type: store.ConnectorLDAP, Settings: []byte(`{}`), Secret: "bind"})
		bob := &store.User{Username: "bob", PasswordHash: "$argon2id$fake"}
		if err := f.s.CreateUser(ctx, bob); err != nil {
			t.Fatal(err)
		}
		id := &store.Identity{Connector: "corp", Subject: "248289761001", UserID: f.user.ID}
		if err := f.s.LinkIdentity(ctx, id); err != nil {
			t.Fatal(err)
		}
		if !id.CreatedAt.Equal(f.clock.Now()) {
			t.Fatalf("linked %+v", id)
		}
		refused := []struct {
			name string
			id   *store.Identity
			err  error
		}{
			{"bound to another user", &store.Identity{Connector: "corp", Subject: "248289761001", UserID: bob.ID}, connectors.ErrIdentityBound},
			{"bound to the same user", &store.Identity{Connector: "corp", Subject: "248289761001", UserID: f.user.ID}, connectors.ErrIdentityBound},
			{"second identity of a connector", &store.Identity{Connector: "corp", Subject: "other", UserID: f.user.ID}, store.ErrConflict},
			{"unknown user", &store.Identity{Connector: "corp", Subject: "x", UserID: "nobody"}, store.ErrNotFound},
			{"unknown connector", &store.Identity{Connector: "gone", Subject: "x", UserID: bob.ID}, store.ErrNotFound},
			{"bad connector name", &store.Identity{Connector: "Corp", Subject: "x", UserID: bob.ID}, nil},
			{"empty subject", &store.Identity{Connector: "corp", UserID: bob.ID}, nil},
			{"long subject", &store.Identity{Connector: "corp", Subject: strings.Repeat("s", connectors.MaxSubjectLen+1), UserID: bob.ID}, nil},
			{"hidden subject", &store.Identity{Connector: "corp", Subject: "a\x00b", UserID: bob.ID}, nil},
			{"unprefixed group", &store.Identity{Connector: "corp", Subject: "x", UserID: bob.ID, Groups: []string{"admins"}}, nil},
			{"other connector's group", &store.Identity{Connector: "corp", Subject: "x", UserID: bob.ID, Groups: []string{"ldap:admins"}}, nil},
		}
		for _, tc := range refused {
			err := f.s.LinkIdentity(ctx, tc.id)
			if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Errorf("%s: %v, want an error (%v)", tc.name, err, tc.err)
			}
		}
		if errors.Is(f.s.LinkIdentity(ctx, &store.Identity{Connector: "corp", Subject: "other", UserID: f.user.ID}), connectors.ErrIdentityBound) {
			t.Error("a user's second identity of a connector is reported as a bound identity")
		}

		got, err := f.s.IdentityBySubject(ctx, "corp", "248289761001")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, id) {
			t.Fatalf("read back\n %+v\nwant\n %+v", got, id)
		}
		if _, err := f.s.IdentityBySubject(ctx, "corp", "248289761002"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another subject: %v", err)
		}

		// A sign-in records groups, state and times.
		f.clock.Advance(time.Hour)
		at := f.clock.Now()
		if err := f.s.RecordIdentityLogin(ctx, "corp", "248289761001", []string{"corp:ops", "corp:dev team"}, "", at); err != nil {
			t.Fatal(err)
		}
		ldapID := &store.Identity{Connector: "ldap", Subject: "2f4b6c1e", UserID: f.user.ID}
		if err := f.s.LinkIdentity(ctx, ldapID); err != nil {
			t.Fatal(err)
		}
		dn := "uid=alice,ou=people,dc=corp,dc=example"
		if err := f.s.RecordIdentityLogin(ctx, "ldap", "2f4b6c1e", []string{"ldap:ops"}, dn, at); err != nil {
			t.Fatal(err)
		}
		got, err = f.s.IdentityBySubject(ctx, "ldap", "2f4b6c1e")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != dn || !got.LastLoginAt.Equal(at) || !got.CheckedAt.Equal(at) || !reflect.DeepEqual(got.Groups, []string{"ldap:ops"}) {
			t.Fatalf("after a sign-in: %+v", got)
		}
		raw, err := store.RawForTest(f.s, `SELECT state FROM nsauth_identities WHERE connector = 'ldap'`)
		if err != nil {
			t.Fatal(err)
		}
		if !seal.IsSealed(raw) || bytes.Contains(raw, []byte("uid=alice")) {
			t.Fatalf("the state is stored as %q, want it sealed", raw)
		}
		for name, tc := range map[string]struct {
			connector, subject string
			groups             []string
			state              string
			err                error
		}{
			"not bound":         {"corp", "nobody", nil, "", store.ErrNotFound},
			"unprefixed group":  {"corp", "248289761001", []string{"ops"}, "", nil},
			"empty group":       {"corp", "248289761001", []string{"corp:"}, "", nil},
			"too many groups":   {"corp", "248289761001", make([]string, connectors.MaxGroups+1), "", nil},
			"long group":        {"corp", "248289761001", []string{"corp:" + strings.Repeat("g", connectors.MaxGroupLen)}, "", nil},
			"hidden in a group": {"corp", "248289761001", []string{"corp:a\u200bb"}, "", nil},
			"long state":        {"ldap", "2f4b6c1e", nil, strings.Repeat("s", connectors.MaxStateLen+1), nil},
		} {
			err := f.s.RecordIdentityLogin(ctx, tc.connector, tc.subject, tc.groups, tc.state, at)
			if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Errorf("%s: %v, want an error (%v)", name, err, tc.err)
			}
		}
		// The sealed state is bound to its identity: copied into another
		// identity's row, it does not open.
		if err := f.s.LinkIdentity(ctx, &store.Identity{Connector: "ldap", Subject: "9a9a", UserID: bob.ID}); err != nil {
			t.Fatal(err)
		}
		if err := store.ExecForTest(f.s, `UPDATE nsauth_identities SET state = ? WHERE connector = 'ldap' AND subject = '9a9a'`, raw); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.IdentityBySubject(ctx, "ldap", "9a9a"); err == nil {
			t.Fatal("a state copied into another identity's row opened")
		}
		if err := store.ExecForTest(f.s, `UPDATE nsauth_identities SET state = NULL WHERE connector = 'ldap' AND subject = '9a9a'`); err != nil {
			t.Fatal(err)
		}

		ids, err := f.s.IdentitiesOfUser(ctx, f.user.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 2 || ids[0].Connector != "corp" || ids[1].Connector != "ldap" || ids[1].State != dn {
			t.Fatalf("alice's identities: %+v", ids)
		}
		if err := f.s.LinkIdentity(ctx, &store.Identity{Connector: "corp", Subject: "bob-sub", UserID: bob.ID, Groups: []string{"corp:ops"}}); err != nil {
			t.Fatal(err)
		}
		groups, err := f.s.UserGroups(ctx, f.user.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"corp:dev team", "corp:ops", "ldap:ops"}; !reflect.DeepEqual(groups, want) {
			t.Fatalf("alice's groups: %q, want %q", groups, want)
		}
		if err := f.s.RecordIdentityLogin(ctx, "ldap", "2f4b6c1e", []string{"ldap:ops", "ldap:ops"}, dn, at); err != nil {
			t.Fatal(err)
		}
		if err := f.s.RecordIdentityLogin(ctx, "corp", "248289761001", nil, "", at); err != nil {
			t.Fatal(err)
		}
		if groups, _ := f.s.UserGroups(ctx, f.user.ID); !reflect.DeepEqual(groups, []string{"ldap:ops"}) {
			t.Fatalf("alice's groups after she left them: %q", groups)
		}
		if groups, err := f.s.UserGroups(ctx, "nobody"); err != nil || groups != nil {
			t.Fatalf("a stranger's groups: %q, %v", groups, err)
		}

		f.clock.Advance(time.Hour)
		if err := f.s.SetIdentityChecked(ctx, "ldap", "2f4b6c1e", f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.s.IdentityBySubject(ctx, "ldap", "2f4b6c1e"); !got.CheckedAt.Equal(f.clock.Now()) || !got.LastLoginAt.Equal(at) || got.State != dn {
			t.Fatalf("after a check: %+v", got)
		}
		if err := f.s.SetIdentityChecked(ctx, "ldap", "nobody", f.clock.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("checking a missing identity: %v", err)
		}

		if err := f.s.UnlinkIdentity(ctx, "corp", "248289761001"); err != nil {
			t.Fatal(err)
		}
		if err := f.s.UnlinkIdentity(ctx, "corp", "248289761001"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unlinking twice: %v", err)
		}
		// Once unlinked, the identity may be bound to another user.
		if err := f.s.LinkIdentity(ctx, &store.Identity{Connector: "corp", Subject: "248289761001", UserID: bob.ID}); err == nil {
			t.Fatal("bob has a corp identity already: a second one was bound")
		}
		if err := f.s.UnlinkIdentity(ctx, "corp", "bob-sub"); err != nil {
			t.Fatal(err)
		}
		if err := f.s.LinkIdentity(ctx, &store.Identity{Connector: "corp", Subject: "248289761001", UserID: bob.ID}); err != nil {
			t.Fatal(err)
		}

		// Deleting the user deletes their identities.
		if err := f.s.DeleteUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.IdentityBySubject(ctx, "corp", "248289761001"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a deleted user's identity: %v", err)
		}
	})
}

func TestCreateUserWithIdentity(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		addConnector(t, f.s, corpOIDC())
		u := &store.User{Username: "Carol", Name: "Carol C.", Email: "carol@corp.example"}
		id := &store.Identity{Connector: "corp", Subject: "carol-sub", Groups: []string{"corp:ops"}}
		if err := f.s.CreateUserWithIdentity(ctx, u, id); err != nil {
			t.Fatal(err)
		}
		if u.ID == "" || u.Username != "carol" || id.UserID != u.ID || u.HasPassword() || u.CreatedAt.IsZero() {
			t.Fatalf("created %+v bound to %+v", u, id)
		}
		got, err := f.s.UserByUsername(ctx, "carol")
		if err != nil {
			t.Fatal(err)
		}
		if got.HasPassword() || got.PasswordHash != "" || got.ID != u.ID {
			t.Fatalf("read back %+v", got)
		}
		if got, err := f.s.IdentityBySubject(ctx, "corp", "carol-sub"); err != nil || got.UserID != u.ID || !reflect.DeepEqual(got.Groups, id.Groups) {
			t.Fatalf("identity: %+v, %v", got, err)
		}

		// Other ways of making a user still need a password.
		if err := f.s.CreateUser(ctx, &store.User{Username: "dave"}); err == nil {
			t.Fatal("CreateUser accepted a user without a password")
		}
		if err := f.s.SetPassword(ctx, "carol", ""); err == nil {
			t.Fatal("SetPassword accepted an empty hash")
		}
		if err := f.s.CreateUserWithIdentity(ctx, &store.User{Username: "dave", PasswordHash: "$argon2id$fake"}, &store.Identity{Connector: "corp", Subject: "dave-sub"}); err == nil {
			t.Fatal("CreateUserWithIdentity stored a password hash")
		}

		refused := []struct {
			name       string
			u          *store.User
			id         *store.Identity
			err, notIs error
		}{
			{"username taken", &store.User{Username: "ALICE"}, &store.Identity{Connector: "corp", Subject: "other-alice"}, store.ErrConflict, connectors.ErrIdentityBound},
			{"identity taken", &store.User{Username: "carol2"}, &store.Identity{Connector: "corp", Subject: "carol-sub"}, connectors.ErrIdentityBound, nil},
			{"identity and username taken", &store.User{Username: "alice"}, &store.Identity{Connector: "corp", Subject: "carol-sub"}, connectors.ErrIdentityBound, nil},
			{"unknown connector", &store.User{Username: "erin"}, &store.Identity{Connector: "gone", Subject: "erin-sub"}, store.ErrNotFound, nil},
			{"bad username", &store.User{Username: "-erin"}, &store.Identity{Connector: "corp", Subject: "erin-sub"}, nil, nil},
			{"bad group", &store.User{Username: "erin"}, &store.Identity{Connector: "corp", Subject: "erin-sub", Groups: []string{"ops"}}, nil, nil},
		}
		for _, tc := range refused {
			before := *tc.u
			err := f.s.CreateUserWithIdentity(ctx, tc.u, tc.id)
			if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) || (tc.notIs != nil && errors.Is(err, tc.notIs)) {
				t.Errorf("%s: %v, want an error (%v, not %v)", tc.name, err, tc.err, tc.notIs)
			}
			if *tc.u != before || tc.id.UserID != "" {
				t.Errorf("%s: a refused creation changed the user to %+v, the identity to %+v", tc.name, tc.u, tc.id)
			}
		}
		if _, err := f.s.UserByUsername(ctx, "erin"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a user of a refused creation was kept: %v", err)
		}

		// A password set later lets the user in by password too.
		if err := f.s.SetPassword(ctx, "carol", "$argon2id$fake"); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.s.UserByUsername(ctx, "carol"); !got.HasPassword() {
			t.Fatal("no password after SetPassword")
		}
	})
}

func TestPendingLogins(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		addConnector(t, f.s, corpOIDC())
		now := f.clock.Now()
		key := store.RandomToken(32) + "." + store.RandomToken(32)
		p := &store.PendingLogin{Connector: "corp", AuthRequest: "sealed-auth-request", ExpiresAt: now.Add(10 * time.Minute)}
		if err := f.s.CreatePendingLogin(ctx, key, p); err != nil {
			t.Fatal(err)
		}
		raw, err := store.RawForTest(f.s, `SELECT key_hash FROM nsauth_connector_pending`)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, store.HashSecret(key)) {
			t.Fatal("the key is not stored as its digest")
		}
		refused := []struct {
			name string
			key  string
			p    *store.PendingLogin
			err  error
		}{
			{"key taken", key, &store.PendingLogin{Connector: "corp", AuthRequest: "x", ExpiresAt: now.Add(time.Minute)}, store.ErrConflict},
			{"unknown connector", "k1", &store.PendingLogin{Connector: "gone", AuthRequest: "x", ExpiresAt: now.Add(time.Minute)}, store.ErrNotFound},
			{"no key", "", &store.PendingLogin{Connector: "corp", AuthRequest: "x", ExpiresAt: now.Add(time.Minute)}, nil},
			{"no auth request", "k2", &store.PendingLogin{Connector: "corp", ExpiresAt: now.Add(time.Minute)}, nil},
			{"both an auth request and an enrolment link", "k5", &store.PendingLogin{Connector: "corp", AuthRequest: "x", EnrolLink: true, ExpiresAt: now.Add(time.Minute)}, nil},
			{"huge auth request", "k3", &store.PendingLogin{Connector: "corp", AuthRequest: strings.Repeat("a", 1<<20), ExpiresAt: now.Add(time.Minute)}, nil},
			{"expired", "k4", &store.PendingLogin{Connector: "corp", AuthRequest: "x", ExpiresAt: now}, nil},
		}
		for _, tc := range refused {
			err := f.s.CreatePendingLogin(ctx, tc.key, tc.p)
			if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Errorf("%s: %v, want an error (%v)", tc.name, err, tc.err)
			}
		}

		if _, err := f.s.TakePendingLogin(ctx, key+"x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another key: %v", err)
		}
		got, err := f.s.TakePendingLogin(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("took %+v, want %+v", got, p)
		}
		if _, err := f.s.TakePendingLogin(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("taken twice: %v", err)
		}

		// A sign-in for an enrolment link keeps no auth request.
		linkKey := store.RandomToken(32) + "." + store.RandomToken(32)
		lp := &store.PendingLogin{Connector: "corp", EnrolLink: true, ExpiresAt: now.Add(10 * time.Minute)}
		if err := f.s.CreatePendingLogin(ctx, linkKey, lp); err != nil {
			t.Fatal(err)
		}
		if got, err := f.s.TakePendingLogin(ctx, linkKey); err != nil || !reflect.DeepEqual(got, lp) {
			t.Fatalf("took %+v, %v; want %+v", got, err, lp)
		}

		// An expired one is not given, and goes with the expired records.
		for _, k := range []string{"old", "young"} {
			if err := f.s.CreatePendingLogin(ctx, k, &store.PendingLogin{Connector: "corp", AuthRequest: "ar", ExpiresAt: f.clock.Now().Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.s.CreatePendingLogin(ctx, "later", &store.PendingLogin{Connector: "corp", AuthRequest: "ar", ExpiresAt: f.clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
		if _, err := f.s.TakePendingLogin(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("an expired pending sign-in: %v", err)
		}
		if _, err := f.s.DeleteExpired(ctx); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := f.s.QueryRowForTest(ctx, `SELECT COUNT(*) FROM nsauth_connector_pending`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left != 1 {
			t.Fatalf("%d pending sign-ins after DeleteExpired, want 1 (the live one)", left)
		}

		// Deleting the connector ends the sign-ins waiting at it.
		if err := f.s.DeleteConnector(ctx, "corp"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.TakePendingLogin(ctx, "later"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a pending sign-in of a deleted connector: %v", err)
		}
	})
}

// TestPendingLoginsAreBounded: beyond MaxPendingLogins, expired ones are
// deleted to make room, and live ones refuse more.
func TestPendingLoginsAreBounded(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		addConnector(t, f.s, corpOIDC())
		fill := func(expiresAt time.Time) {
			t.Helper()
			if err := store.ExecForTest(f.s, `DELETE FROM nsauth_connector_pending`); err != nil {
				t.Fatal(err)
			}
			q := `INSERT INTO nsauth_connector_pending (key_hash, connector, auth_request, created_at, expires_at)
				SELECT int8send(g), 'corp', 'ar', 0, CAST(? AS BIGINT) FROM generate_series(1, ?) AS g`
			if b.Name == "sqlite" {
				q = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
					INSERT INTO nsauth_connector_pending (key_hash, connector, auth_request, created_at, expires_at)
					SELECT CAST(i AS BLOB), 'corp', 'ar', 0, ? FROM n`
			}
			args := []any{expiresAt.UnixMilli(), connectors.MaxPendingLogins}
			if b.Name == "sqlite" {
				args = []any{connectors.MaxPendingLogins, expiresAt.UnixMilli()}
			}
			if err := store.ExecForTest(f.s, q, args...); err != nil {
				t.Fatal(err)
			}
		}
		p := func() *store.PendingLogin {
			return &store.PendingLogin{Connector: "corp", AuthRequest: "ar", ExpiresAt: f.clock.Now().Add(time.Minute)}
		}
		fill(f.clock.Now().Add(time.Minute))
		if err := f.s.CreatePendingLogin(ctx, "one more", p()); !errors.Is(err, connectors.ErrFull) {
			t.Fatalf("beyond the bound: %v, want ErrFull", err)
		}
		fill(f.clock.Now())
		if err := f.s.CreatePendingLogin(ctx, "one more", p()); err != nil {
			t.Fatalf("with expired ones to delete: %v", err)
		}
		if _, err := f.s.TakePendingLogin(ctx, "one more"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTakePendingLoginOnce: of concurrent takers on two stores sharing
// the database (two replicas, on PostgreSQL), exactly one gets a pending
// sign-in.
func TestTakePendingLoginOnce(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		other := b.Reopen(t, f.s, store.Options{Now: f.clock.Now})
		addConnector(t, f.s, corpOIDC())
		for round := range 5 {
			key := store.RandomToken(32)
			if err := f.s.CreatePendingLogin(ctx, key, &store.PendingLogin{Connector: "corp", AuthRequest: "ar", ExpiresAt: f.clock.Now().Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
			var won, lost atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range 16 {
				s := f.s
				if i%2 == 1 {
					s = other
				}
				wg.Go(func() {
					<-start
					_, err := s.TakePendingLogin(ctx, key)
					switch {
					case err == nil:
						won.Add(1)
					case errors.Is(err, store.ErrNotFound):
						lost.Add(1)
					default:
						t.Error(err)
					}
				})
			}
			close(start)
			wg.Wait()
			if won.Load() != 1 || lost.Load() != 15 {
				t.Fatalf("round %d: %d takers got it, %d did not; want 1 and 15", round, won.Load(), lost.Load())
			}
		}
	})
}

// TestConnectorSecretsRotate: a key rotation seals connectors' secrets and
// identities' states again under the new key, and a store holding the new
// key alone opens them.
func TestConnectorSecretsRotate(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		oldKey, newKey := newKey(t), newKey(t)
		clock := storetest.NewClock(time.Time{})
		s := serving(t, b, clock, oldKey, nil)
		addConnector(t, s, corpOIDC())
		addConnector(t, s, &store.Connector{Name: "ldap", Type: store.ConnectorLDAP, Settings: []byte(`{}`), Secret: "bind-pw"})
		u := &store.User{Username: "carol"}
		if err := s.CreateUserWithIdentity(ctx, u, &store.Identity{Connector: "ldap", Subject: "c1", State: "uid=carol,dc=example"}); err != nil {
			t.Fatal(err)
		}
		if got := sealedUnder(t, s); got[oldKey.ID()] != 3 {
			t.Fatalf("sealed under %v, want 3 values under the old key", got)
		}
		rot := b.Reopen(t, s, store.Options{Now: clock.Now, Keyring: seal.NewKeyring(newKey, oldKey)})
		n, err := rot.ResealSecrets(ctx, isSecret, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n.Connectors != 3 {
			t.Fatalf("resealed %+v, want 3 of connectors", n)
		}
		if got := sealedUnder(t, s); len(got) != 1 || got[newKey.ID()] != 3 {
			t.Fatalf("sealed under %v, want 3 values under the new key alone", got)
		}
		fresh := b.Reopen(t, s, store.Options{Now: clock.Now, Keyring: seal.NewKeyring(newKey)})
		if c, err := fresh.ConnectorByName(ctx, "ldap"); err != nil || c.Secret != "bind-pw" {
			t.Fatalf("the LDAP connector with the new key: %+v, %v", c, err)
		}
		if id, err := fresh.IdentityBySubject(ctx, "ldap", "c1"); err != nil || id.State != "uid=carol,dc=example" {
			t.Fatalf("the identity with the new key: %+v, %v", id, err)
		}
		if err := fresh.CheckSecrets(ctx); err != nil {
			t.Fatal(err)
		}
		// A connector's secret moved to another connector's row does not
		// open.
		raw, err := store.RawForTest(s, `SELECT secret FROM nsauth_connectors WHERE name = 'ldap'`)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.ExecForTest(s, `UPDATE nsauth_connectors SET secret = ? WHERE name = 'corp'`, raw); err != nil {
			t.Fatal(err)
		}
		if _, err := fresh.ConnectorByName(ctx, "corp"); err == nil {
			t.Fatal("a secret copied into another connector's row opened")
		}
		if err := fresh.CheckSecrets(ctx); err == nil {
			t.Fatal("CheckSecrets passed a secret that does not open")
		}
	})
}
