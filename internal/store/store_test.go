package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

var ctx = context.Background()

// fixture opens a store on a test clock, with one client and one user.
type fixture struct {
	s     *store.Store
	clock *storetest.Clock
	b     storetest.Backend
	user  *store.User
}

func newFixture(t *testing.T, b storetest.Backend) *fixture {
	t.Helper()
	clock := storetest.NewClock(time.Time{})
	s := b.Open(t, store.Options{Now: clock.Now})
	if _, err := s.EnsureClient(ctx, &store.Client{ID: "cli", SecretHash: store.HashSecret("s3cret")}); err != nil {
		t.Fatal(err)
	}
	u := &store.User{Username: "Alice", PasswordHash: "$argon2id$fake", Email: "alice@example.com", Name: "Alice A."}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	return &fixture{s: s, clock: clock, b: b, user: u}
}

// completedRequest records an auth request the fixture user logged in for
// and issues code.
func (f *fixture) completedRequest(t *testing.T, code string) *store.AuthRequest {
	t.Helper()
	r := &store.AuthRequest{ID: store.NewID(), ClientID: "cli", RedirectURI: "http://127.0.0.1:4242/cb", Scopes: []string{"openid", "offline_access"},
		State: "st", ResponseType: "code", CodeChallenge: "abc", CodeChallengeMethod: "S256", ExpiresAt: f.clock.Now().Add(10 * time.Minute)}
	if err := f.s.InsertCompletedAuthRequest(ctx, r, f.user.ID, []string{"pwd"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SaveCode(ctx, code, r.ID, f.clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) grant(id string) store.Grant {
	return store.Grant{ID: id, UserID: f.user.ID, ClientID: "cli", Scopes: []string{"openid", "offline_access"},
		Audience: []string{"cli"}, AuthTime: f.clock.Now(), AMR: []string{"pwd"}}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t, store.Options{})
		if s.Backend() != b.Name {
			t.Fatalf("Backend() = %q, want %q", s.Backend(), b.Name)
		}
		if store.SchemaVersion() < 1 {
			t.Fatal("no migrations embedded")
		}
		// Opening again applies nothing and keeps data.
		if err := s.CreateUser(ctx, &store.User{Username: "bob", PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
		s2 := b.Reopen(t, s, store.Options{})
		if _, err := s2.UserByUsername(ctx, "bob"); err != nil {
			t.Fatalf("user lost after reopening: %v", err)
		}
		if s.Location() == "" {
			t.Fatal("Location is empty")
		}
	})
}

func TestConcurrentStartsMigrateOnce(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		first := b.Open(t, store.Options{})
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := b.Reopen(t, first, store.Options{})
				errs <- s.Ping(ctx)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestUsers(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s := f.s
		if f.user.Username != "alice" {
			t.Fatalf("username not normalised: %q", f.user.Username)
		}
		for _, tc := range []struct {
			name     string
			username string
			want     error
		}{
			{"same name", "alice", store.ErrConflict},
			{"other case", "ALICE", store.ErrConflict},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := s.CreateUser(ctx, &store.User{Username: tc.username, PasswordHash: "h"})
				wantErr(t, err, tc.want)
			})
		}
		for _, bad := range []string{"", "-lead", "sp ace", "semi;colon", strings.Repeat("a", 65), "ünï"} {
			if err := s.CreateUser(ctx, &store.User{Username: bad, PasswordHash: "h"}); err == nil {
				t.Errorf("CreateUser(%q) succeeded", bad)
			}
		}
		if err := s.CreateUser(ctx, &store.User{Username: "nopw"}); err == nil {
			t.Error("CreateUser without a password hash succeeded")
		}

		got, err := s.UserByUsername(ctx, "ALICE")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != f.user.ID || got.Email != "alice@example.com" || got.Name != "Alice A." || got.Disabled() {
			t.Fatalf("UserByUsername = %+v", got)
		}
		if _, err := s.UserByID(ctx, f.user.ID); err != nil {
			t.Fatal(err)
		}
		_, err = s.UserByUsername(ctx, "nobody")
		wantErr(t, err, store.ErrNotFound)
		_, err = s.UserByUsername(ctx, "bad name!")
		wantErr(t, err, store.ErrNotFound)

		if err := s.CreateUser(ctx, &store.User{Username: "aaron", PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].Username != "aaron" || list[1].Username != "alice" {
			t.Fatalf("ListUsers = %+v", list)
		}

		// Password change and disabling revoke the user's tokens.
		rt := "refresh-value"
		rid, err := s.CreateRefreshToken(ctx, rt, f.grant("g1"), f.clock.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RecordAccessToken(ctx, &store.AccessToken{ID: "jti1", GrantID: "g1", UserID: f.user.ID, ClientID: "cli", ExpiresAt: f.clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetPassword(ctx, "alice", "$argon2id$new"); err != nil {
			t.Fatal(err)
		}
		_, err = s.RefreshTokenByValue(ctx, rt)
		wantErr(t, err, store.ErrRevoked)
		_, err = s.ActiveAccessToken(ctx, "jti1")
		wantErr(t, err, store.ErrRevoked)
		got, _ = s.UserByUsername(ctx, "alice")
		if got.PasswordHash != "$argon2id$new" {
			t.Fatal("password hash not updated")
		}
		_ = rid
		wantErr(t, s.SetPassword(ctx, "nobody", "h"), store.ErrNotFound)

		if err := s.SetDisabled(ctx, "alice", true); err != nil {
			t.Fatal(err)
		}
		got, _ = s.UserByUsername(ctx, "alice")
		if !got.Disabled() {
			t.Fatal("user not disabled")
		}
		if err := s.SetDisabled(ctx, "alice", false); err != nil {
			t.Fatal(err)
		}
		got, _ = s.UserByUsername(ctx, "alice")
		if got.Disabled() {
			t.Fatal("user not enabled")
		}
		wantErr(t, s.SetDisabled(ctx, "nobody", true), store.ErrNotFound)
		wantErr(t, s.SetDisabled(ctx, "nobody", false), store.ErrNotFound)

		if err := s.DeleteUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		_, err = s.UserByUsername(ctx, "alice")
		wantErr(t, err, store.ErrNotFound)
		_, err = s.RefreshTokenByValue(ctx, rt)
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, s.DeleteUser(ctx, "alice"), store.ErrNotFound)
	})
}

func TestCreateInitialAdmin(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t, store.Options{})
		others := []*store.Store{s, b.Reopen(t, s, store.Options{}), b.Reopen(t, s, store.Options{})}
		var mu sync.Mutex
		created := 0
		var wg sync.WaitGroup
		for _, st := range others {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := st.CreateInitialAdmin(ctx, &store.User{Username: "admin", PasswordHash: "h"})
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					created++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if created != 1 {
			t.Fatalf("%d processes created the admin, want exactly 1", created)
		}
		// The first administrator may use the admin API at once: a member
		// of the group admin, which the first start created.
		admin, err := s.UserByUsername(ctx, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if in, err := s.InGroup(ctx, admin.ID, "admin"); err != nil || !in {
			t.Fatalf("the first administrator in the group admin: %v, %v; want true", in, err)
		}
		// Deleted admins do not come back.
		if err := s.DeleteUser(ctx, "admin"); err != nil {
			t.Fatal(err)
		}
		ok, err := s.CreateInitialAdmin(ctx, &store.User{Username: "admin", PasswordHash: "h"})
		if err != nil || ok {
			t.Fatalf("CreateInitialAdmin after first start = %v, %v; want false, nil", ok, err)
		}
	})
}

func TestCreateInitialAdminKeepsExistingUser(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t, store.Options{})
		if err := s.CreateUser(ctx, &store.User{Username: "admin", PasswordHash: "original"}); err != nil {
			t.Fatal(err)
		}
		ok, err := s.CreateInitialAdmin(ctx, &store.User{Username: "admin", PasswordHash: "other"})
		if err != nil || ok {
			t.Fatalf("CreateInitialAdmin = %v, %v; want false, nil", ok, err)
		}
		u, _ := s.UserByUsername(ctx, "admin")
		if u.PasswordHash != "original" {
			t.Fatal("existing user was overwritten")
		}
	})
}

