package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/pquerna/otp/totp"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// The tests of rotating the secret key while servers run. They use only
// what a person has: `nsauth serve` (servetest), `nsauth keys
// rotate-secret-key` (cli.Run), logins through the login page with a
// one-time code (whose secret is sealed), RefreshCli and CheckToken.

// rotationClock is the servers' clock: real time plus an offset the test
// moves forward, so that a user's one-time code is fresh and the signing
// keys are read again from the database (every minute).
type rotationClock struct{ offset atomic.Int64 }

func (c *rotationClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *rotationClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// totpUser is a user with a password and an authenticator app, whose
// secret the provider keeps sealed under the secret key.
type totpUser struct{ name, secret string }

const totpUserPassword = "rotation-test-password"

var totpUserHash = sync.OnceValues(func() (string, error) { return password.Hash(totpUserPassword) })

// addTOTPUsers creates n users with one-time codes, as `nsauth users add`
// and `nsauth users totp enroll` would, with keys as those commands are
// given them.
func addTOTPUsers(t *testing.T, b *sealedBackend, keys config.SecretKeys, prefix string, n int) []totpUser {
	t.Helper()
	hash, err := totpUserHash()
	if err != nil {
		t.Fatal(err)
	}
	st, err := app.OpenKeyedStore(context.Background(), config.Store{DataDir: b.dir, DatabaseURL: b.pgURL}, keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	users := make([]totpUser, n)
	for i := range users {
		raw := make([]byte, 20)
		_, _ = rand.Read(raw)
		users[i] = totpUser{name: fmt.Sprintf("%s%d", prefix, i), secret: base32.StdEncoding.EncodeToString(raw)}
		u := &store.User{Username: users[i].name, PasswordHash: hash}
		if err := st.CreateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		if err := st.EnrollTOTP(context.Background(), u.ID, users[i].secret, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	return users
}

// loginTOTP logs u in on s through the login page (password, then a
// one-time code at the server's time now) and LoginCli, and returns the
// tokens. It fails the test when any step is refused.
func loginTOTP(t *testing.T, s *servetest.Server, u totpUser, now time.Time) *mgmtv1alpha1.AccessToken {
	t.Helper()
	return loginTOTPAt(t, s.URL, inProcessBrowser(t, s.App, sealedIssuer), u, now)
}

// loginTOTPAt is loginTOTP against the server at base, with browser b.
func loginTOTPAt(t *testing.T, base string, b *issuertest.Browser, u totpUser, now time.Time) *mgmtv1alpha1.AccessToken {
	t.Helper()
	return cliLogin(t, base, func(authorizeURL string) *url.URL {
		page := b.Open(t, authorizeURL)
		if page.Response.StatusCode != http.StatusOK {
			t.Fatalf("%s: authorize answered HTTP %d", u.name, page.Response.StatusCode)
		}
		page = b.Submit(t, page, u.name, totpUserPassword)
		if page.Response.StatusCode != http.StatusOK || !strings.Contains(page.Body, `action="/login/mfa"`) {
			t.Fatalf("%s: the password did not lead to the second-factor page: HTTP %d\n%s", u.name, page.Response.StatusCode, pageText(page.Body))
		}
		code, err := totp.GenerateCode(u.secret, now)
		if err != nil {
			t.Fatal(err)
		}
		page = b.Post(t, page, "/login/mfa", url.Values{"method": {"totp"}, "code": {code}})
		if page.Response.StatusCode == http.StatusOK && strings.Contains(page.Body, `action="/login/passkey/skip"`) {
			page = b.Post(t, page, "/login/passkey/skip", nil)
		}
		loc, err := issuertest.RedirectOf(page)
		if err != nil {
			t.Fatalf("%s: the one-time code did not log in: %s", u.name, pageText(page.Body))
		}
		return loc
	})
}

// pageText is a page without its markup, for failure messages.
func pageText(body string) string {
	var b strings.Builder
	in := false
	for _, r := range body {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
			b.WriteByte(' ')
		case !in:
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// refresh rotates tok's refresh token on s and checks the new access
// token there.
func refresh(t *testing.T, s *servetest.Server, tok *mgmtv1alpha1.AccessToken) *mgmtv1alpha1.AccessToken {
	t.Helper()
	return refreshAt(t, s.URL, tok)
}

// refreshAt is refresh against the server at base.
func refreshAt(t *testing.T, base string, tok *mgmtv1alpha1.AccessToken) *mgmtv1alpha1.AccessToken {
	t.Helper()
	api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, base)
	resp, err := api.RefreshCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: tok.GetRefreshToken()}))
	if err != nil {
		t.Fatalf("RefreshCli: %v", err)
	}
	if err := checkToken(base, resp.Msg.GetAccessToken().GetAccessToken()); err != nil {
		t.Fatalf("CheckToken of a refreshed token: %v", err)
	}
	return resp.Msg.GetAccessToken()
}

// rotate runs `nsauth keys rotate-secret-key` with exactly env, and
// returns its exit code and what it printed, after checking it printed
// no key.
func rotate(t *testing.T, env map[string]string, keyTexts ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	a := &cli.App{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr, Getenv: servetest.Env(env)}
	code := cli.Run(context.Background(), a, []string{"keys", "rotate-secret-key"}, servercmd.Commands...)
	out := stdout.String() + stderr.String()
	noKeyIn(t, out, env, keyTexts...)
	return code, out
}

// noKeyIn fails the test when out shows one of keyTexts (each a key or a
// list of keys), or a key the data directory of env holds, in any of the
// encodings a key is accepted in.
func noKeyIn(t *testing.T, out string, env map[string]string, keyTexts ...string) {
	t.Helper()
	if dir := env["NSAUTH_DATA_DIR"]; dir != "" {
		if text, err := os.ReadFile(filepath.Join(dir, config.DefaultSecretKeyFile)); err == nil {
			keyTexts = append(keyTexts, strings.Fields(string(text))...)
		}
	}
	for _, k := range keyTexts {
		for _, part := range strings.Split(k, ",") {
			raw, err := base64.StdEncoding.DecodeString(part)
			if part == "" || err != nil {
				continue
			}
			for _, enc := range []string{strings.TrimRight(part, "="), base64.RawURLEncoding.EncodeToString(raw), hex.EncodeToString(raw)} {
				if strings.Contains(out, enc) {
					t.Fatalf("a key was printed:\n%s", out)
				}
			}
		}
	}
}

// wantSaid fails the test unless out says each of want.
func wantSaid(t *testing.T, out string, want ...string) {
	t.Helper()
	var missing []string
	for _, w := range want {
		if !strings.Contains(out, w) {
			missing = append(missing, fmt.Sprintf("%q", w))
		}
	}
	if len(missing) > 0 {
		t.Errorf("rotate-secret-key did not say %s:\n%s", strings.Join(missing, ", "), out)
	}
}

// sealedKeyIDs counts the sealed values at rest by the key id they name.
func sealedKeyIDs(t *testing.T, b *sealedBackend) map[string]int {
	t.Helper()
	db := b.rawDB(t)
	ids := map[string]int{}
	for _, q := range storetest.SealedColumns {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v []byte
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			if seal.IsSealed(v) {
				ids[seal.KeyID(v)]++
			}
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// keyFileIDs are the ids of the keys in the data directory's key file.
func keyFileIDs(t *testing.T, b *sealedBackend) []string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(b.dir, config.DefaultSecretKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range strings.FieldsFunc(string(text), func(r rune) bool { return r == '\n' || r == ',' }) {
		ids = append(ids, keyID(t, k))
	}
	return ids
}

func keyID(t *testing.T, text string) string {
	t.Helper()
	k, err := seal.ParseKey(text)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID()
}

// TestRotateUnderARunningSQLiteServer is the failure as found: `nsauth
// keys rotate-secret-key` run beside a running SQLite server that reads
// the data directory's secret.key. Run as the documentation says (no key
// given), it rotates that file and the server goes on logging users in,
// their one-time-code secrets sealed under the new key. Given a new key in
// NSAUTH_SECRET_KEY, as the finding did, it refuses, naming the server and
// the fix, and changes nothing: before key rings it printed success, and
// the server then answered every such login with an error.
func TestRotateUnderARunningSQLiteServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		given    bool // NSAUTH_SECRET_KEY given to the rotation
		wantCode int
		want     []string
	}{
		{"the key file, rotated", false, 0, []string{"holds the new key alone"}},
		{"a new key given while the server reads the key file", true, 1, []string{
			"refusing to rotate", "1 running server(s)", "pid " + fmt.Sprint(os.Getpid()), "keys from the key file",
			"run this command without NSAUTH_SECRET_KEY", "nothing was sealed again",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newSealedBackend(t, "sqlite")
			clock := &rotationClock{}
			s := servetest.Start(t, servetest.Options{Env: b.env, Args: sealedArgs, Now: clock.Now})
			users := addTOTPUsers(t, b, config.SecretKeys{}, "u", 3)
			oldID := keyFileIDs(t, b)[0]
			before := loginTOTP(t, s, users[0], clock.Now())

			env := b.env
			newKey := seal.GenerateKey()
			if tc.given {
				env = b.with("NSAUTH_SECRET_KEY", newKey)
			}
			code, out := rotate(t, env, newKey)
			if code != tc.wantCode {
				t.Errorf("rotate-secret-key: exit %d, want %d\n%s", code, tc.wantCode, out)
			}
			wantSaid(t, out, tc.want...)

			// The running server: logins with one-time codes (the TOTP
			// secret opened under the new key), refreshes, and, a few
			// minutes on, the signing keys read again.
			after := loginTOTP(t, s, users[1], clock.Now())
			refresh(t, s, before)
			refresh(t, s, after)
			clock.advance(2 * time.Minute)
			refresh(t, s, loginTOTP(t, s, users[2], clock.Now()))

			wantID := oldID // refused: unchanged
			if tc.wantCode == 0 {
				ids := keyFileIDs(t, b)
				if wantID = ids[0]; len(ids) != 1 || wantID == oldID {
					t.Fatalf("after the rotation the key file holds key ids %v, want one new key", ids)
				}
			}
			if got := sealedKeyIDs(t, b); len(got) != 1 || got[wantID] == 0 {
				t.Fatalf("sealed values name keys %v, want all under %s", got, wantID)
			}
			if code := s.Stop(t); code != 0 {
				t.Fatalf("the server failed:\n%s", s.Logs.String())
			}
			// And it starts again as it is configured.
			again := servetest.Start(t, servetest.Options{Env: b.env, Args: sealedArgs, Now: clock.Now})
			clock.advance(time.Minute)
			loginTOTP(t, again, users[0], clock.Now())
		})
	}
}

// keysOf are the secret keys env gives, as a command reads them.
func keysOf(t *testing.T, env map[string]string) config.SecretKeys {
	t.Helper()
	keys, err := config.LoadSecretKeys(nil, servetest.Env(env))
	if err != nil {
		t.Fatal(err)
	}
	return *keys
}

// noKeyErrors fails the test when a server logged that a sealed value
// named a key it lacks.
func noKeyErrors(t *testing.T, servers ...*servetest.Server) {
	t.Helper()
	for i, s := range servers {
		if logs := s.Logs.String(); strings.Contains(logs, "which was not given") {
			t.Errorf("server %d met a key it lacked:\n%s", i, logs)
		}
	}
}

// TestRotationKeepsLoginsGoing rotates the secret key while users log in
// and refresh, simultaneously, on SQLite (one server reading the data
// directory's key file) and on PostgreSQL (two replicas with the keys in
// NSAUTH_SECRET_KEY, given the new key by a rolling restart first). No
// login, refresh or token check fails, before, during or after; afterwards
// every secret is sealed under the new key alone, and the old key can be
// retired.
func TestRotationKeepsLoginsGoing(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newSealedBackend(t, name)
			// Every login comes from the one in-process address, several
			// at once: room for them in its count of attempts.
			b.env["NSAUTH_LOGIN_ATTEMPTS_PER_MINUTE"] = "100"
			clock := &rotationClock{}
			// 36 logins and their refreshes come from one address faster
			// than the default RPC rate limit allows on a fast machine
			// (its budget refills on the real clock): this test is about
			// the rotation, so the limit is raised out of its way.
			args := append(append([]string{}, sealedArgs...), "--rate-limit", "6000")
			start := func(env map[string]string) *servetest.Server {
				return servetest.Start(t, servetest.Options{Env: env, Args: args, Now: clock.Now})
			}
			oldKey, newKey := b.env["NSAUTH_SECRET_KEY"], seal.GenerateKey()
			var servers []*servetest.Server
			rotEnv, keys := b.env, config.SecretKeys{}
			if name == "sqlite" {
				servers = []*servetest.Server{start(b.env)}
			} else {
				a, c := start(b.env), start(b.env)
				// The rolling restart: a replica given the new key first
				// goes on sealing with the old one, which the other,
				// not yet restarted, opens.
				both := b.with("NSAUTH_SECRET_KEY", newKey+","+oldKey)
				if code := a.Stop(t); code != 0 {
					t.Fatalf("exit %d\n%s", code, a.Logs.String())
				}
				a = start(both)
				halfway := addTOTPUsers(t, b, keysOf(t, both), "halfway", 1)[0]
				loginTOTP(t, c, halfway, clock.Now())
				if code := c.Stop(t); code != 0 {
					t.Fatalf("exit %d\n%s", code, c.Logs.String())
				}
				servers = []*servetest.Server{a, start(both)}
				rotEnv, keys = both, keysOf(t, both)
			}
			const workers, perWorker, rotateAfter, resumeAt = 6, 6, 1, 4
			users := addTOTPUsers(t, b, keys, "user", workers*perWorker)

			// Each worker logs its users in one after the other, on the
			// servers in turn, refreshing its previous token on another;
			// the rotation starts once every worker is under way, and
			// the workers go on meanwhile. The last logins wait for its
			// end. (Goroutines, not parallel subtests: those run at most
			// GOMAXPROCS at once. A helper's t.Fatal ends its goroutine,
			// whose deferred calls release the others.)
			var ready, done sync.WaitGroup
			ready.Add(workers)
			rotated := make(chan struct{})
			for w := range workers {
				done.Add(1)
				go func() {
					defer done.Done()
					var once sync.Once
					underWay := func() { once.Do(ready.Done) }
					defer underWay()
					var prev *mgmtv1alpha1.AccessToken
					for i, u := range users[w*perWorker : (w+1)*perWorker] {
						if i == rotateAfter {
							underWay()
						}
						if i == resumeAt {
							<-rotated
						}
						tok := loginTOTP(t, servers[(w+i)%len(servers)], u, clock.Now())
						if prev != nil {
							refresh(t, servers[(w+i+1)%len(servers)], prev)
						}
						prev = tok
					}
				}()
			}
			var out string
			done.Add(1)
			go func() {
				defer done.Done()
				defer close(rotated)
				ready.Wait()
				var code int
				code, out = rotate(t, rotEnv, newKey, oldKey)
				if code != 0 {
					t.Errorf("rotate-secret-key: exit %d\n%s", code, out)
				}
			}()
			done.Wait()
			if t.Failed() {
				return
			}
			var newID string
			if name == "sqlite" {
				// The command made the new key in the key file, and left
				// it there alone.
				ids := keyFileIDs(t, b)
				if len(ids) != 1 {
					t.Fatalf("after the rotation the key file holds key ids %v, want one", ids)
				}
				newID = ids[0]
				wantSaid(t, out, "holds the new key alone")
			} else {
				newID = keyID(t, newKey)
				wantSaid(t, out, "Key id(s) "+keyID(t, oldKey)+" open nothing any more")
			}
			if got := sealedKeyIDs(t, b); len(got) != 1 || got[newID] == 0 {
				t.Fatalf("after the rotation, sealed values name keys %v, want all under the new key %s", got, newID)
			}

			// Minutes later (the signing keys read again), on every server.
			clock.advance(2 * time.Minute)
			late := addTOTPUsers(t, b, keysOf(t, rotEnv), "late", len(servers))
			for i, s := range servers {
				refresh(t, s, loginTOTP(t, s, late[i], clock.Now()))
			}
			noKeyErrors(t, servers...)
			if name == "postgres" {
				// Retiring the old key: a replica restarted with the new
				// one alone starts and logs in.
				if code := servers[0].Stop(t); code != 0 {
					t.Fatalf("exit %d\n%s", code, servers[0].Logs.String())
				}
				alone := start(b.with("NSAUTH_SECRET_KEY", newKey))
				clock.advance(time.Minute)
				refresh(t, servers[1], loginTOTP(t, alone, late[0], clock.Now()))
			}
		})
	}
}

