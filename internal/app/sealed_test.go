package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// legacySecretNames are the instance values an nsauth from before sealing
// kept in clear; secretNames all those the provider keeps secret now.
var (
	legacySecretNames = []string{"client_secret:" + issuer.DefaultClientID, "auth_request_key", "device_cookie_key"}
	secretNames       = append(slices.Clone(legacySecretNames), "audit_hmac_key")
)

// sealedBackend is a built-in provider's database as the tests see it:
// the server's environment, and every byte the database holds at rest
// (SQLite's files; PostgreSQL's pg_dump).
type sealedBackend struct {
	name string
	env  map[string]string
	// dir is the SQLite data directory.
	dir string
	// pgURL is the PostgreSQL URL (with its search_path).
	pgURL string
}

func newSealedBackend(t *testing.T, name string) *sealedBackend {
	t.Helper()
	b := &sealedBackend{name: name, env: map[string]string{"NSAUTH_ADMIN_PASSWORD": adminPassword}}
	switch name {
	case "sqlite":
		b.dir = filepath.Join(t.TempDir(), "data")
		b.env["NSAUTH_DATA_DIR"] = b.dir
	case "postgres":
		b.pgURL = storetest.PostgresURL(t)
		b.env["NSAUTH_DATABASE_URL"] = b.pgURL
		b.env["NSAUTH_SECRET_KEY"] = seal.GenerateKey()
	}
	return b
}

func (b *sealedBackend) with(kv ...string) map[string]string {
	env := map[string]string{}
	for k, v := range b.env {
		env[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(env, kv[i])
		} else {
			env[kv[i]] = kv[i+1]
		}
	}
	return env
}

