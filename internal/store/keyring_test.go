package store_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// keySource is a key file in small: the keys a store reads again when it
// meets one it lacks, which the test changes as a rotation would.
type keySource struct {
	mu   sync.Mutex
	keys []*seal.Key
}

func newKeySource(keys ...*seal.Key) *keySource {
	k := &keySource{}
	k.set(keys...)
	return k
}

func (k *keySource) set(keys ...*seal.Key) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys = keys
}

func (k *keySource) load() ([]*seal.Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.keys), nil
}

func newKey(t *testing.T) *seal.Key {
	t.Helper()
	k, err := seal.ParseKey(seal.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// serving opens a store as a server starts on it: holding oldKey alone
// (reading load again, when not nil), the database sealing under it.
func serving(t *testing.T, b storetest.Backend, clock *storetest.Clock, oldKey *seal.Key, load func() ([]*seal.Key, error)) *store.Store {
	t.Helper()
	s := b.Open(t, store.Options{Now: clock.Now, Keyring: seal.NewKeyring(oldKey), LoadKeys: load})
	if _, err := s.EnsureSealingKey(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// sealedUnder returns the key id every sealed value in the database names.
func sealedUnder(t *testing.T, s *store.Store) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, q := range storetest.SealedColumns {
		vals, err := store.RawAllForTest(s, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if seal.IsSealed(v) {
				ids[seal.KeyID(v)]++
			}
		}
	}
	return ids
}

// TestRunningStoreLearnsTheNewKey is the store's half of a rotation under
// a running server: a store that holds the old key alone, and reads its
// keys from a source the rotation rewrote, goes on opening every secret
// once they are sealed again under the new key. One with fixed keys (as
// every store before key rings) does not: that is the failure as found.
func TestRunningStoreLearnsTheNewKey(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		oldKey, newKey := newKey(t), newKey(t)
		src := newKeySource(oldKey)
		clock := storetest.NewClock(time.Time{})
		running := serving(t, b, clock, oldKey, src.load)
		fixed := b.Reopen(t, running, store.Options{Now: clock.Now, Keyring: seal.NewKeyring(oldKey)})
		addKey(t, running, "kid-1", []byte("der 1"))
		u := &store.User{Username: "alice", PasswordHash: "$argon2id$fake"}
		if err := running.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := running.EnrollTOTP(ctx, u.ID, "KRSXG5CTMVRXEZLUKN2XAZLDNFZGK5BB", 0, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := running.EnsureSecret(ctx, "client_secret:cli", "s3cret"); err != nil {
			t.Fatal(err)
		}

		// The rotation: the source lists the new key above the old one,
		// then everything is sealed again under the new key.
		src.set(newKey, oldKey)
		rot := b.Reopen(t, running, store.Options{Now: clock.Now, Keyring: seal.NewKeyring(newKey, oldKey)})
		if _, err := rot.ResealSecrets(ctx, isSecret, nil); err != nil {
			t.Fatal(err)
		}
		if got := sealedUnder(t, running); len(got) != 1 || got[newKey.ID()] != 3 {
			t.Fatalf("sealed under %v, want the 3 values under the new key %s alone", got, newKey.ID())
		}
		for name, read := range map[string]func(*store.Store) error{
			"a signing key": func(s *store.Store) error { _, err := s.SigningKeys(ctx); return err },
			"a TOTP secret": func(s *store.Store) error { _, _, err := s.TOTPSecret(ctx, u.ID); return err },
			"a secret value": func(s *store.Store) error {
				v, err := s.Secret(ctx, "client_secret:cli")
				if err == nil && v != "s3cret" {
					err = fmt.Errorf("opened to %q", v)
				}
				return err
			},
		} {
			if err := read(running); err != nil {
				t.Errorf("the running store, after the rotation: %s: %v", name, err)
			}
			if err := read(fixed); !errors.Is(err, seal.ErrUnknownKey) {
				t.Errorf("a store with fixed keys, after the rotation: %s: %v, want ErrUnknownKey", name, err)
			}
		}
		if ids := running.Keyring().IDs(); !slices.Equal(ids, []string{newKey.ID(), oldKey.ID()}) {
			t.Fatalf("the running store holds %v, want the new key then the old one", ids)
		}
		// It seals new values with the new key, as the database says.
		if _, err := running.EnsureSecret(ctx, "auth_request_key", "k"); err != nil {
			t.Fatal(err)
		}
		if id := seal.KeyID(rawValue(t, running, "auth_request_key")); id != newKey.ID() {
			t.Fatalf("a value sealed after the rotation names key %s, want the new one %s", id, newKey.ID())
		}
	})
}

// TestSealersUseTheDatabasesKey: a server given the new key first (the
// rolling restart before a rotation) goes on sealing with the key the
// database names, which servers not yet restarted hold; after the
// rotation it seals with the new key. A process lacking the database's key
// refuses to seal, naming the key id.
func TestSealersUseTheDatabasesKey(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		oldKey, newKey := newKey(t), newKey(t)
		oldOnly := b.Open(t, store.Options{Keyring: seal.NewKeyring(oldKey)})
		if id, err := oldOnly.EnsureSealingKey(ctx); err != nil || id != oldKey.ID() {
			t.Fatalf("EnsureSealingKey = %s, %v; want %s", id, err, oldKey.ID())
		}
		restarted := b.Reopen(t, oldOnly, store.Options{Keyring: seal.NewKeyring(newKey, oldKey)})
		if id, err := restarted.EnsureSealingKey(ctx); err != nil || id != oldKey.ID() {
			t.Fatalf("a second start changed the sealing key: %s, %v", id, err)
		}
		u := &store.User{Username: "bob", PasswordHash: "$argon2id$fake"}
		if err := restarted.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := restarted.EnrollTOTP(ctx, u.ID, "GEZDGNBVGY3TQOJQ", 0, nil); err != nil {
			t.Fatal(err)
		}
		addKey(t, restarted, "kid-1", []byte("der"))
		if got := sealedUnder(t, restarted); got[oldKey.ID()] != 2 || len(got) != 1 {
			t.Fatalf("before the rotation, sealed under %v; want both values under the old key %s", got, oldKey.ID())
		}
		if _, _, err := oldOnly.TOTPSecret(ctx, u.ID); err != nil {
			t.Fatalf("a server with the old key alone cannot read what a restarted one sealed: %v", err)
		}

		if _, err := restarted.ResealSecrets(ctx, isSecret, nil); err != nil {
			t.Fatal(err)
		}
		if id, err := restarted.SealingKeyID(ctx); err != nil || id != newKey.ID() {
			t.Fatalf("SealingKeyID after the rotation = %s, %v; want %s", id, err, newKey.ID())
		}
		addKey(t, restarted, "kid-2", []byte("der 2"))
		if id := seal.KeyID(rawKey(t, restarted, "kid-2")); id != newKey.ID() {
			t.Fatalf("a key added after the rotation is sealed under %s, want %s", id, newKey.ID())
		}
		err := oldOnly.UpdateSigningKeys(ctx, func([]store.SigningKey) (store.KeyChange, error) { return store.KeyChange{}, nil })
		var ke *seal.KeyError
		if !errors.As(err, &ke) || ke.ID != newKey.ID() {
			t.Fatalf("a store without the database's key: %v, want a KeyError naming %s", err, newKey.ID())
		}
		v := &store.User{Username: "carol", PasswordHash: "$argon2id$fake"}
		if err := oldOnly.CreateUser(ctx, v); err != nil {
			t.Fatal(err)
		}
		if err := oldOnly.EnrollTOTP(ctx, v.ID, "GEZDGNBVGY3TQOJQ", 0, nil); !errors.Is(err, seal.ErrUnknownKey) {
			t.Fatalf("sealing without the database's key = %v, want ErrUnknownKey", err)
		}
	})
}