func TestClientsAndValues(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t, store.Options{})
		c := &store.Client{ID: "cli", SecretHash: store.HashSecret("one"), RedirectURIs: []string{"https://app.example.com/cb"}}
		created, err := s.EnsureClient(ctx, c)
		if err != nil || !created {
			t.Fatalf("EnsureClient = %v, %v", created, err)
		}
		created, err = s.EnsureClient(ctx, &store.Client{ID: "cli", SecretHash: store.HashSecret("two")})
		if err != nil || created {
			t.Fatalf("second EnsureClient = %v, %v", created, err)
		}
		got, err := s.ClientByID(ctx, "cli")
		if err != nil {
			t.Fatal(err)
		}
		if !got.CheckSecret("one") || got.CheckSecret("two") || got.CheckSecret("") {
			t.Fatal("CheckSecret does not match the first registration")
		}
		if len(got.RedirectURIs) != 1 || got.RedirectURIs[0] != "https://app.example.com/cb" {
			t.Fatalf("RedirectURIs = %v", got.RedirectURIs)
		}
		if err := s.SetClientRedirectURIs(ctx, "cli", nil); err != nil {
			t.Fatal(err)
		}
		got, _ = s.ClientByID(ctx, "cli")
		if len(got.RedirectURIs) != 0 {
			t.Fatalf("RedirectURIs = %v after clearing", got.RedirectURIs)
		}
		_, err = s.ClientByID(ctx, "other")
		wantErr(t, err, store.ErrNotFound)

		// Racing initialisations agree on one value.
		var wg sync.WaitGroup
		vals := make([]string, 8)
		for i := range vals {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := s.EnsureValue(ctx, "secret", store.RandomToken(8))
				if err != nil {
					t.Error(err)
				}
				vals[i] = v
			}()
		}
		wg.Wait()
		for _, v := range vals {
			if v != vals[0] || v == "" {
				t.Fatalf("EnsureValue results differ: %v", vals)
			}
		}
		_, err = s.Value(ctx, "missing")
		wantErr(t, err, store.ErrNotFound)
	})
}