// keyring is the key the server was given, or made.
func (b *sealedBackend) keyring(t *testing.T) *seal.Keyring {
	t.Helper()
	if v := b.env["NSAUTH_SECRET_KEY"]; v != "" {
		k, err := seal.ParseKey(v)
		if err != nil {
			t.Fatal(err)
		}
		return seal.NewKeyring(k)
	}
	keys, err := config.ReadSecretKeyFile(filepath.Join(b.dir, config.DefaultSecretKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return seal.NewKeyring(keys[0], keys[1:]...)
}

// open opens the database as a second process holding the key would.
func (b *sealedBackend) open(t *testing.T) *store.Store {
	t.Helper()
	opts := store.Options{Keyring: b.keyring(t)}
	var st *store.Store
	var err error
	if b.name == "sqlite" {
		st, err = store.OpenSQLite(context.Background(), b.dir, opts)
	} else {
		st, err = store.OpenPostgres(context.Background(), b.pgURL, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// atRest returns what a copy of the database holds, by where it was
// found: each SQLite file but the key file (the database, its
// write-ahead log and shared-memory index), or PostgreSQL's pg_dump of the
// schema.
func (b *sealedBackend) atRest(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if b.name == "sqlite" {
		entries, err := os.ReadDir(b.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() == config.DefaultSecretKeyFile {
				continue
			}
			data, err := os.ReadFile(filepath.Join(b.dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = data
		}
		return out
	}
	pgDump, err := exec.LookPath("pg_dump")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pg_dump is required in CI (Debian's postgresql-client): %v", err)
		}
		t.Skipf("skipping: no pg_dump (%v); install postgresql-client (in CI this fails)", err)
	}
	u, err := url.Parse(b.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	schema := q.Get("search_path")
	q.Del("search_path")
	u.RawQuery = q.Encode()
	cmd := exec.Command(pgDump, "--no-owner", "--schema="+schema, u.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dump, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, stderr.String())
	}
	out["pg_dump"] = dump
	return out
}

// encodings are the forms in which a secret could sit in a file: as is,
// hex (PostgreSQL's bytea), base64 in both alphabets.
func encodings(b []byte) map[string][]byte {
	return map[string][]byte{
		"raw":       b,
		"hex":       []byte(hex.EncodeToString(b)),
		"base64":    []byte(base64.RawStdEncoding.EncodeToString(b)),
		"base64url": []byte(base64.RawURLEncoding.EncodeToString(b)),
	}
}

// needles are what must not be found at rest, by description.
type needles map[string][]byte

// addKey adds a private key: its PKCS #8 DER, its PEM and the first line
// of its body, its PKCS #1 DER, and its private exponent (in any encoding
// of the key) in every encoding.
func (n needles) addKey(kid string, der []byte, priv *rsa.PrivateKey) {
	for enc, v := range encodings(der) {
		n["PKCS #8 DER of "+kid+" ("+enc+")"] = v
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	n["PEM of "+kid] = p
	n["PEM body line of "+kid] = bytes.SplitN(p, []byte("\n"), 3)[1]
	n["PKCS #1 DER of "+kid] = x509.MarshalPKCS1PrivateKey(priv)
	for enc, v := range encodings(priv.D.Bytes()) {
		n["private exponent of "+kid+" ("+enc+")"] = v
	}
	for enc, v := range encodings(priv.Primes[0].Bytes()) {
		n["prime of "+kid+" ("+enc+")"] = v
	}
}

// addSecret adds a secret value as stored, and its decoded bytes in every
// encoding (the values are base64url of random bytes).
func (n needles) addSecret(name, v string) {
	n[name+" (as text)"] = []byte(v)
	if raw, err := base64.RawURLEncoding.DecodeString(v); err == nil {
		for enc, e := range encodings(raw) {
			n[name+" (bytes, "+enc+")"] = e
		}
	}
}

// jwksModuli fetches the server's JWKS and returns the moduli of its keys
// by kid.
func jwksModuli(t *testing.T, base string) map[string]*big.Int {
	t.Helper()
	resp, err := http.Get(base + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			N   string `json:"n"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	out := map[string]*big.Int{}
	for _, k := range set.Keys {
		n, err := base64.RawURLEncoding.DecodeString(k.N)
		if err != nil {
			t.Fatal(err)
		}
		out[k.Kid] = new(big.Int).SetBytes(n)
	}
	return out
}

// clientAccepted reports whether the provider's introspection endpoint
// accepts the broker's credentials: the client secret is the real one.
func clientAccepted(t *testing.T, base, secret string) bool {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/oauth/introspect", strings.NewReader("token=not-a-token"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(issuer.DefaultClientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// sealedIssuer is the issuer URL of the servers of these tests: fixed, so
// that tokens stay valid across restarts on other ports.
const sealedIssuer = "https://nsauth.invalid"

// sealedArgs are the `nsauth serve` arguments of these tests.
var sealedArgs = []string{"--listen", "127.0.0.1:0", "--issuer", sealedIssuer}

// login logs the administrator in through the CLI flow and returns the
// tokens.
func login(t *testing.T, s *servetest.Server) *mgmtv1alpha1.AccessToken {
	t.Helper()
	return cliLogin(t, s.URL, func(authorizeURL string) *url.URL {
		return inProcessBrowser(t, s.App, sealedIssuer).Login(t, authorizeURL, "admin", adminPassword)
	})
}

// cliLogin runs the CLI's login against the server at base: an authorize
// URL with PKCE, the browser's part (which returns the redirect back, with
// the code), and LoginCli. It returns the tokens.
func cliLogin(t *testing.T, base string, browser func(authorizeURL string) *url.URL) *mgmtv1alpha1.AccessToken {
	t.Helper()
	api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, base)
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
	authz, err := api.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: "sealed-state", RedirectUri: redirectURI, Scope: scope, CodeChallenge: &challenge, CodeChallengeMethod: &method,
	}))
	if err != nil {
		t.Fatalf("GetAuthorizeUrl: %v", err)
	}
	loc := browser(authz.Msg.GetUrl())
	resp, err := api.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{
		Code: loc.Query().Get("code"), RedirectUri: redirectURI, CodeVerifier: &verifier,
	}))
	if err != nil {
		t.Fatalf("LoginCli: %v", err)
	}
	return resp.Msg.GetAccessToken()
}

func checkToken(base, token string) error {
	api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, base)
	req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
	req.Header().Set("Authorization", "Bearer "+token)
	_, err := api.CheckToken(context.Background(), req)
	return err
}

// TestNoSecretAtRest is the acceptance test of sealing: after a start that
// made the signing key, the broker's client and the instance keys, and a
// login, neither the SQLite files nor a pg_dump hold a private key or a
// secret value in any encoding. The oracle takes the plaintext from the
// running provider (the keys its JWKS publishes, the client secret its
// token endpoint accepts) and searches for it independently.
func TestNoSecretAtRest(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newSealedBackend(t, name)
			s := servetest.Start(t, servetest.Options{Env: b.env, Args: sealedArgs})
			login(t, s)

			st := b.open(t)
			find := needles{}
			keys, err := st.SigningKeys(context.Background())
			if err != nil || len(keys) == 0 {
				t.Fatalf("SigningKeys = %v, %v", keys, err)
			}
			published := jwksModuli(t, s.URL)
			for _, k := range keys {
				parsed, err := x509.ParsePKCS8PrivateKey(k.PrivateKey)
				if err != nil {
					t.Fatalf("key %s: %v", k.ID, err)
				}
				priv := parsed.(*rsa.PrivateKey)
				if n := published[k.ID]; n == nil || n.Cmp(priv.N) != 0 {
					t.Fatalf("the private key %s read from the store is not the one the JWKS publishes", k.ID)
				}
				find.addKey(k.ID, k.PrivateKey, priv)
			}
			for _, n := range secretNames {
				if !issuer.SecretValue(n) {
					t.Fatalf("issuer.SecretValue(%q) = false", n)
				}
				v, err := st.Secret(context.Background(), n)
				if err != nil {
					t.Fatalf("Secret(%s): %v", n, err)
				}
				find.addSecret(n, v)
			}
			clientSecret, _ := st.Secret(context.Background(), secretNames[0])
			if !clientAccepted(t, s.URL, clientSecret) || clientAccepted(t, s.URL, clientSecret+"x") {
				t.Fatal("the client secret read from the store is not the one the provider accepts")
			}

			search := func(when string) {
				files := b.atRest(t)
				var all []byte
				for file, data := range files {
					all = append(all, data...)
					for what, needle := range find {
						if bytes.Contains(data, needle) {
							t.Errorf("%s: %s holds the %s", when, file, what)
						}
					}
				}
				// The search looked where the values are: sealed ones are there.
				if !bytes.Contains(all, []byte("nsauth-sealed:v1:")) {
					t.Fatalf("%s: no sealed value found at rest; the search looked in the wrong place", when)
				}
			}
			search("while serving")
			if code := s.Stop(t); code != 0 {
				t.Fatalf("exit %d\n%s", code, s.Logs.String())
			}
			search("after stopping")
		})
	}
}

// TestWrongSecretKeyRefusesToStart: a start whose key does not open the
// database's secrets fails, naming the setting to fix and never a key.
func TestWrongSecretKeyRefusesToStart(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newSealedBackend(t, name)
			s := servetest.Start(t, servetest.Options{Env: b.env, Args: sealedArgs})
			if code := s.Stop(t); code != 0 {
				t.Fatalf("exit %d\n%s", code, s.Logs.String())
			}
			wrong := seal.GenerateKey()
			cases := []struct {
				name string
				env  map[string]string
				want []string
			}{
				{"another key", b.with("NSAUTH_SECRET_KEY", wrong), []string{"NSAUTH_SECRET_KEY or NSAUTH_SECRET_KEY_FILE", "needs the key with id " + b.keyring(t).CurrentID()}},
				{"a key of the wrong length", b.with("NSAUTH_SECRET_KEY", wrong[:20]), []string{"NSAUTH_SECRET_KEY: decodes to 15 bytes, not 32"}},
			}
			if name == "postgres" {
				cases = append(cases, struct {
					name string
					env  map[string]string
					want []string
				}{"no key", b.with("NSAUTH_SECRET_KEY", ""), []string{"NSAUTH_SECRET_KEY: is required with PostgreSQL", "nsauth keys generate-secret-key", "openssl rand -base64 32"}})
			}
			for _, tc := range cases {
				code, stderr := servetest.Run(t, tc.env, sealedArgs...)
				if code == 0 {
					t.Fatalf("%s: the server started", tc.name)
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("%s: the message does not say %q:\n%s", tc.name, w, stderr)
					}
				}
				for _, key := range []string{wrong, wrong[:20], b.env["NSAUTH_SECRET_KEY"]} {
					if key != "" && strings.Contains(stderr, key) {
						t.Errorf("%s: the message shows a key:\n%s", tc.name, stderr)
					}
				}
			}
			if name != "sqlite" {
				return
			}
			// A lost key file is said, not replaced by a new key.
			keyFile := filepath.Join(b.dir, config.DefaultSecretKeyFile)
			if err := os.Rename(keyFile, keyFile+".bak"); err != nil {
				t.Fatal(err)
			}
			code, stderr := servetest.Run(t, b.env, sealedArgs...)
			if code == 0 || !strings.Contains(stderr, "secret key file "+keyFile+" is missing") || !strings.Contains(stderr, "NSAUTH_SECRET_KEY") {
				t.Fatalf("start without the key file: exit %d\n%s", code, stderr)
			}
			if _, err := os.Stat(keyFile); err == nil {
				t.Fatal("a start that failed left a new key file")
			}
		})
	}
}

// TestFirstStartMakesTheKeyFile: with SQLite and no key configured, the
// first start makes secret.key (0600) beside the database and says so,
// once, with its path and the advice to back it up.
func TestFirstStartMakesTheKeyFile(t *testing.T) {
	t.Parallel()
	b := newSealedBackend(t, "sqlite")
	const said = "made the secret key"
	keyFile := filepath.Join(b.dir, config.DefaultSecretKeyFile)
	for i, want := range []bool{true, false} {
		s := servetest.Start(t, servetest.Options{Env: b.env, Args: sealedArgs})
		if code := s.Stop(t); code != 0 {
			t.Fatalf("exit %d\n%s", code, s.Logs.String())
		}
		logs := s.Logs.String()
		if got := strings.Contains(logs, said); got != want {
			t.Fatalf("start %d: said %v, want %v:\n%s", i+1, got, want, logs)
		}
		if want && (!strings.Contains(logs, `"file":"`+keyFile+`"`) || !strings.Contains(logs, "back this file up, apart from the database")) {
			t.Fatalf("the first start does not name the file and the advice:\n%s", logs)
		}
	}
	info, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	text, _ := os.ReadFile(keyFile)
	if _, err := seal.ParseKey(string(text)); err != nil {
		t.Fatalf("the key file does not hold a key: %v", err)
	}
}

// TestRotateSecretKey: `nsauth keys rotate-secret-key` seals everything
// again under a new key; afterwards the new key alone starts the server,
// the old one alone does not, and tokens signed before still verify.
func TestRotateSecretKey(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newSealedBackend(t, name)
			s := servetest.Start(t, servetest.Options{Env: b.env, Args: sealedArgs})
			tok := login(t, s)
			before := jwksModuli(t, s.URL)
			if code := s.Stop(t); code != 0 {
				t.Fatalf("exit %d\n%s", code, s.Logs.String())
			}
			oldID := b.keyring(t).CurrentID()

			newKey := seal.GenerateKey()
			env := b.with("NSAUTH_SECRET_KEY", newKey)
			if name == "postgres" {
				env["NSAUTH_OLD_SECRET_KEY"] = b.env["NSAUTH_SECRET_KEY"]
			} // SQLite: the old key is the data directory's secret.key

			// Rolling the replicas first: both keys given, before the
			// rotation, a server starts and reads what the old key sealed.
			rolling := b.with("NSAUTH_SECRET_KEY", newKey, "NSAUTH_OLD_SECRET_KEY_FILE", filepath.Join(t.TempDir(), "old.key"))
			if name == "postgres" {
				rolling = b.with("NSAUTH_SECRET_KEY", newKey, "NSAUTH_OLD_SECRET_KEY", b.env["NSAUTH_SECRET_KEY"])
			} else if err := os.Link(filepath.Join(b.dir, config.DefaultSecretKeyFile), rolling["NSAUTH_OLD_SECRET_KEY_FILE"]); err != nil {
				t.Fatal(err)
			}
			both := servetest.Start(t, servetest.Options{Env: rolling, Args: sealedArgs})
			if err := checkToken(both.URL, tok.GetAccessToken()); err != nil {
				t.Fatalf("with both keys before the rotation: CheckToken = %v", err)
			}
			if code := both.Stop(t); code != 0 {
				t.Fatalf("exit %d\n%s", code, both.Logs.String())
			}
			var stdout, stderr bytes.Buffer
			rotate := &cli.App{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr, Getenv: servetest.Env(env)}
			if code := cli.Run(context.Background(), rotate, []string{"keys", "rotate-secret-key"}, servercmd.Commands...); code != 0 {
				t.Fatalf("rotate-secret-key: exit %d\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "Sealed 1 signing key(s) and 4 other secret(s) again") {
				t.Errorf("rotate-secret-key said:\n%s", stderr.String())
			}
			for _, key := range []string{newKey, b.env["NSAUTH_SECRET_KEY"]} {
				if key != "" && strings.Contains(stdout.String()+stderr.String(), key) {
					t.Fatal("rotate-secret-key printed a key")
				}
			}

			// The new key alone: tokens signed before verify, the same keys
			// are published.
			after := servetest.Start(t, servetest.Options{Env: b.with("NSAUTH_SECRET_KEY", newKey), Args: sealedArgs})
			if err := checkToken(after.URL, tok.GetAccessToken()); err != nil {
				t.Fatalf("a token signed before the rotation: CheckToken = %v", err)
			}
			for kid, n := range before {
				if m := jwksModuli(t, after.URL)[kid]; m == nil || m.Cmp(n) != 0 {
					t.Fatalf("key %s changed in the rotation", kid)
				}
			}
			api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, after.URL)
			if _, err := api.RefreshCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: tok.GetRefreshToken()})); err != nil {
				t.Fatalf("RefreshCli after the rotation: %v", err)
			}
			if code := after.Stop(t); code != 0 {
				t.Fatalf("exit %d\n%s", code, after.Logs.String())
			}

			// The old key alone opens nothing.
			oldOnly := b.env // SQLite: the key file, which still holds the old key
			code, msg := servetest.Run(t, oldOnly, sealedArgs...)
			if code == 0 {
				t.Fatal("the old key alone started the server after the rotation")
			}
			if !strings.Contains(msg, "NSAUTH_SECRET_KEY") || !strings.Contains(msg, "key id "+oldID) {
				t.Errorf("start with the old key: the message does not name the setting and key:\n%s", msg)
			}
		})
	}
}

// TestUpgradeSealsPlaintext starts a server on a database as an nsauth
// from before sealing left it: a signing key in clear (PKCS #8 DER), and
// the client secret and instance keys in clear. The start seals them in
// place, says so, and goes on using them: the JWKS publishes the same key,
// the provider accepts the same client secret; and nothing of them is left
// at rest.
func TestUpgradeSealsPlaintext(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newSealedBackend(t, name)
			// The schema as migrations make it, without any secret.
			var st *store.Store
			var err error
			if name == "sqlite" {
				st, err = store.OpenSQLite(context.Background(), b.dir, store.Options{})
			} else {
				st, err = store.OpenPostgres(context.Background(), b.pgURL, store.Options{})
			}
			if err != nil {
				t.Fatal(err)
			}
			_ = st.Close()

			priv, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.MarshalPKCS8PrivateKey(priv)
			if err != nil {
				t.Fatal(err)
			}
			legacy := map[string]string{}
			for _, n := range legacySecretNames {
				legacy[n] = store.RandomToken(32)
			}
			legacy["auth_request_key"] = base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
			db := b.rawDB(t)
			ph := func(n int) string {
				if name == "postgres" {
					return "$" + strconv.Itoa(n)
				}
				return "?"
			}
			for n, v := range legacy {
				if _, err := db.Exec(`INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (`+ph(1)+`, `+ph(2)+`, 0)`, n, v); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.Exec(`INSERT INTO nsauth_clients (id, secret_hash, redirect_uris, created_at) VALUES (`+ph(1)+`, `+ph(2)+`, '[]', 0)`,
				issuer.DefaultClientID, store.HashSecret(legacy[legacySecretNames[0]])); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`INSERT INTO nsauth_signing_keys (id, algorithm, private_key, created_at, activates_at) VALUES ('legacy-kid', 'RS256', `+ph(1)+`, 0, 0)`, der); err != nil {
				t.Fatal(err)
			}
			_ = db.Close()

			s := servetest.Start(t, servetest.Options{Env: b.env, Args: sealedArgs})
			logs := s.Logs.String()
			if !strings.Contains(logs, "sealed the secrets an earlier nsauth stored in clear") || !strings.Contains(logs, `"signing_keys":1,"values":3`) {
				t.Fatalf("the upgrade is not said, or not counted:\n%s", logs)
			}
			if n := jwksModuli(t, s.URL)["legacy-kid"]; n == nil || n.Cmp(priv.N) != 0 {
				t.Fatal("the JWKS does not publish the legacy signing key")
			}
			if !clientAccepted(t, s.URL, legacy[legacySecretNames[0]]) {
				t.Fatal("the provider does not accept the legacy client secret")
			}
			login(t, s)

			find := needles{}
			find.addKey("legacy-kid", der, priv)
			for n, v := range legacy {
				find.addSecret(n, v)
			}
			if code := s.Stop(t); code != 0 {
				t.Fatalf("exit %d\n%s", code, s.Logs.String())
			}
			for file, data := range b.atRest(t) {
				for what, needle := range find {
					if bytes.Contains(data, needle) {
						t.Errorf("after the upgrade, %s holds the %s", file, what)
					}
				}
			}
		})
	}
}

// rawDB opens the database with database/sql alone, as an earlier nsauth
// (or anyone with the file or the URL) would.
func (b *sealedBackend) rawDB(t *testing.T) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if b.name == "sqlite" {
		db, err = sql.Open("sqlite", filepath.Join(b.dir, store.SQLiteFileName))
	} else {
		db, err = sql.Open("pgx", b.pgURL)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestConcurrentFirstStartsShareOneKeyFile: processes starting at once on
// a fresh SQLite directory agree on one key file, made by one of them.
func TestConcurrentFirstStartsShareOneKeyFile(t *testing.T) {
	t.Parallel()
	b := newSealedBackend(t, "sqlite")
	const n = 3
	logs := make([]servetest.Buffer, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			srv, err := servetest.New(context.Background(), b.env, sealedArgs, app.Deps{Stderr: &logs[i]})
			if err == nil {
				err = srv.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("a concurrent first start failed: %v", err)
		}
	}
	made := 0
	for i := range logs {
		if strings.Contains(logs[i].String(), "made the secret key") {
			made++
		}
	}
	if made != 1 {
		t.Fatalf("%d starts said they made the key file, want 1", made)
	}
	st := b.open(t)
	if err := st.CheckSecrets(context.Background()); err != nil {
		t.Fatalf("the key file does not open the database: %v", err)
	}
}
