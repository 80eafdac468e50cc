package store_test

import (
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestUpgradeFromEveryLevel starts, on each backend, from a database of
// every earlier schema level N: a fresh database where, for k in 1..N,
// migration k ran and then testdata/upgrade/BACKEND/k.sql, the rows an
// nsauth at schema k wrote (users with real password hashes, tokens,
// passkeys, second factors, audit rows, …, in that level's columns and
// formats: level 1's secrets still in clear). The current store then
// opens it (migrating to today), seals what is in clear as serve does, and
// every fixture up to N is checked through the store's API: its users log
// in with their passwords, its refresh tokens rotate, its passkeys are
// listed, its audit rows are there, and so on. PostgreSQL's 0006 (DROP NOT
// NULL on the access tokens) thus runs on a table with rows from N ≥ 6.
func TestUpgradeFromEveryLevel(t *testing.T) {
	t.Parallel()
	latest := store.SchemaVersion()
	if len(upgradeChecks) != latest {
		t.Fatalf("the schema is at version %d but upgradeChecks has %d levels: a new migration needs testdata/upgrade/{sqlite,postgres}/%04d.sql and its check here", latest, len(upgradeChecks), latest)
	}
	backends := []struct {
		name  string
		build func(t *testing.T, level int) *store.Store
	}{
		{"sqlite", sqliteAtLevel},
		{"postgres", postgresAtLevel},
	}
	for _, b := range backends {
		for level := 1; level <= latest; level++ {
			t.Run(fmt.Sprintf("%s/from_%04d", b.name, level), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				s := b.build(t, level)
				// serve seals, at start, what an nsauth before sealing kept in
				// clear: fixture 1's signing key and two instance secrets,
				// which every level keeps (a database left at that level
				// meets sealing only now).
				n, err := s.SealSecrets(ctx, isSecret)
				if err != nil {
					t.Fatalf("SealSecrets after the upgrade: %v", err)
				}
				if n.SigningKeys != 1 || n.Values != 2 {
					t.Errorf("SealSecrets sealed %+v; want fixture 1's signing key and 2 instance secrets", n)
				}
				if n, err := s.SealSecrets(ctx, isSecret); err != nil || n != (store.SecretCounts{}) {
					t.Errorf("SealSecrets again sealed %+v, %v; want nothing", n, err)
				}
				for k := 1; k <= level; k++ {
					t.Run(fmt.Sprintf("fixture_%04d", k), func(t *testing.T) { upgradeChecks[k-1](t, ctx, s) })
				}
			})
		}
	}
}

// upgradeFixture returns testdata/upgrade/BACKEND/NNNN.sql.
func upgradeFixture(t *testing.T, backend string, k int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "upgrade", backend, fmt.Sprintf("%04d.sql", k)))
	if err != nil {
		t.Fatalf("the fixture of schema %d: %v", k, err)
	}
	return string(b)
}

// levelStatements are the statements that take an empty database to
// schema level with every fixture up to it, as successive nsauth versions
// would have.
func levelStatements(t *testing.T, backend string, level int) []string {
	t.Helper()
	ms, err := store.MigrationSQLForTest(backend)
	if err != nil || len(ms) < level {
		t.Fatalf("migrations: %d, %v", len(ms), err)
	}
	stmts := []string{`CREATE TABLE nsauth_schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`}
	for k := 1; k <= level; k++ {
		stmts = append(stmts, ms[k-1],
			`INSERT INTO nsauth_schema_migrations (version, applied_at) VALUES (`+strconv.Itoa(k)+`, 1764000000000)`,
			upgradeFixture(t, backend, k))
	}
	return stmts
}