func TestAuthRequests(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s := f.s
		pending := func(ttl time.Duration) *store.AuthRequest {
			return &store.AuthRequest{ID: store.NewID(), ClientID: "cli", RedirectURI: "http://127.0.0.1:1/cb", Scopes: []string{"openid", "email"},
				State: "state", Nonce: "nonce", ResponseType: "code", CodeChallenge: "ch", CodeChallengeMethod: "S256",
				Prompt: []string{"login"}, LoginHint: "alice", ExpiresAt: f.clock.Now().Add(ttl)}
		}
		r := pending(10 * time.Minute)
		// Nothing is stored while a request is pending.
		_, err := s.AuthRequestByID(ctx, r.ID)
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, s.SaveCode(ctx, "early", r.ID, f.clock.Now().Add(time.Minute)), store.ErrNotFound)

		if err := s.InsertCompletedAuthRequest(ctx, r, f.user.ID, []string{"pwd"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		again := *r
		wantErr(t, s.InsertCompletedAuthRequest(ctx, &again, f.user.ID, nil, time.Minute), store.ErrConflict)
		got, err := s.AuthRequestByID(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Done() || got.UserID != f.user.ID || got.AuthTime.IsZero() || strings.Join(got.AMR, ",") != "pwd" ||
			got.Nonce != "nonce" || strings.Join(got.Scopes, ",") != "openid,email" || got.CodeChallenge != "ch" ||
			strings.Join(got.Prompt, ",") != "login" || got.LoginHint != "alice" || got.RedirectURI != r.RedirectURI {
			t.Fatalf("completed request = %+v", got)
		}
		if err := s.SaveCode(ctx, "code-1", r.ID, f.clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.SaveCode(ctx, "code-2", r.ID, f.clock.Now().Add(time.Minute)), store.ErrConflict)

		// Once its code was redeemed the row goes, and the request still
		// cannot be completed again.
		if _, err := s.RedeemCode(ctx, "code-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAuthRequest(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		again = *r
		wantErr(t, s.InsertCompletedAuthRequest(ctx, &again, f.user.ID, nil, time.Minute), store.ErrConflict)

		// Expiry.
		f.clock.Advance(11 * time.Minute)
		_, err = s.AuthRequestByID(ctx, r.ID)
		wantErr(t, err, store.ErrNotFound)
		late := pending(time.Minute)
		f.clock.Advance(2 * time.Minute)
		wantErr(t, s.InsertCompletedAuthRequest(ctx, late, f.user.ID, nil, time.Minute), store.ErrNotFound)

		// A request completed near its end lives on long enough for its code.
		short := pending(time.Second)
		if err := s.InsertCompletedAuthRequest(ctx, short, f.user.ID, nil, time.Minute); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(30 * time.Second)
		if _, err := s.AuthRequestByID(ctx, short.ID); err != nil {
			t.Fatalf("completed request expired before minRemaining: %v", err)
		}
	})
}

// TestCompleteAuthRequestOnce completes one request concurrently from two
// stores on one database (two replicas, for PostgreSQL): exactly one wins.
func TestCompleteAuthRequestOnce(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		other := b.Reopen(t, f.s, store.Options{Now: f.clock.Now})
		id := store.NewID()
		var wg sync.WaitGroup
		results := make([]error, 8)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := f.s
				if i%2 == 1 {
					st = other
				}
				r := &store.AuthRequest{ID: id, ClientID: "cli", RedirectURI: "http://127.0.0.1:1/cb", ResponseType: "code",
					ExpiresAt: f.clock.Now().Add(time.Minute)}
				results[i] = st.InsertCompletedAuthRequest(ctx, r, f.user.ID, []string{"pwd"}, time.Minute)
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range results {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrConflict):
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d completions succeeded, want exactly 1", ok)
		}
	})
}