// TestRotationRefusesToStrandAReplica: two replicas on one PostgreSQL
// database, one given the new key and one not. The rotation refuses,
// naming the one without it and how to give it the key, and changes
// nothing: both go on logging users in. Once that replica is restarted
// with the new key, the rotation runs, and both go on. Each replica's
// record of the keys it holds goes when it stops.
func TestRotationRefusesToStrandAReplica(t *testing.T) {
	t.Parallel()
	b := newSealedBackend(t, "postgres")
	clock := &rotationClock{}
	start := func(env map[string]string) *servetest.Server {
		return servetest.Start(t, servetest.Options{Env: env, Args: sealedArgs, Now: clock.Now})
	}
	oldKey, newKey := b.env["NSAUTH_SECRET_KEY"], seal.GenerateKey()
	oldID, newID := keyID(t, oldKey), keyID(t, newKey)
	both := b.with("NSAUTH_SECRET_KEY", newKey+","+oldKey)
	lagging := start(b.env) // the first deployment, with one key
	ready := start(both)    // a replica given the new key first
	users := addTOTPUsers(t, b, keysOf(t, both), "user", 6)

	holders := func() []store.KeyHolder {
		t.Helper()
		st, err := app.OpenStore(context.Background(), config.Store{DatabaseURL: b.pgURL}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		hs, err := st.KeyHolders(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return hs
	}
	var held []string
	for _, h := range holders() {
		held = append(held, strings.Join(h.KeyIDs, "+")+" from "+h.Source)
	}
	slices.Sort(held)
	want := []string{newID + "+" + oldID + " from NSAUTH_SECRET_KEY", oldID + " from NSAUTH_SECRET_KEY"}
	if slices.Sort(want); !slices.Equal(held, want) {
		t.Fatalf("the replicas published %q, want %q", held, want)
	}

	code, out := rotate(t, both, newKey, oldKey)
	if code != 1 {
		t.Fatalf("rotate-secret-key with a replica lacking the new key: exit %d, want 1\n%s", code, out)
	}
	wantSaid(t, out, "refusing to rotate", "1 running server(s) do not hold the new key (id "+newID+")",
		"keys from NSAUTH_SECRET_KEY (key ids "+oldID+")", `restart it with NSAUTH_SECRET_KEY="<new key>,<current key>"`, "nothing was sealed again")
	if strings.Contains(out, "key ids "+newID) {
		t.Errorf("the refusal names the replica that holds the new key:\n%s", out)
	}
	if got := sealedKeyIDs(t, b); len(got) != 1 || got[oldID] == 0 {
		t.Fatalf("a refused rotation left sealed values under %v, want all under the old key %s", got, oldID)
	}
	refresh(t, ready, loginTOTP(t, lagging, users[0], clock.Now()))
	refresh(t, lagging, loginTOTP(t, ready, users[1], clock.Now()))

	// The fix the refusal names: restart the replica with both keys.
	if code := lagging.Stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, lagging.Logs.String())
	}
	lagging = start(both)
	if code, out := rotate(t, both, newKey, oldKey); code != 0 {
		t.Fatalf("rotate-secret-key once every replica holds the new key: exit %d\n%s", code, out)
	}
	if got := sealedKeyIDs(t, b); len(got) != 1 || got[newID] == 0 {
		t.Fatalf("after the rotation sealed values name %v, want all under the new key %s", got, newID)
	}
	clock.advance(2 * time.Minute)
	refresh(t, ready, loginTOTP(t, lagging, users[2], clock.Now()))
	refresh(t, lagging, loginTOTP(t, ready, users[3], clock.Now()))
	noKeyErrors(t, ready, lagging)

	for _, s := range []*servetest.Server{ready, lagging} {
		if code := s.Stop(t); code != 0 {
			t.Fatalf("exit %d\n%s", code, s.Logs.String())
		}
	}
	if hs := holders(); len(hs) != 0 {
		t.Fatalf("stopped replicas left records of their keys: %+v", hs)
	}
}