func sqliteAtLevel(t *testing.T, level int) *store.Store {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, store.SQLiteFileName)+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range levelStatements(t, "sqlite", level) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("statement %d (%.70q): %v", i, q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenSQLite(ctx, dir, store.Options{Keyring: storetest.Keyring()})
	if err != nil {
		t.Fatalf("opening a database of schema %d: %v", level, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func postgresAtLevel(t *testing.T, level int) *store.Store {
	t.Helper()
	ctx := context.Background()
	u := storetest.PostgresURL(t)
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range levelStatements(t, "postgres", level) {
		// No arguments: the simple protocol, several statements at once.
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("statement %d (%.70q): %v", i, q, err)
		}
	}
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenPostgres(ctx, u, store.Options{Keyring: storetest.Keyring()})
	if err != nil {
		t.Fatalf("opening a database of schema %d: %v", level, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// logsIn checks that username's stored hash takes its fixture password
// (pw-of-NAME-upgrade) and refuses another, as the login page asks.
func logsIn(t *testing.T, ctx context.Context, s *store.Store, username string) *store.User {
	t.Helper()
	u, err := s.UserByUsername(ctx, username)
	if err != nil {
		t.Fatalf("user %s: %v", username, err)
	}
	if ok, err := password.Verify("pw-of-"+username+"-upgrade", u.PasswordHash); !ok || err != nil {
		t.Errorf("%s's password no longer verifies: %v, %v", username, ok, err)
	}
	if ok, _ := password.Verify("wrong", u.PasswordHash); ok {
		t.Errorf("%s's hash takes any password", username)
	}
	return u
}

// refreshes checks that the refresh token value is live for userID and
// rotates, and that its successor is found.
func refreshes(t *testing.T, ctx context.Context, s *store.Store, value, userID string) *store.RefreshToken {
	t.Helper()
	rt, err := s.RefreshTokenByValue(ctx, value)
	if err != nil || rt.UserID != userID {
		t.Fatalf("refresh token %s: %+v, %v", value, rt, err)
	}
	next := value + "-rotated"
	if _, err := s.RotateRefreshToken(ctx, rt.ID, next, rt.Scopes, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("rotating %s: %v", value, err)
	}
	if got, err := s.RefreshTokenByValue(ctx, next); err != nil || got.UserID != userID || got.Grant.ID != rt.Grant.ID {
		t.Errorf("the successor of %s: %+v, %v", value, got, err)
	}
	return rt
}

func auditEvents(t *testing.T, ctx context.Context, s *store.Store, f store.AuditFilter) []audit.Event {
	t.Helper()
	evs, err := s.AuditEvents(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// upgradeChecks[k-1] checks the rows of testdata/upgrade/*/k.sql after the
// upgrade. Each leaves the other fixtures' rows as they were.
var upgradeChecks = []func(t *testing.T, ctx context.Context, s *store.Store){
	// 0001: users, the broker's client, secrets once in clear, a code, tokens.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		logsIn(t, ctx, s, "alice")
		if bob := logsIn(t, ctx, s, "bob"); !bob.Disabled() {
			t.Error("bob is no longer disabled")
		}
		if c, err := s.ClientByID(ctx, "nsauth-cli"); err != nil || !c.CheckSecret("cli-secret") {
			t.Errorf("the broker's client: %v", err)
		}
		if v, err := s.Secret(ctx, "auth_request_key"); err != nil || v != "dXBncmFkZS10ZXN0LWF1dGgtcmVxdWVzdC1rZXktMzI" {
			t.Errorf("auth_request_key after sealing: %q, %v", v, err)
		}
		if v, err := s.Secret(ctx, "client_secret:nsauth-cli"); err != nil || v != "cli-secret" {
			t.Errorf("the broker's secret after sealing: %v", err)
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil || len(keys) != 1 || keys[0].ID != "key-0001" {
			t.Fatalf("signing keys: %+v, %v", len(keys), err)
		}
		if _, err := x509.ParsePKCS8PrivateKey(keys[0].PrivateKey); err != nil {
			t.Errorf("the signing key no longer parses: %v", err)
		}
		ar, err := s.RedeemCode(ctx, "code-0001")
		if err != nil || ar.ID != "ar-0001" || ar.UserID != "u-alice" || ar.CodeChallenge != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
			t.Errorf("redeeming the code: %+v, %v", ar, err)
		}
		if _, err := s.RedeemCode(ctx, "code-0001"); !errors.Is(err, store.ErrReused) {
			t.Errorf("the code redeemed twice: %v", err)
		}
		refreshes(t, ctx, s, "rt-0001-alice", "u-alice")
		if at, err := s.ActiveAccessToken(ctx, "at-0001"); err != nil || at.UserID != "u-alice" || at.GrantID != "fam-0001" {
			t.Errorf("access token at-0001: %+v, %v", at, err)
		}
	},
	// 0002: a login-attempt counter of alice's.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		if u, err := s.ClearAccountLoginAttempts(ctx, "alice"); err != nil || u.Counters != 1 {
			t.Errorf("unlocking alice: %+v, %v", u, err)
		}
	},
	// 0003: a revoked access token.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		if at, err := s.ActiveAccessToken(ctx, "at-0003"); err == nil {
			t.Errorf("the revoked access token is active: %+v", at)
		}
		revs, err := s.LiveRevocations(ctx)
		if err != nil || !slices.ContainsFunc(revs, func(r store.Revocation) bool { return r.TokenID == "at-0003" }) {
			t.Errorf("live revocations %+v, %v: want at-0003", revs, err)
		}
	},
	// 0004: carol's rotated refresh token and its successor.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		logsIn(t, ctx, s, "carol")
		refreshes(t, ctx, s, "rt-0004-carol-new", "u-carol")
		if _, err := s.RefreshTokenByValue(ctx, "rt-0004-carol-old"); !errors.Is(err, store.ErrReused) {
			t.Errorf("the rotated token presented again: %v, want ErrReused", err)
		}
	},
	// 0005: a pending device login.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		d, err := s.PendingDeviceAuthorization(ctx, "BCDF-GHJK")
		if err != nil || d.ID != "dev-0005" || d.ClientID != "nsauth-cli" {
			t.Fatalf("the pending device login: %+v, %v", d, err)
		}
		if _, err := s.DecideDeviceAuthorization(ctx, d.ID, true, "u-alice", time.Now(), []string{"pwd"}); err != nil {
			t.Errorf("approving it: %v", err)
		}
	},
	// 0006: a machine client and its userless token.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		m, err := s.MachineClientByName(ctx, "ci-bot")
		if err != nil || m.ID != "m-0006" || !m.CheckSecret("machine-secret-0006") || !slices.Equal(m.Scopes, []string{"deploy", "read"}) {
			t.Errorf("machine client: %+v, %v", m, err)
		}
		if at, err := s.ActiveAccessToken(ctx, "at-0006"); err != nil || at.UserID != "" || at.ClientID != "m-0006" {
			t.Errorf("the machine token: %+v, %v", at, err)
		}
	},
	// 0007: a federation policy.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		ps, err := s.FederationPoliciesByIssuer(ctx, "https://token.actions.githubusercontent.com")
		if err != nil || len(ps) != 1 || ps[0].Name != "gh-deploy" || ps[0].ClientID != "m-0006" {
			t.Errorf("federation policies: %+v, %v", ps, err)
		}
	},
	// 0008: audit rows.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		evs := auditEvents(t, ctx, s, store.AuditFilter{User: "alice"})
		if len(evs) != 2 || evs[0].Type != audit.LoginSucceeded || evs[0].ClientAddr != "192.0.2.1" || evs[1].Type != audit.CodeIssued || evs[1].Refs["code_hmac"] != "aGVsbG8" {
			t.Errorf("alice's audit events: %+v", evs)
		}
		evs = auditEvents(t, ctx, s, store.AuditFilter{User: "carol"})
		if len(evs) != 1 || evs[0].Outcome != audit.Failure || evs[0].Reason != "bad_credentials" {
			t.Errorf("carol's audit events: %+v", evs)
		}
	},
	// 0009: alice's TOTP and recovery codes; a token's amr.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		secret, step, err := s.TOTPSecret(ctx, "u-alice")
		if err != nil || secret != "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" || step != 58800000 {
			t.Errorf("alice's TOTP: step %d, %v", step, err)
		}
		if f, err := s.SecondFactors(ctx, "u-alice"); err != nil || !f.TOTP {
			t.Errorf("alice's second factors: %+v, %v", f, err)
		}
		if err := s.UseRecoveryCode(ctx, "u-alice", "rc-0009-1"); err != nil {
			t.Errorf("a recovery code: %v", err)
		}
		if err := s.UseRecoveryCode(ctx, "u-alice", "rc-0009-1"); err == nil {
			t.Error("a recovery code worked twice")
		}
		if at, err := s.ActiveAccessToken(ctx, "at-0009"); err != nil || !slices.Equal(at.AMR, []string{"pwd", "otp"}) {
			t.Errorf("at-0009: %+v, %v", at, err)
		}
	},
	// 0010: alice's passkey.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		pks, err := s.PasskeysByUser(ctx, "u-alice")
		if err != nil || len(pks) != 1 || pks[0].Name != "yubikey" || pks[0].SignCount != 7 || !pks[0].UserVerified {
			t.Fatalf("alice's passkeys: %+v, %v", pks, err)
		}
		if p, err := s.PasskeyByCredentialID(ctx, []byte{0xc0, 0xff, 0xee, 0x00, 0x10}); err != nil || p.ID != "pk-0010" {
			t.Errorf("the passkey by credential: %+v, %v", p, err)
		}
		if err := s.RecordPasskeyUse(ctx, "pk-0010", 8, false, false); err != nil {
			t.Errorf("using the passkey: %v", err)
		}
	},
	// 0011: dave and his enrolment link.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		logsIn(t, ctx, s, "dave")
		if u, err := s.EnrolLinkUser(ctx, "enrol-0011-dave"); err != nil || u.ID != "u-dave" {
			t.Errorf("dave's enrolment link: %+v, %v", u, err)
		}
	},
	// 0012: a ceremony bound to a browser.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		if _, err := s.TakePasskeyCeremony(ctx, "ar-0012", "another-browser"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the ceremony taken by another browser: %v", err)
		}
		if c, err := s.TakePasskeyCeremony(ctx, "ar-0012", "browser-0012"); err != nil || c.Kind != "passwordless" {
			t.Errorf("the ceremony: %+v, %v", c, err)
		}
	},
	// 0013: an aggregated refusal.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		evs := auditEvents(t, ctx, s, store.AuditFilter{})
		if !slices.ContainsFunc(evs, func(e audit.Event) bool { return e.Count == 5 && e.ClientAddr == "198.51.100.7" }) {
			t.Errorf("the aggregated refusal is missing: %+v", evs)
		}
	},
	// 0014: a third-party app, a browser session, a consent, a token with resources.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		apps, err := s.ListApps(ctx)
		if err != nil || !slices.ContainsFunc(apps, func(c store.Client) bool {
			return c.ID == "grafana" && c.ThirdParty && c.CheckSecret("grafana-secret-0014")
		}) {
			t.Errorf("apps: %+v, %v", apps, err)
		}
		sess, err := s.SessionByToken(ctx, "sess-0014-alice", 0)
		if err != nil || sess.UserID != "u-alice" {
			t.Fatalf("alice's session: %+v, %v", sess, err)
		}
		if gs, err := s.SessionGrants(ctx, sess.ID); err != nil || len(gs) != 1 || gs[0].ClientID != "grafana" {
			t.Errorf("the session's grants: %+v, %v", gs, err)
		}
		if sc, err := s.ConsentedScopes(ctx, "u-alice", "grafana"); err != nil || !slices.Equal(sc, []string{"openid", "profile"}) {
			t.Errorf("alice's consent: %v, %v", sc, err)
		}
		rt := refreshes(t, ctx, s, "rt-0014-alice-grafana", "u-alice")
		if !slices.Equal(rt.Resources, []string{"https://api.example"}) {
			t.Errorf("the token's resources: %v", rt.Resources)
		}
	},
	// 0015: a connector with its sealed secret, carol's identity and groups.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		if c, err := s.ConnectorByName(ctx, "corp"); err != nil || c.Secret != "corp-client-secret" || c.Type != "oidc" {
			t.Errorf("the connector: %v", err)
		}
		if id, err := s.IdentityBySubject(ctx, "corp", "sub-carol"); err != nil || id.UserID != "u-carol" {
			t.Errorf("carol's identity: %+v, %v", id, err)
		}
		if gs, err := s.UserGroups(ctx, "u-carol"); err != nil || !slices.Contains(gs, "corp:eng") {
			t.Errorf("carol's groups: %v, %v", gs, err)
		}
	},
	// 0016: a group and an invite link.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		if gs, err := s.LocalUserGroups(ctx, "u-alice"); err != nil || !slices.Equal(gs, []string{"ops"}) {
			t.Errorf("alice's groups: %v, %v", gs, err)
		}
		if l, err := s.LinkBySecret(ctx, "link-0016-bob"); err != nil || l.UserID != "u-bob" || l.Purpose != "invite" {
			t.Errorf("bob's invite: %+v, %v", l, err)
		}
	},
	// 0017: a revocation whose token record is gone, found by token id.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		for id, want := range map[string]bool{"at-0017-gone": true, "at-0003": true, "at-0001": false} {
			if got, err := s.IsAccessTokenRevoked(ctx, id); err != nil || got != want {
				t.Errorf("IsAccessTokenRevoked(%s) = %v, %v; want %v", id, got, err, want)
			}
		}
	},
	// 0018: an event found by its ref.
	func(t *testing.T, ctx context.Context, s *store.Store) {
		evs := auditEvents(t, ctx, s, store.AuditFilter{Ref: "0018abcdef0123456789abcdef012345"})
		if len(evs) != 1 || evs[0].Type != audit.TokenRevoked || evs[0].Username != "revoker-0018" {
			t.Errorf("the events of the ref: %+v", evs)
		}
	},
}