func TestRedeemCode(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s := f.s
		r := f.completedRequest(t, "the-code")
		got, err := s.RedeemCode(ctx, "the-code")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != r.ID || got.UserID != f.user.ID {
			t.Fatalf("RedeemCode = %+v", got)
		}
		// Tokens issued from the code.
		rt := "rt-from-code"
		if _, err := s.CreateRefreshToken(ctx, rt, f.grant(r.ID), f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordAccessToken(ctx, &store.AccessToken{ID: "at-from-code", GrantID: r.ID, UserID: f.user.ID, ClientID: "cli", ExpiresAt: f.clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAuthRequest(ctx, r.ID); err != nil {
			t.Fatal(err)
		}

		// A replay fails and revokes what the code produced.
		_, err = s.RedeemCode(ctx, "the-code")
		wantErr(t, err, store.ErrReused)
		_, err = s.RefreshTokenByValue(ctx, rt)
		wantErr(t, err, store.ErrRevoked)
		_, err = s.ActiveAccessToken(ctx, "at-from-code")
		wantErr(t, err, store.ErrRevoked)

		_, err = s.RedeemCode(ctx, "never-issued")
		wantErr(t, err, store.ErrNotFound)

		f.completedRequest(t, "slow-code")
		f.clock.Advance(61 * time.Second)
		_, err = s.RedeemCode(ctx, "slow-code")
		wantErr(t, err, store.ErrNotFound)
	})
}

func TestConcurrentRedeemCodeOnce(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		f.completedRequest(t, "race-code")
		other := b.Reopen(t, f.s, store.Options{Now: f.clock.Now})
		var wg sync.WaitGroup
		results := make([]error, 6)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := f.s
				if i%2 == 1 {
					st = other
				}
				_, results[i] = st.RedeemCode(ctx, "race-code")
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range results {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrReused):
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d redemptions succeeded, want exactly 1", ok)
		}
	})
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s := f.s
		exp := f.clock.Now().Add(time.Hour)
		id1, err := s.CreateRefreshToken(ctx, "rt-1", f.grant("fam"), exp)
		if err != nil {
			t.Fatal(err)
		}
		t1, err := s.RefreshTokenByValue(ctx, "rt-1")
		if err != nil {
			t.Fatal(err)
		}
		if t1.ID != id1 || t1.Grant.ID != "fam" || t1.UserID != f.user.ID || strings.Join(t1.Scopes, " ") != "openid offline_access" ||
			strings.Join(t1.Audience, " ") != "cli" || strings.Join(t1.AMR, " ") != "pwd" {
			t.Fatalf("RefreshTokenByValue = %+v", t1)
		}
		id2, err := s.RotateRefreshToken(ctx, id1, "rt-2", []string{"openid"}, exp)
		if err != nil {
			t.Fatal(err)
		}
		t2, err := s.RefreshTokenByValue(ctx, "rt-2")
		if err != nil {
			t.Fatal(err)
		}
		if t2.ID != id2 || t2.Grant.ID != "fam" || strings.Join(t2.Scopes, " ") != "openid" {
			t.Fatalf("rotated token = %+v", t2)
		}
		// Presenting the used token again revokes the family.
		_, err = s.RefreshTokenByValue(ctx, "rt-1")
		wantErr(t, err, store.ErrReused)
		_, err = s.RefreshTokenByValue(ctx, "rt-2")
		wantErr(t, err, store.ErrRevoked)
		_, err = s.RotateRefreshToken(ctx, id2, "rt-3", nil, exp)
		wantErr(t, err, store.ErrReused)

		// Expiry and explicit revocation.
		id4, err := s.CreateRefreshToken(ctx, "rt-4", f.grant("fam2"), f.clock.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRefreshToken(ctx, "rt-5", f.grant("fam3"), f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		t5, _ := s.RefreshTokenByValue(ctx, "rt-5")
		if err := s.RevokeRefreshToken(ctx, t5.ID); err != nil {
			t.Fatal(err)
		}
		_, err = s.RefreshTokenByValue(ctx, "rt-5")
		wantErr(t, err, store.ErrRevoked)
		f.clock.Advance(2 * time.Minute)
		_, err = s.RefreshTokenByValue(ctx, "rt-4")
		wantErr(t, err, store.ErrNotFound)
		_, err = s.RotateRefreshToken(ctx, id4, "rt-6", nil, exp)
		wantErr(t, err, store.ErrReused)
		_, err = s.RefreshTokenByValue(ctx, "unknown")
		wantErr(t, err, store.ErrNotFound)
	})
}

func TestConcurrentRotationOneWins(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		id, err := f.s.CreateRefreshToken(ctx, "rt", f.grant("fam"), f.clock.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		other := b.Reopen(t, f.s, store.Options{Now: f.clock.Now})
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := f.s
				if i%2 == 1 {
					st = other
				}
				_, errs[i] = st.RotateRefreshToken(ctx, id, "next-"+string(rune('a'+i)), nil, f.clock.Now().Add(time.Hour))
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else if !errors.Is(err, store.ErrReused) {
				t.Errorf("unexpected error: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d rotations succeeded, want 1", ok)
		}
	})
}