// TestFirstRecordOfTheSealingKey: a database from before the record was
// kept, first started by a server given a new key above the one in use,
// records the key in use (that of its newest signing key); a new database
// records the store's newest key.
func TestFirstRecordOfTheSealingKey(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		oldKey, newKey := newKey(t), newKey(t)
		fresh := b.Open(t, store.Options{Keyring: seal.NewKeyring(newKey, oldKey)})
		if id, err := fresh.EnsureSealingKey(ctx); err != nil || id != newKey.ID() {
			t.Fatalf("a new database: EnsureSealingKey = %s, %v; want the newest key %s", id, err, newKey.ID())
		}
		upgraded := b.Open(t, store.Options{Keyring: seal.NewKeyring(oldKey)})
		addKey(t, upgraded, "kid-1", []byte("der"))
		both := b.Reopen(t, upgraded, store.Options{Keyring: seal.NewKeyring(newKey, oldKey)})
		if id, err := both.EnsureSealingKey(ctx); err != nil || id != oldKey.ID() {
			t.Fatalf("a database in use: EnsureSealingKey = %s, %v; want the key in use %s", id, err, oldKey.ID())
		}
	})
}

// TestRotationRefusal: the ready callback of a rotation sees the live key
// holders (not the expired ones, which KeyHolders removes), and its
// refusal changes nothing.
func TestRotationRefusal(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Time{})
		oldKey, newKey := newKey(t), newKey(t)
		s := serving(t, b, clock, oldKey, nil)
		addKey(t, s, "kid-1", []byte("der"))
		now := clock.Now()
		for _, h := range []store.KeyHolder{
			{ID: "live", Host: "h1", PID: 1, Source: "NSAUTH_SECRET_KEY", KeyIDs: []string{oldKey.ID()}, Seen: now, Expires: now.Add(time.Minute)},
			{ID: "ready", Host: "h2", PID: 2, Source: "NSAUTH_SECRET_KEY", KeyIDs: []string{newKey.ID(), oldKey.ID()}, Seen: now, Expires: now.Add(time.Minute)},
			{ID: "gone", Host: "h3", PID: 3, Source: "NSAUTH_SECRET_KEY", KeyIDs: []string{oldKey.ID()}, Seen: now.Add(-2 * time.Minute), Expires: now.Add(-time.Minute)},
		} {
			if err := s.PublishKeyHolder(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PublishKeyHolder(ctx, store.KeyHolder{ID: "x", KeyIDs: []string{"a"}, Seen: now, Expires: now}); err == nil {
			t.Fatal("a record that expires as it is made was accepted")
		}
		refusal := errors.New("a live holder lacks the new key")
		var seen []string
		refuseLacking := func(hs []store.KeyHolder) error {
			for _, h := range hs {
				seen = append(seen, h.ID)
				if !h.Holds(newKey.ID()) {
					return refusal
				}
			}
			return nil
		}
		rot := b.Reopen(t, s, store.Options{Now: clock.Now, Keyring: seal.NewKeyring(newKey, oldKey)})
		_, err := rot.ResealSecrets(ctx, isSecret, refuseLacking)
		if !errors.Is(err, refusal) || !slices.Equal(seen, []string{"live"}) && !slices.Equal(seen, []string{"live", "ready"}) {
			t.Fatalf("ResealSecrets = %v after seeing %v; want the refusal, after seeing the live holders only", err, seen)
		}
		if id, _ := s.SealingKeyID(ctx); id != oldKey.ID() {
			t.Fatalf("a refused rotation switched the sealing key to %s", id)
		}
		if got := sealedUnder(t, s); got[oldKey.ID()] != 1 || len(got) != 1 {
			t.Fatalf("a refused rotation sealed again: %v", got)
		}

		live, err := s.KeyHolders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range live {
			ids = append(ids, h.ID+"@"+h.Host)
		}
		if !slices.Equal(ids, []string{"live@h1", "ready@h2"}) {
			t.Fatalf("KeyHolders = %v, want the two live ones", ids)
		}
		if vals, _ := store.RawAllForTest(s, `SELECT value FROM nsauth_instance_values WHERE name = 'key_holder:gone'`); len(vals) != 0 {
			t.Fatal("the expired record was kept")
		}
		if err := s.RemoveKeyHolder(ctx, "live"); err != nil {
			t.Fatal(err)
		}
		if n, err := rot.ResealSecrets(ctx, isSecret, refuseLacking); err != nil || n.SigningKeys != 1 {
			t.Fatalf("with every live holder ready: %+v, %v", n, err)
		}
	})
}

