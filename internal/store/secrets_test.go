package store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func newRing(t *testing.T, old ...*seal.Key) (*seal.Keyring, *seal.Key) {
	t.Helper()
	k, err := seal.ParseKey(seal.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	return seal.NewKeyring(k, old...), k
}

// isSecret is the provider's rule in small: which instance values an
// earlier nsauth stored in clear that must be sealed.
func isSecret(name string) bool {
	return name == "auth_request_key" || strings.HasPrefix(name, "client_secret:")
}

func rawValue(t *testing.T, s *store.Store, name string) []byte {
	t.Helper()
	v, err := store.RawForTest(s, `SELECT value FROM nsauth_instance_values WHERE name = ?`, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func rawKey(t *testing.T, s *store.Store, id string) []byte {
	t.Helper()
	v, err := store.RawForTest(s, `SELECT private_key FROM nsauth_signing_keys WHERE id = ?`, id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func addKey(t *testing.T, s *store.Store, id string, der []byte) {
	t.Helper()
	err := s.UpdateSigningKeys(ctx, func([]store.SigningKey) (store.KeyChange, error) {
		return store.KeyChange{Add: &store.SigningKey{ID: id, Algorithm: "RS256", PrivateKey: der, ActivatesAt: time.Now()}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSecretsAreSealedAtRest(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ring, key := newRing(t)
		s := b.Open(t, store.Options{Keyring: ring})
		der := []byte("\x30\x82 pretend PKCS#8 DER of a private key")
		addKey(t, s, "kid-1", der)
		secret, err := s.EnsureSecret(ctx, "client_secret:cli", "the-client-secret")
		if err != nil || secret != "the-client-secret" {
			t.Fatalf("EnsureSecret = %q, %v", secret, err)
		}
		if again, err := s.EnsureSecret(ctx, "client_secret:cli", "another"); err != nil || again != secret {
			t.Fatalf("EnsureSecret of an existing secret = %q, %v; want the first one", again, err)
		}
		for name, raw := range map[string][]byte{"signing key": rawKey(t, s, "kid-1"), "client secret": rawValue(t, s, "client_secret:cli")} {
			if !seal.IsSealed(raw) || seal.KeyID(raw) != key.ID() {
				t.Errorf("%s is stored as %q, not sealed under key %s", name, raw, key.ID())
			}
			if bytes.Contains(raw, der) || bytes.Contains(raw, []byte(secret)) {
				t.Errorf("%s is stored with its plaintext: %q", name, raw)
			}
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil || len(keys) != 1 || !bytes.Equal(keys[0].PrivateKey, der) {
			t.Fatalf("SigningKeys = %v, %v; want the key opened", keys, err)
		}
		if got, err := s.Secret(ctx, "client_secret:cli"); err != nil || got != secret {
			t.Fatalf("Secret = %q, %v", got, err)
		}
		if _, err := s.Secret(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Secret(missing) error = %v, want ErrNotFound", err)
		}
	})
}

// TestSealedValuesStayInTheirRow: a sealed value copied into another row
// does not open there.
func TestSealedValuesStayInTheirRow(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t, store.Options{})
		if _, err := s.EnsureSecret(ctx, "client_secret:a", "secret-a"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.EnsureSecret(ctx, "auth_request_key", "key-b"); err != nil {
			t.Fatal(err)
		}
		addKey(t, s, "kid-a", []byte("der a"))
		addKey(t, s, "kid-b", []byte("der b"))
		if err := store.ExecForTest(s, `UPDATE nsauth_instance_values SET value = ? WHERE name = 'auth_request_key'`, string(rawValue(t, s, "client_secret:a"))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Secret(ctx, "auth_request_key"); !errors.Is(err, seal.ErrNotAuthentic) {
			t.Fatalf("a value moved to another name: Secret error = %v, want ErrNotAuthentic", err)
		}
		if err := s.CheckSecrets(ctx); !errors.Is(err, seal.ErrNotAuthentic) {
			t.Fatalf("CheckSecrets = %v, want ErrNotAuthentic", err)
		}
		if err := store.ExecForTest(s, `UPDATE nsauth_instance_values SET value = ? WHERE name = 'auth_request_key'`, "plain"); err != nil {
			t.Fatal(err)
		}
		if err := store.ExecForTest(s, `UPDATE nsauth_signing_keys SET private_key = ? WHERE id = 'kid-b'`, rawKey(t, s, "kid-a")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SigningKeys(ctx); !errors.Is(err, seal.ErrNotAuthentic) {
			t.Fatalf("a key moved to another id: SigningKeys error = %v, want ErrNotAuthentic", err)
		}
	})
}

// TestSealSecretsUpgradesPlaintext: a database an earlier nsauth wrote,
// with secrets in clear, is sealed in place; values that are not secrets
// stay as they are.
func TestSealSecretsUpgradesPlaintext(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ring, _ := newRing(t)
		s := b.Open(t, store.Options{Keyring: ring})
		der := append([]byte("\x30\x82"), store.RandomToken(48)...) // stands in for PKCS #8 DER
		legacy := []struct{ query, name, value string }{
			{`INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (?, ?, 0)`, "client_secret:nsauth-cli", "legacy-client-secret"},
			{`INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (?, ?, 0)`, "auth_request_key", "legacy-request-key"},
			{`INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (?, ?, 0)`, "issuer_url", "http://127.0.0.1:8080"},
		}
		for _, l := range legacy {
			if err := store.ExecForTest(s, l.query, l.name, l.value); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.ExecForTest(s, `INSERT INTO nsauth_signing_keys (id, algorithm, private_key, created_at, activates_at) VALUES ('old', 'RS256', ?, 0, 0)`, der); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SigningKeys(ctx); err == nil {
			t.Fatal("a signing key in clear was read as if sealed")
		}
		if err := s.CheckSecrets(ctx); err != nil {
			t.Fatalf("CheckSecrets on plaintext = %v, want nil (plaintext is sealed next, not refused)", err)
		}
		n, err := s.SealSecrets(ctx, isSecret)
		if err != nil || n != (store.SecretCounts{SigningKeys: 1, Values: 2}) {
			t.Fatalf("SealSecrets = %+v, %v; want 1 signing key and 2 values", n, err)
		}
		if raw := rawKey(t, s, "old"); !seal.IsSealed(raw) || bytes.Contains(raw, der) {
			t.Fatalf("signing key after the upgrade: %q", raw)
		}
		for _, l := range legacy {
			raw := rawValue(t, s, l.name)
			if isSecret(l.name) {
				if !seal.IsSealed(raw) || bytes.Contains(raw, []byte(l.value)) {
					t.Errorf("%s after the upgrade: %q", l.name, raw)
				}
				if got, err := s.Secret(ctx, l.name); err != nil || got != l.value {
					t.Errorf("Secret(%s) = %q, %v; want %q", l.name, got, err, l.value)
				}
			} else if string(raw) != l.value {
				t.Errorf("%s, not a secret, became %q", l.name, raw)
			}
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil || len(keys) != 1 || !bytes.Equal(keys[0].PrivateKey, der) {
			t.Fatalf("SigningKeys after the upgrade = %v, %v", keys, err)
		}
		if n, err := s.SealSecrets(ctx, isSecret); err != nil || n.Total() != 0 {
			t.Fatalf("second SealSecrets = %+v, %v; want nothing to do", n, err)
		}
		if b.Name != "sqlite" {
			return
		}
		// Nothing of the plaintext is left in the files: not in free space
		// of the database, nor in its write-ahead log.
		dir := storetest.SQLiteDir(t, s)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			for _, plain := range [][]byte{der, []byte("legacy-client-secret"), []byte("legacy-request-key")} {
				if bytes.Contains(data, plain) {
					t.Errorf("%s still holds %q after the upgrade", e.Name(), plain)
				}
			}
		}
	})
}

// TestResealSecrets rotates the secret key: with the old key given beside
// the new one, everything is sealed again under the new one, after which
// the new key alone opens everything and the old one alone nothing.
func TestResealSecrets(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		oldRing, oldKey := newRing(t)
		s := b.Open(t, store.Options{Keyring: oldRing})
		addKey(t, s, "kid-1", []byte("der 1"))
		if _, err := s.EnsureSecret(ctx, "client_secret:cli", "secret"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.EnsureValue(ctx, "issuer_url", "http://127.0.0.1:8080"); err != nil {
			t.Fatal(err)
		}

		newOnly, newKey := newRing(t)
		if err := b.Reopen(t, s, store.Options{Keyring: newOnly}).CheckSecrets(ctx); !errors.Is(err, seal.ErrUnknownKey) {
			t.Fatalf("the new key alone before the rotation: CheckSecrets = %v, want ErrUnknownKey", err)
		}
		both := b.Reopen(t, s, store.Options{Keyring: seal.NewKeyring(newKey, oldKey)})
		n, err := both.ResealSecrets(ctx, isSecret, nil)
		if err != nil || n != (store.SecretCounts{SigningKeys: 1, Values: 1}) {
			t.Fatalf("ResealSecrets = %+v, %v; want 1 signing key and 1 value", n, err)
		}
		if n, err := both.ResealSecrets(ctx, isSecret, nil); err != nil || n.Total() != 0 {
			t.Fatalf("second ResealSecrets = %+v, %v; want nothing to do", n, err)
		}

		after := b.Reopen(t, s, store.Options{Keyring: newOnly})
		if err := after.CheckSecrets(ctx); err != nil {
			t.Fatalf("the new key alone after the rotation: %v", err)
		}
		if v, err := after.Secret(ctx, "client_secret:cli"); err != nil || v != "secret" {
			t.Fatalf("Secret after the rotation = %q, %v", v, err)
		}
		if keys, err := after.SigningKeys(ctx); err != nil || len(keys) != 1 || string(keys[0].PrivateKey) != "der 1" {
			t.Fatalf("SigningKeys after the rotation = %v, %v", keys, err)
		}
		if raw := rawKey(t, s, "kid-1"); seal.KeyID(raw) != newKey.ID() {
			t.Fatalf("signing key sealed under %s, want %s", seal.KeyID(raw), newKey.ID())
		}
		old := b.Reopen(t, s, store.Options{Keyring: oldRing})
		var ke *seal.KeyError
		if err := old.CheckSecrets(ctx); !errors.As(err, &ke) || ke.ID != newKey.ID() {
			t.Fatalf("the old key alone after the rotation: CheckSecrets = %v, want a KeyError naming %s", err, newKey.ID())
		}
		if _, err := old.SigningKeys(ctx); !errors.Is(err, seal.ErrUnknownKey) {
			t.Fatalf("the old key alone: SigningKeys = %v, want ErrUnknownKey", err)
		}
	})
}

// TestResealSecretsIsAllOrNothing: one value that does not open leaves
// every value as it was.
func TestResealSecretsIsAllOrNothing(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ringA, keyA := newRing(t)
		s := b.Open(t, store.Options{Keyring: ringA})
		addKey(t, s, "kid-1", []byte("der 1"))
		ringB, _ := newRing(t)
		if _, err := b.Reopen(t, s, store.Options{Keyring: ringB}).EnsureSecret(ctx, "client_secret:x", "under b"); err != nil {
			t.Fatal(err)
		}
		ringC, _ := newRing(t, keyA) // C is new, A old; B is missing
		if _, err := b.Reopen(t, s, store.Options{Keyring: ringC}).ResealSecrets(ctx, isSecret, nil); !errors.Is(err, seal.ErrUnknownKey) {
			t.Fatalf("ResealSecrets without key B = %v, want ErrUnknownKey", err)
		}
		if raw := rawKey(t, s, "kid-1"); seal.KeyID(raw) != keyA.ID() {
			t.Fatal("a failed rotation re-sealed a signing key")
		}
	})
}

func TestNoKeyringNoSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := store.OpenSQLite(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.EnsureSecret(ctx, "client_secret:x", "v"); !errors.Is(err, store.ErrNoKeyring) {
		t.Fatalf("EnsureSecret without a keyring = %v, want ErrNoKeyring", err)
	}
	if err := s.CheckSecrets(ctx); !errors.Is(err, store.ErrNoKeyring) {
		t.Fatalf("CheckSecrets without a keyring = %v, want ErrNoKeyring", err)
	}
	if err := s.CreateUser(ctx, &store.User{Username: "bob", PasswordHash: "h"}); err != nil {
		t.Fatalf("a store without a keyring must still manage users: %v", err)
	}
}