func TestAccessTokens(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s := f.s
		at := &store.AccessToken{ID: "jti", GrantID: "g", UserID: f.user.ID, ClientID: "cli", Scopes: []string{"openid", "email"}, ExpiresAt: f.clock.Now().Add(15 * time.Minute)}
		if err := s.RecordAccessToken(ctx, at); err != nil {
			t.Fatal(err)
		}
		got, err := s.ActiveAccessToken(ctx, "jti")
		if err != nil {
			t.Fatal(err)
		}
		if got.UserID != f.user.ID || strings.Join(got.Scopes, " ") != "openid email" || got.GrantID != "g" {
			t.Fatalf("ActiveAccessToken = %+v", got)
		}
		if err := s.RevokeAccessToken(ctx, "jti"); err != nil {
			t.Fatal(err)
		}
		_, err = s.ActiveAccessToken(ctx, "jti")
		wantErr(t, err, store.ErrRevoked)

		at2 := &store.AccessToken{ID: "jti2", GrantID: "g2", UserID: f.user.ID, ClientID: "cli", ExpiresAt: f.clock.Now().Add(time.Minute)}
		if err := s.RecordAccessToken(ctx, at2); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(2 * time.Minute)
		_, err = s.ActiveAccessToken(ctx, "jti2")
		wantErr(t, err, store.ErrNotFound)
		_, err = s.ActiveAccessToken(ctx, "nope")
		wantErr(t, err, store.ErrNotFound)
	})
}

func TestRevokeGrant(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		for _, tc := range []struct {
			name             string
			grant, user, cli string // what RevokeGrant is asked; "" means the target's own
			want             int64
		}{
			{"its own user and client", "", "", "", 2},
			{"another user", "", "someone-else", "", 0},
			{"another client", "", "", "other-client", 0},
			{"unknown grant", "no-such-grant", "", "", 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, b)
				s := f.s
				exp := f.clock.Now().Add(time.Hour)
				// Two grants of the same user at the same client: two logins.
				for _, g := range []string{"target", "bystander"} {
					if _, err := s.CreateRefreshToken(ctx, "rt-"+g, f.grant(g), exp); err != nil {
						t.Fatal(err)
					}
					if err := s.RecordAccessToken(ctx, &store.AccessToken{ID: "at-" + g, GrantID: g, UserID: f.user.ID, ClientID: "cli", ExpiresAt: exp}); err != nil {
						t.Fatal(err)
					}
				}
				grant, user, cli := "target", f.user.ID, "cli"
				if tc.grant != "" {
					grant = tc.grant
				}
				if tc.user != "" {
					user = tc.user
				}
				if tc.cli != "" {
					cli = tc.cli
				}
				n, err := s.RevokeGrant(ctx, grant, user, cli)
				if err != nil {
					t.Fatal(err)
				}
				if n != tc.want {
					t.Fatalf("RevokeGrant revoked %d tokens, want %d", n, tc.want)
				}
				_, rtErr := s.RefreshTokenByValue(ctx, "rt-target")
				_, atErr := s.ActiveAccessToken(ctx, "at-target")
				if revoked := errors.Is(rtErr, store.ErrRevoked) && errors.Is(atErr, store.ErrRevoked); revoked != (tc.want > 0) {
					t.Errorf("target grant: refresh %v, access %v", rtErr, atErr)
				}
				if _, err := s.RefreshTokenByValue(ctx, "rt-bystander"); err != nil {
					t.Errorf("the other grant's refresh token: %v", err)
				}
				if _, err := s.ActiveAccessToken(ctx, "at-bystander"); err != nil {
					t.Errorf("the other grant's access token: %v", err)
				}
				// Revoking again finds nothing left to revoke.
				if n, err := s.RevokeGrant(ctx, grant, user, cli); err != nil || n != 0 {
					t.Errorf("second RevokeGrant = %d, %v", n, err)
				}
			})
		}
	})
}

