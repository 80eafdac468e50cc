package backuprestore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// people are the users a test adds besides the administrator: tom with a
// password and a one-time code, pat with a passkey.
type people struct {
	totpSecret string
	passkey    *softKey
}

// addPeople adds tom and pat to the SQLite store in dir, under key.
func addPeople(t *testing.T, dir, key, issuerURL string) people {
	t.Helper()
	ctx := context.Background()
	k, err := seal.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, dir, store.Options{Keyring: seal.NewKeyring(k)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hash, err := password.Hash(userPassword)
	if err != nil {
		t.Fatal(err)
	}
	tom, pat := &store.User{Username: "tom", PasswordHash: hash}, &store.User{Username: "pat", PasswordHash: hash}
	for _, u := range []*store.User{tom, pat} {
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	secret, _, err := secondfactor.NewTOTP("nsauth", "tom")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnrollTOTP(ctx, tom.ID, secret, 0, secondfactor.NewRecoveryCodes()); err != nil {
		t.Fatal(err)
	}
	pk := newSoftKey(t, issuerURL, pat.ID)
	if err := st.AddPasskey(ctx, &store.Passkey{UserID: pat.ID, Name: "soft key", CredentialID: pk.id, PublicKey: pk.cose(),
		UserVerified: true, AttestationType: "none", Transports: []string{"internal"}, AAGUID: make([]byte, 16)}); err != nil {
		t.Fatal(err)
	}
	return people{totpSecret: secret, passkey: pk}
}

// wantCode fails unless err is a Connect error with code.
func wantCode(t *testing.T, what string, err error, code connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != code || err == nil {
		t.Errorf("%s: got %v, want %v", what, err, code)
	}
}

// load is traffic against a server from concurrent goroutines over HTTP:
// sessions refreshing (each keeps the chain of its refresh tokens), full
// logins, and logins revoked at once.
type load struct {
	n        *node
	stop     chan struct{}
	wg       sync.WaitGroup
	inFlight atomic.Int64
	ops      atomic.Int64
	mu       sync.Mutex
	chains   [][]session
}

func (l *load) do(f func()) {
	l.inFlight.Add(1)
	f()
	l.inFlight.Add(-1)
	l.ops.Add(1)
}

func (l *load) run(t *testing.T, refreshers, loginers, revokers int) {
	loop := func(body func()) {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				body()
			}
		}()
	}
	for range refreshers {
		l.chains = append(l.chains, []session{l.n.login(t, "admin", adminPassword)})
	}
	for i := range refreshers {
		loop(func() {
			l.mu.Lock()
			last := l.chains[i][len(l.chains[i])-1]
			l.mu.Unlock()
			var next session
			var err error
			l.do(func() { next, err = l.n.refresh(last.refresh) })
			if err != nil {
				t.Errorf("refresh under load: %v", err)
				<-l.stop
				return
			}
			l.mu.Lock()
			l.chains[i] = append(l.chains[i], next)
			l.mu.Unlock()
			l.do(func() { err = l.n.check(next.access) })
			if err != nil {
				t.Errorf("CheckToken under load: %v", err)
			}
		})
	}
	for range loginers {
		loop(func() { l.do(func() { l.n.login(t, "admin", adminPassword) }) })
	}
	for range revokers {
		loop(func() {
			l.do(func() {
				s := l.n.login(t, "admin", adminPassword)
				if err := l.n.revoke(s.refresh); err != nil {
					t.Errorf("RevokeCli under load: %v", err)
				}
			})
		})
	}
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestBackupUnderLoadRestores takes a backup with `nsauth-server backup`
// while logins, refreshes and revocations are in flight over HTTP,
// restores it with `nsauth-server restore` into a new data directory and
// serves it: people log in (password, one-time code, passkey), sessions
// refresh, revoked ones stay revoked, and the sessions that were rotating
// during the backup go on from the token the snapshot holds.
func TestBackupUnderLoadRestores(t *testing.T) {
	t.Parallel()
	key := seal.GenerateKey()
	dirA := filepath.Join(t.TempDir(), "a")
	a := startNode(t, map[string]string{"NSAUTH_DATA_DIR": dirA, "NSAUTH_SECRET_KEY": key}, 0)
	who := addPeople(t, dirA, key, a.url)
	a.loginPasskey(t, who.passkey) // the passkey works before the backup

	var idle, revoked []session
	for range 3 {
		idle = append(idle, a.login(t, "admin", adminPassword))
		s := a.login(t, "admin", adminPassword)
		if err := a.revoke(s.refresh); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "refresh of a revoked token before the backup", errOf(a.refresh(s.refresh)), connect.CodeUnauthenticated)
		wantCode(t, "CheckToken of a revoked session before the backup", a.check(s.access), connect.CodeUnauthenticated)
		revoked = append(revoked, s)
	}

	l := &load{n: a, stop: make(chan struct{})}
	l.run(t, 3, 2, 2)
	waitFor(t, "traffic", func() bool { return l.ops.Load() >= 20 })
	waitFor(t, "requests in flight", func() bool { return l.inFlight.Load() >= 2 })
	inFlight, opsBefore := l.inFlight.Load(), l.ops.Load()
	file := filepath.Join(t.TempDir(), "nsauth.backup")
	started := time.Now()
	code, out, errOut := runCommand(t, map[string]string{}, "backup", "--data-dir", dirA, file)
	took := time.Since(started)
	opsAfter := l.ops.Load()
	waitFor(t, "traffic after the backup", func() bool { return l.ops.Load() >= opsAfter+20 })
	close(l.stop)
	l.wg.Wait()
	if code != 0 || !strings.Contains(out, "backed up") || !strings.Contains(out, "secret key is not in the backup") {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("backup under load: %d requests in flight at its start, %d completed during it, %s; %s", inFlight, opsAfter-opsBefore, took.Round(time.Millisecond), strings.TrimSpace(out))
	if opsAfter == opsBefore {
		t.Errorf("no request completed while the backup ran (%s): it was not taken under load", took)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if raw, err := os.ReadFile(file); err != nil || strings.Contains(string(raw), key) {
		t.Fatalf("the backup holds the secret key (or does not read: %v)", err)
	}

	dirB := filepath.Join(t.TempDir(), "b")
	code, out, errOut = runCommand(t, map[string]string{"NSAUTH_SECRET_KEY": key}, "restore", "--data-dir", dirB, file)
	if code != 0 || !strings.Contains(out, "restored") {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("restore: %s", strings.TrimSpace(out))
	if code := a.srv.Stop(t); code != 0 {
		t.Fatalf("the server backed up exited with %d", code)
	}
	b := startNode(t, map[string]string{"NSAUTH_DATA_DIR": dirB, "NSAUTH_SECRET_KEY": key}, a.port)

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"the administrator logs in with a password", func(t *testing.T) {
			s := b.login(t, "admin", adminPassword)
			if err := b.check(s.access); err != nil {
				t.Error(err)
			}
		}},
		{"a user logs in with a one-time code", func(t *testing.T) {
			b.loginTOTP(t, "tom", userPassword, who.totpSecret)
		}},
		{"a user logs in with a passkey", func(t *testing.T) {
			b.loginPasskey(t, who.passkey)
		}},
		{"sessions idle during the backup check and refresh", func(t *testing.T) {
			for i, s := range idle {
				if err := b.check(s.access); err != nil {
					t.Errorf("session %d: CheckToken of its access token from before the backup: %v", i, err)
				}
				next, err := b.refresh(s.refresh)
				if err != nil {
					t.Errorf("session %d: refresh: %v", i, err)
					continue
				}
				if err := b.check(next.access); err != nil {
					t.Errorf("session %d: CheckToken after the refresh: %v", i, err)
				}
			}
		}},
		{"sessions revoked before the backup stay revoked", func(t *testing.T) {
			for _, s := range revoked {
				wantCode(t, "refresh", errOf(b.refresh(s.refresh)), connect.CodeUnauthenticated)
				wantCode(t, "CheckToken", b.check(s.access), connect.CodeUnauthenticated)
			}
		}},
		{"sessions refreshing during the backup go on from the snapshot's token", func(t *testing.T) {
			for i, chain := range l.chains {
				resumed := -1
				// Newest first: tokens minted after the snapshot are
				// unknown to it; the first one it knows is its current
				// one (presenting an older one would be reuse).
				for j := len(chain) - 1; j >= 0; j-- {
					next, err := b.refresh(chain[j].refresh)
					if err == nil {
						if err := b.check(next.access); err != nil {
							t.Errorf("session %d: CheckToken after resuming: %v", i, err)
						}
						resumed = j
						break
					}
					wantCode(t, "a refresh token minted after the snapshot", err, connect.CodeUnauthenticated)
				}
				if resumed < 0 {
					t.Errorf("session %d: none of its %d refresh tokens refreshes on the restored server", i, len(chain))
					continue
				}
				t.Logf("session %d: resumed from token %d of %d (%d minted after the snapshot)", i, resumed+1, len(chain), len(chain)-1-resumed)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.check)
	}
}

func errOf(_ session, err error) error { return err }

// TestRestoreRefuses: what restore (and backup) refuse, and that a refused
// restore leaves the data directory as it found it.
func TestRestoreRefuses(t *testing.T) {
	t.Parallel()
	key, otherKey := seal.GenerateKey(), seal.GenerateKey()
	dirA := filepath.Join(t.TempDir(), "a")
	a := startNode(t, map[string]string{"NSAUTH_DATA_DIR": dirA, "NSAUTH_SECRET_KEY": key}, 0)
	a.login(t, "admin", adminPassword)
	file := filepath.Join(t.TempDir(), "nsauth.backup")
	if code, out, errOut := runCommand(t, map[string]string{}, "backup", "--data-dir", dirA, file); code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	notBackup := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notBackup, []byte("not a database\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		env  map[string]string
		// dir prepares the data directory (nil: none exists).
		dir  func(t *testing.T, dir string)
		args func(dir string) []string
		want []string
		// ok: the command succeeds; else it fails and changes nothing.
		ok bool
	}{
		{name: "a data directory that is not empty", env: map[string]string{"NSAUTH_SECRET_KEY": key},
			dir:  func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "nsauth.db"), "data") },
			want: []string{"is not empty", "a restore never replaces data"}},
		{name: "no secret key", env: map[string]string{},
			want: []string{"the secret key is missing", "NSAUTH_SECRET_KEY or NSAUTH_SECRET_KEY_FILE", "secret.key"}},
		{name: "the wrong secret key", env: map[string]string{"NSAUTH_SECRET_KEY": otherKey},
			want: []string{"restored nothing", "the secret key is wrong", "NSAUTH_SECRET_KEY or NSAUTH_SECRET_KEY_FILE"}},
		{name: "the wrong key file in the data directory", env: map[string]string{},
			dir:  func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "secret.key"), otherKey) },
			want: []string{"the secret key is wrong", "secret.key"}},
		{name: "not a backup", env: map[string]string{"NSAUTH_SECRET_KEY": key},
			args: func(dir string) []string { return []string{"restore", "--data-dir", dir, notBackup} },
			want: []string{"is not a backup of nsauth's SQLite database"}},
		{name: "a backup over an existing file", env: map[string]string{},
			args: func(string) []string { return []string{"backup", "--data-dir", dirA, notBackup} },
			want: []string{"exists", "never overwrites"}},
		{name: "a PostgreSQL backup is pg_dump's", env: map[string]string{"NSAUTH_DATABASE_URL": "postgres://nsauth:hunter2@db.example:5432/auth?search_path=idp&sslmode=require"},
			args: func(string) []string { return []string{"backup", "/backup/nsauth.dump"} },
			want: []string{"pg_dump --format=custom --schema=idp --file=/backup/nsauth.dump 'postgres://nsauth@db.example:5432/auth?sslmode=require'", "PGPASSWORD"}},
		{name: "a PostgreSQL restore is pg_restore's or psql's", env: map[string]string{"NSAUTH_DATABASE_URL": "postgres://nsauth:hunter2@db.example:5432/auth2?search_path=idp"},
			args: func(string) []string { return []string{"restore", "/backup/nsauth.dump"} },
			want: []string{"pg_restore --no-owner --exit-on-error --dbname=postgres://nsauth@db.example:5432/auth2 /backup/nsauth.dump", "psql --set=ON_ERROR_STOP=1", "NSAUTH_SECRET_KEY"}},
		{name: "the right key file in the data directory", env: map[string]string{}, ok: true,
			dir:  func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "secret.key"), key) },
			want: []string{"restored", "opens its secrets"}},
		{name: "the right key", env: map[string]string{"NSAUTH_SECRET_KEY": key}, ok: true,
			want: []string{"restored", "start the server with the same secret key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "restored")
			if tc.dir != nil {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				tc.dir(t, dir)
			}
			before := listDir(t, dir)
			args := []string{"restore", "--data-dir", dir, file}
			if tc.args != nil {
				args = tc.args(dir)
			}
			code, out, errOut := runCommand(t, tc.env, args...)
			said := out + errOut
			if (code == 0) != tc.ok {
				t.Fatalf("exit %d, want success %v:\n%s", code, tc.ok, said)
			}
			for _, w := range tc.want {
				if !strings.Contains(said, w) {
					t.Errorf("the command said:\n%s\nwant %q in it", said, w)
				}
			}
			for _, secret := range []string{key, otherKey, "hunter2"} {
				if strings.Contains(said, secret) {
					t.Errorf("the command's output shows a secret: %s", said)
				}
			}
			if tc.ok {
				if _, err := os.Stat(filepath.Join(dir, store.SQLiteFileName)); err != nil {
					t.Errorf("no database in the restored directory: %v", err)
				}
				return
			}
			if after := listDir(t, dir); after != before {
				t.Errorf("a refused command changed the data directory: %q, was %q", after, before)
			}
		})
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// listDir names what dir holds, "(none)" when it does not exist.
func listDir(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "(none)"
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}