// TestReloadKeysRetiresOnlyWhatNothingNeeds: a key the source no longer
// lists is dropped once nothing in the database needs it, and kept (with
// an error naming it) while something does.
func TestReloadKeysRetiresOnlyWhatNothingNeeds(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		oldKey, newKey := newKey(t), newKey(t)
		src := newKeySource(oldKey)
		s := serving(t, b, storetest.NewClock(time.Time{}), oldKey, src.load)
		addKey(t, s, "kid-1", []byte("der"))

		src.set(newKey, oldKey)
		if ring, err := s.ReloadKeys(ctx); err != nil || !slices.Equal(ring.IDs(), []string{newKey.ID(), oldKey.ID()}) {
			t.Fatalf("ReloadKeys with a key added = %v, %v", ring.IDs(), err)
		}
		// The old key taken out too early: kept, as the values need it.
		src.set(newKey)
		ring, err := s.ReloadKeys(ctx)
		var ke *seal.KeyError
		if !errors.As(err, &ke) || ke.ID != oldKey.ID() || !ring.Has(oldKey.ID()) || !s.Keyring().Has(oldKey.ID()) {
			t.Fatalf("ReloadKeys without the key in use = %v, %v; want it kept, and an error naming it", ring.IDs(), err)
		}
		if ring, err := s.ReloadKeys(ctx); !errors.As(err, &ke) || !ring.Has(oldKey.ID()) {
			t.Fatalf("ReloadKeys again, nothing changed = %v, %v; want the key kept and the same error", ring.IDs(), err)
		}
		if _, err := s.SigningKeys(ctx); err != nil {
			t.Fatalf("after the early retirement: %v", err)
		}
		if _, err := s.ResealSecrets(ctx, isSecret, nil); err != nil {
			t.Fatal(err)
		}
		if ring, err := s.ReloadKeys(ctx); err != nil || !slices.Equal(ring.IDs(), []string{newKey.ID()}) {
			t.Fatalf("ReloadKeys once nothing needs the old key = %v, %v; want the new key alone", ring.IDs(), err)
		}
	})
}