func TestSigningKeysOneRotatorWins(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Time{})
		s := b.Open(t, store.Options{Now: clock.Now})
		procs := []*store.Store{s, b.Reopen(t, s, store.Options{Now: clock.Now}), b.Reopen(t, s, store.Options{Now: clock.Now})}
		var wg sync.WaitGroup
		for i, st := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := st.UpdateSigningKeys(ctx, func(keys []store.SigningKey) (store.KeyChange, error) {
					if len(keys) > 0 {
						return store.KeyChange{}, nil
					}
					// Widen the race window: a lock that does not hold lets a
					// second process in here.
					time.Sleep(50 * time.Millisecond)
					return store.KeyChange{Add: &store.SigningKey{ID: "k" + string(rune('0'+i)), Algorithm: "RS256", PrivateKey: []byte{1}, ActivatesAt: clock.Now()}}, nil
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		keys, err := s.SigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 {
			t.Fatalf("%d keys after concurrent first starts, want 1", len(keys))
		}

		// Scheduling expiry, and expiry hiding the key.
		first := keys[0].ID
		err = s.UpdateSigningKeys(ctx, func(keys []store.SigningKey) (store.KeyChange, error) {
			return store.KeyChange{
				Add:    &store.SigningKey{ID: "next", Algorithm: "RS256", PrivateKey: []byte{2}, ActivatesAt: clock.Now().Add(time.Minute)},
				Expire: map[string]time.Time{first: clock.Now().Add(time.Hour)},
			}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		keys, _ = s.SigningKeys(ctx)
		if len(keys) != 2 || keys[0].ID != first || keys[1].ID != "next" || keys[0].ExpiresAt.IsZero() || !keys[1].ExpiresAt.IsZero() {
			t.Fatalf("keys = %+v", keys)
		}
		clock.Advance(time.Hour + time.Second)
		keys, _ = s.SigningKeys(ctx)
		if len(keys) != 1 || keys[0].ID != "next" || !bytes.Equal(keys[0].PrivateKey, []byte{2}) {
			t.Fatalf("keys after expiry = %+v", keys)
		}
		err = s.UpdateSigningKeys(ctx, func([]store.SigningKey) (store.KeyChange, error) {
			return store.KeyChange{}, errors.New("decided to fail")
		})
		if err == nil || !strings.Contains(err.Error(), "decided to fail") {
			t.Fatalf("UpdateSigningKeys error = %v", err)
		}
	})
}

func TestLoginAttemptCounters(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Time{})
		s := b.Open(t, store.Options{Now: clock.Now})
		other := b.Reopen(t, s, store.Options{Now: clock.Now})
		alice := []store.AttemptCounter{{Key: "addr:192.0.2.1"}, {Key: "user:alice", Account: "alice"}}
		reserve := func(st *store.Store, c []store.AttemptCounter) (bool, time.Time) {
			t.Helper()
			r, err := st.ReserveLoginAttempt(ctx, c, 3, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return r.OK, r.RetryAt
		}
		count := func(key string) int { return attemptsIn(t, s, key) }
		start := clock.Now()
		for i := 1; i <= 3; i++ {
			st := []*store.Store{s, other}[i%2]
			r, err := st.ReserveLoginAttempt(ctx, alice, 3, time.Minute)
			if err != nil || !r.OK || r.Remaining != 3-i {
				t.Fatalf("attempt %d: %+v, %v; want OK with %d remaining", i, r, err, 3-i)
			}
			if i == 3 && (r.Full != "addr:192.0.2.1" || !r.RetryAt.Equal(start.Add(time.Minute))) {
				t.Fatalf("the attempt that fills the counters: %+v, want it to name the full counter and its window end", r)
			}
			clock.Advance(10 * time.Second)
		}
		r, err := other.ReserveLoginAttempt(ctx, alice, 3, time.Minute)
		if err != nil || r.OK || r.Full != "addr:192.0.2.1" {
			t.Fatalf("fourth attempt in the window: %+v, %v; want refused by the address counter", r, err)
		}
		retryAt := r.RetryAt
		if !retryAt.Equal(start.Add(time.Minute)) {
			t.Fatalf("retry at %v, want the window's end %v", retryAt, start.Add(time.Minute))
		}
		// All or nothing: the refusal counted nothing, on either counter.
		if count("addr:192.0.2.1") != 3 || count("user:alice") != 3 {
			t.Fatalf("counters after a refusal = %d, %d; want 3, 3", count("addr:192.0.2.1"), count("user:alice"))
		}
		// A full account counter refuses another address too, and leaves
		// that address's counter untouched.
		if ok, _ := reserve(s, []store.AttemptCounter{{Key: "addr:192.0.2.2"}, {Key: "user:alice", Account: "alice"}}); ok {
			t.Fatal("a full account counter did not refuse another address")
		}
		if n := count("addr:192.0.2.2"); n != 0 {
			t.Fatalf("refused attempt counted %d on the other address", n)
		}
		// Releasing gives one place back.
		if err := s.ReleaseLoginAttempt(ctx, store.AttemptCounter{Key: "user:alice", Account: "alice"}); err != nil {
			t.Fatal(err)
		}
		if n := count("user:alice"); n != 2 {
			t.Fatalf("after a release: %d, want 2", n)
		}
		// The window closes: a new one opens with the next attempt.
		clock.Advance(time.Minute)
		if count("user:alice") != 0 {
			t.Fatal("counter still counts after its window")
		}
		if ok, _ := reserve(s, alice); !ok || count("user:alice") != 1 {
			t.Fatalf("first attempt of a new window: ok=%v count=%d", ok, count("user:alice"))
		}
		// Unlocking an account clears its counters, not addresses'.
		if _, err := s.ReserveLoginAttempt(ctx, []store.AttemptCounter{{Key: "dev:x", Account: "alice"}}, 3, time.Minute); err != nil {
			t.Fatal(err)
		}
		n, err := other.ClearAccountLoginAttempts(ctx, "alice")
		if err != nil || n != (store.Unlocked{Counters: 2}) {
			t.Fatalf("ClearAccountLoginAttempts = %+v, %v; want 2 counters and no address", n, err)
		}
		if count("user:alice") != 0 || count("dev:x") != 0 || count("addr:192.0.2.1") != 1 {
			t.Fatalf("after unlock: user %d dev %d addr %d", count("user:alice"), count("dev:x"), count("addr:192.0.2.1"))
		}
		if err := s.ClearLoginAttempts(ctx, "addr:192.0.2.1"); err != nil || count("addr:192.0.2.1") != 0 {
			t.Fatalf("ClearLoginAttempts: %v, count %d", err, count("addr:192.0.2.1"))
		}
	})
}

// attemptsIn is how many attempts s's counter key holds in its open
// one-minute window.
func attemptsIn(t *testing.T, s *store.Store, key string) int {
	t.Helper()
	n, err := s.LoginAttempts(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestUnlockTakesAccountAttemptsOffAddresses: attempts reserved on an
// address counter for an account (At) are taken off that counter when the
// account is unlocked, in the counter's current window only; attempts at
// other accounts stay, and a released attempt leaves the share too.
func TestUnlockTakesAccountAttemptsOffAddresses(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Time{})
		s := b.Open(t, store.Options{Now: clock.Now})
		other := b.Reopen(t, s, store.Options{Now: clock.Now})
		at := func(addr, account string) []store.AttemptCounter {
			return []store.AttemptCounter{{Key: "addr:" + addr, At: account}, {Key: "user:" + account, Account: account}}
		}
		reserve := func(st *store.Store, c []store.AttemptCounter, times int) {
			t.Helper()
			for range times {
				if r, err := st.ReserveLoginAttempt(ctx, c, 10, time.Minute); err != nil || !r.OK {
					t.Fatalf("reserve %v: %+v, %v", c, r, err)
				}
			}
		}
		count := func(key string) int { return attemptsIn(t, s, key) }
		// One address tries alice 4 times and bob twice; another tries
		// alice once; one of the first address's alice attempts is given
		// back (its password was never checked).
		reserve(s, at("192.0.2.1", "alice"), 4)
		reserve(other, at("192.0.2.1", "bob"), 2)
		reserve(other, at("192.0.2.2", "alice"), 1)
		if err := s.ReleaseLoginAttempt(ctx, at("192.0.2.1", "alice")[0]); err != nil {
			t.Fatal(err)
		}
		if count("addr:192.0.2.1") != 5 {
			t.Fatalf("address counter = %d, want 5", count("addr:192.0.2.1"))
		}
		u, err := other.ClearAccountLoginAttempts(ctx, "alice")
		if err != nil || u != (store.Unlocked{Counters: 1, Addresses: 2}) {
			t.Fatalf("ClearAccountLoginAttempts = %+v, %v; want alice's counter and 2 addresses", u, err)
		}
		for key, want := range map[string]int{"addr:192.0.2.1": 2, "addr:192.0.2.2": 0, "user:alice": 0, "user:bob": 2} {
			if n := count(key); n != want {
				t.Errorf("after unlocking alice: %s = %d, want %d", key, n, want)
			}
		}
		// Unlocking again finds nothing to take off.
		if u, err := s.ClearAccountLoginAttempts(ctx, "alice"); err != nil || u != (store.Unlocked{}) {
			t.Fatalf("second unlock = %+v, %v; want nothing", u, err)
		}
		// A share of a closed window takes nothing off the next one.
		reserve(s, at("192.0.2.3", "carol"), 3)
		clock.Advance(time.Minute)
		reserve(s, at("192.0.2.3", "dave"), 1)
		reserve(s, at("192.0.2.3", "carol"), 1)
		if u, err := s.ClearAccountLoginAttempts(ctx, "carol"); err != nil || u.Addresses != 1 {
			t.Fatalf("unlock carol = %+v, %v", u, err)
		}
		if n := count("addr:192.0.2.3"); n != 1 {
			t.Fatalf("after unlocking carol: the address counts %d, want dave's 1 (carol's attempts of the closed window are gone with it)", n)
		}
	})
}

// TestLoginAttemptsUnderConcurrency reserves 200 attempts at once, split
// across two handles on one database (two replicas, for PostgreSQL): no
// more than the limit get a place.
func TestLoginAttemptsUnderConcurrency(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t, store.Options{})
		replicas := []*store.Store{s, b.Reopen(t, s, store.Options{})}
		const limit, attempts = 5, 200
		counters := []store.AttemptCounter{{Key: "user:alice", Account: "alice"}, {Key: "addr:192.0.2.1"}}
		var granted atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, attempts)
		for i := range attempts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// Half the attempts name the counters in the other order.
				c := counters
				if i%2 == 1 {
					c = []store.AttemptCounter{counters[1], counters[0]}
				}
				r, err := replicas[i%2].ReserveLoginAttempt(ctx, c, limit, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if r.OK {
					granted.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("reservation failed: %v", err)
		}
		if n := granted.Load(); n != limit {
			t.Fatalf("%d of %d simultaneous attempts got a place, want exactly %d", n, attempts, limit)
		}
	})
}