// TestNoValueSealedBehindARotation: values sealed while a rotation runs,
// by a server that holds both keys and seals with the old one until the
// rotation, all end up under the new key: each sealer either finishes
// before the rotation reads the values or reads the new key. Afterwards
// the new key alone opens everything.
func TestNoValueSealedBehindARotation(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Time{})
		oldKey, newKey := newKey(t), newKey(t)
		first := serving(t, b, clock, oldKey, nil)
		server := b.Reopen(t, first, store.Options{Now: clock.Now, Keyring: seal.NewKeyring(newKey, oldKey)})
		const sealers = 12
		users := make([]*store.User, sealers)
		for i := range users {
			users[i] = &store.User{Username: fmt.Sprintf("u%d", i), PasswordHash: "$argon2id$fake"}
			if err := server.CreateUser(ctx, users[i]); err != nil {
				t.Fatal(err)
			}
		}
		rot := b.Reopen(t, first, store.Options{Now: clock.Now, Keyring: seal.NewKeyring(newKey, oldKey)})
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 4*sealers+1)
		for i, u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs <- server.EnrollTOTP(ctx, u.ID, "GEZDGNBVGY3TQOJQ", 0, nil)
				p := &store.PendingMFA{AuthRequestID: "a", UserID: u.ID, Kind: store.PendingEnroll, TOTPSecret: "KRSXG5CTMVRXEZLU", ExpiresAt: clock.Now().Add(time.Hour)}
				errs <- server.CreatePendingMFA(ctx, p, fmt.Sprintf("tok-%d", i))
				_, err := server.EnsureSecret(ctx, fmt.Sprintf("client_secret:c%d", i), "v")
				errs <- err
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := rot.ResealSecrets(ctx, isSecret, nil)
			errs <- err
		}()
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := sealedUnder(t, first); got[oldKey.ID()] != 0 || got[newKey.ID()] != 3*sealers {
			t.Fatalf("after the rotation, values sealed under %v; want all %d under the new key %s", got, 3*sealers, newKey.ID())
		}
		if err := b.Reopen(t, first, store.Options{Keyring: seal.NewKeyring(newKey)}).CheckSecrets(ctx); err != nil {
			t.Fatalf("the new key alone: %v", err)
		}
	})
}