func TestDeleteExpired(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s := f.s
		f.completedRequest(t, "c")
		if _, err := s.CreateRefreshToken(ctx, "rt", f.grant("g"), f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordAccessToken(ctx, &store.AccessToken{ID: "a", GrantID: "g", UserID: f.user.ID, ClientID: "cli", ExpiresAt: f.clock.Now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		n, err := s.DeleteExpired(ctx)
		if err != nil || n != 0 {
			t.Fatalf("DeleteExpired with nothing expired = %d, %v", n, err)
		}
		f.clock.Advance(25 * time.Hour)
		n, err = s.DeleteExpired(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 4 { // auth request, code, refresh token, access token
			t.Fatalf("DeleteExpired removed %d rows, want 4", n)
		}
	})
}

// TestSecretsNotStoredInClear looks for raw codes, tokens and client
// secrets in the SQLite file itself.
func TestSecretsNotStoredInClear(t *testing.T) {
	t.Parallel()
	var b storetest.Backend
	for _, bb := range storetest.Backends() {
		if bb.Name == "sqlite" {
			b = bb
		}
	}
	f := newFixture(t, b)
	const code = "CODE-7f3a9c1e5b2d4f60"
	const rt = "REFRESH-9b8a7c6d5e4f3a2b"
	if _, err := f.s.EnsureClient(ctx, &store.Client{ID: "c2", SecretHash: store.HashSecret("CLIENTSECRET-1a2b3c4d")}); err != nil {
		t.Fatal(err)
	}
	f.completedRequest(t, code)
	if _, err := f.s.CreateRefreshToken(ctx, rt, f.grant("g"), f.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	dir := storetest.SQLiteDir(t, f.s)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("no database files")
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{code, rt, "CLIENTSECRET-1a2b3c4d"} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s contains a secret in clear", e.Name())
			}
		}
		if e.Name() == store.SQLiteFileName {
			info, _ := e.Info()
			if info.Mode().Perm() != 0o600 {
				t.Errorf("database file mode = %v, want 0600", info.Mode().Perm())
			}
		}
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := store.OpenSQLite(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a newer nsauth having migrated the database.
	if _, err := s.EnsureValue(ctx, "unused", "x"); err != nil {
		t.Fatal(err)
	}
	if err := store.BumpSchemaForTest(s); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	_, err = store.OpenSQLite(ctx, dir, store.Options{})
	if err == nil || !strings.Contains(err.Error(), "newer than this nsauth supports") {
		t.Fatalf("OpenSQLite on a newer schema = %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, notWant string }{
		{"userinfo password", "postgres://u:hunter2@db:5432/x", "hunter2"},
		{"query password", "postgres://u@db/x?password=hunter2", "hunter2"},
		{"key=value string", "host=db password=hunter2", "hunter2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := store.RedactURL(tc.in); strings.Contains(got, tc.notWant) {
				t.Fatalf("RedactURL(%q) = %q", tc.in, got)
			}
		})
	}
}

func TestSwapValue(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t, store.Options{})
		other := b.Reopen(t, s, store.Options{})
		for i, step := range []struct {
			st              *store.Store
			value, wantPrev string
		}{
			{s, "http://a.example", ""},
			{other, "http://b.example", "http://a.example"},
			{s, "http://b.example", "http://b.example"},
		} {
			prev, err := step.st.SwapValue(ctx, "issuer_url", step.value)
			if err != nil || prev != step.wantPrev {
				t.Fatalf("step %d: SwapValue = %q, %v; want %q", i, prev, err, step.wantPrev)
			}
		}
		if v, err := s.Value(ctx, "issuer_url"); err != nil || v != "http://b.example" {
			t.Fatalf("Value = %q, %v", v, err)
		}
	})
}

// TestServedIssuer: the issuer a server records is what the commands that
// open the store read back (federation add refuses it), "" before any.
func TestServedIssuer(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t, store.Options{})
		other := b.Reopen(t, s, store.Options{})
		if v, err := other.ServedIssuer(ctx); err != nil || v != "" {
			t.Fatalf("ServedIssuer of data never served = %q, %v; want \"\"", v, err)
		}
		for i, step := range []struct{ value, wantPrev string }{{"http://127.0.0.1:8080", ""}, {"https://auth.example", "http://127.0.0.1:8080"}} {
			if prev, err := s.RecordServedIssuer(ctx, step.value); err != nil || prev != step.wantPrev {
				t.Fatalf("step %d: RecordServedIssuer = %q, %v; want %q", i, prev, err, step.wantPrev)
			}
		}
		if v, err := other.ServedIssuer(ctx); err != nil || v != "https://auth.example" {
			t.Fatalf("ServedIssuer = %q, %v", v, err)
		}
	})
}
