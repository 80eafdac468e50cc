package store_test

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func TestSecondFactorsLifecycle(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s, uid := f.s, f.user.ID
		got, err := s.SecondFactors(ctx, uid)
		if err != nil || got != (store.SecondFactors{}) {
			t.Fatalf("SecondFactors before enrolment = %+v, %v", got, err)
		}
		codes := []string{"AAAA-BBBB-CCCC-DDDD", "EEEE-FFFF-GGGG-HHHH"}
		if err := s.EnrollTOTP(ctx, uid, "JBSWY3DPEHPK3PXP", 100, codes); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.EnrollTOTP(ctx, uid, "OTHERSECRET", 100, nil), store.ErrConflict)
		wantErr(t, s.EnrollTOTP(ctx, "no-such-user", "JBSWY3DPEHPK3PXP", 1, nil), store.ErrNotFound)
		got, err = s.SecondFactors(ctx, uid)
		if err != nil || got != (store.SecondFactors{TOTP: true, RecoveryCodes: 2}) || !got.Any() {
			t.Fatalf("SecondFactors after enrolment = %+v, %v", got, err)
		}
		secret, last, err := s.TOTPSecret(ctx, uid)
		if err != nil || secret != "JBSWY3DPEHPK3PXP" || last != 100 {
			t.Fatalf("TOTPSecret = %q, %d, %v", secret, last, err)
		}

		steps := []struct {
			name string
			step int64
			want error
		}{
			{"the confirming code's step", 100, store.ErrReused},
			{"an earlier step", 99, store.ErrReused},
			{"the next step", 101, nil},
			{"the same again", 101, store.ErrReused},
			{"a later step", 103, nil},
			{"back within the skew", 102, store.ErrReused},
		}
		for _, st := range steps {
			err := s.UseTOTPStep(ctx, uid, st.step)
			if st.want == nil && err != nil || st.want != nil && !errors.Is(err, st.want) {
				t.Errorf("%s: UseTOTPStep(%d) = %v, want %v", st.name, st.step, err, st.want)
			}
		}
		wantErr(t, s.UseTOTPStep(ctx, "no-such-user", 5), store.ErrNotFound)

		if err := s.UseRecoveryCode(ctx, uid, codes[0]); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.UseRecoveryCode(ctx, uid, codes[0]), store.ErrNotFound)
		wantErr(t, s.UseRecoveryCode(ctx, uid, "ZZZZ-ZZZZ-ZZZZ-ZZZZ"), store.ErrNotFound)
		if got, _ := s.SecondFactors(ctx, uid); got.RecoveryCodes != 1 {
			t.Fatalf("after one use: %+v", got)
		}

		if err := s.RemoveTOTP(ctx, uid); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.RemoveTOTP(ctx, uid), store.ErrNotFound)
		if got, _ := s.SecondFactors(ctx, uid); got != (store.SecondFactors{RecoveryCodes: 1}) || got.Any() {
			t.Fatalf("after RemoveTOTP: %+v", got)
		}
		if err := s.EnrollTOTP(ctx, uid, "JBSWY3DPEHPK3PXP", 7, codes); err != nil {
			t.Fatal(err)
		}
		p := &store.PendingMFA{AuthRequestID: "ar", UserID: uid, AMR: []string{"pwd"}, Kind: store.PendingVerify, ExpiresAt: f.clock.Now().Add(time.Minute)}
		if err := s.CreatePendingMFA(ctx, p, "pending-token"); err != nil {
			t.Fatal(err)
		}
		n, err := s.ResetSecondFactors(ctx, uid)
		if err != nil || n != 4 {
			t.Fatalf("ResetSecondFactors = %d, %v; want 4 rows (secret, two codes, pending login)", n, err)
		}
		if got, _ := s.SecondFactors(ctx, uid); got != (store.SecondFactors{}) {
			t.Fatalf("after reset: %+v", got)
		}
		_, err = s.PendingMFA(ctx, "pending-token")
		wantErr(t, err, store.ErrNotFound)
	})
}

// TestSecondFactorSingleUseUnderRace: of simultaneous uses of one TOTP
// step, or of one recovery code, or takes of one pending login, exactly
// one succeeds, on every backend (two store handles on PostgreSQL: two
// replicas).
func TestSecondFactorSingleUseUnderRace(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		other := b.Reopen(t, f.s, store.Options{Now: f.clock.Now})
		uid := f.user.ID
		if err := f.s.EnrollTOTP(ctx, uid, "JBSWY3DPEHPK3PXP", 0, []string{"AAAA-BBBB-CCCC-DDDD"}); err != nil {
			t.Fatal(err)
		}
		p := &store.PendingMFA{AuthRequestID: "ar", UserID: uid, AMR: []string{"pwd"}, Kind: store.PendingVerify, ExpiresAt: f.clock.Now().Add(time.Minute)}
		if err := f.s.CreatePendingMFA(ctx, p, "pending-token"); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			use  func(s *store.Store) error
		}{
			{"one TOTP step", func(s *store.Store) error { return s.UseTOTPStep(ctx, uid, 42) }},
			{"one recovery code", func(s *store.Store) error { return s.UseRecoveryCode(ctx, uid, "AAAA-BBBB-CCCC-DDDD") }},
			{"one pending login", func(s *store.Store) error { _, err := s.TakePendingMFA(ctx, "pending-token"); return err }},
		}
		for _, c := range cases {
			const n = 8
			var wg sync.WaitGroup
			var mu sync.Mutex
			wins, losses := 0, 0
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := f.s
					if i%2 == 1 {
						s = other
					}
					err := c.use(s)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						wins++
					case errors.Is(err, store.ErrReused) || errors.Is(err, store.ErrNotFound):
						losses++
					default:
						t.Errorf("%s: unexpected error %v", c.name, err)
					}
				}()
			}
			wg.Wait()
			if wins != 1 || losses != n-1 {
				t.Errorf("%s: %d of %d simultaneous uses succeeded (%d refused), want exactly 1", c.name, wins, n, losses)
			}
		}
	})
}

func TestPendingMFA(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s, uid := f.s, f.user.ID
		exp := f.clock.Now().Add(5 * time.Minute)
		p := &store.PendingMFA{AuthRequestID: "ar-1", UserID: uid, AMR: []string{"pwd"}, Kind: store.PendingEnroll, TOTPSecret: "JBSWY3DPEHPK3PXP", ExpiresAt: exp}
		if err := s.CreatePendingMFA(ctx, p, "token-1"); err != nil {
			t.Fatal(err)
		}
		got, err := s.PendingMFA(ctx, "token-1")
		if err != nil || got.AuthRequestID != "ar-1" || got.UserID != uid || !slices.Equal(got.AMR, []string{"pwd"}) ||
			got.Kind != store.PendingEnroll || got.TOTPSecret != "JBSWY3DPEHPK3PXP" || !got.ExpiresAt.Equal(exp) {
			t.Fatalf("PendingMFA = %+v, %v", got, err)
		}
		if _, err := s.PendingMFA(ctx, "token-2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown token: %v", err)
		}
		bad := []struct {
			name string
			p    store.PendingMFA
		}{
			{"no auth request", store.PendingMFA{UserID: uid, Kind: store.PendingVerify, ExpiresAt: exp}},
			{"no user", store.PendingMFA{AuthRequestID: "a", Kind: store.PendingVerify, ExpiresAt: exp}},
			{"unknown kind", store.PendingMFA{AuthRequestID: "a", UserID: uid, Kind: "other", ExpiresAt: exp}},
			{"no expiry", store.PendingMFA{AuthRequestID: "a", UserID: uid, Kind: store.PendingVerify}},
		}
		for _, c := range bad {
			if err := s.CreatePendingMFA(ctx, &c.p, "t"); err == nil {
				t.Errorf("%s: CreatePendingMFA accepted it", c.name)
			}
		}

		// Bounded per user: the oldest go.
		for i := range store.MaxPendingMFAPerUser + 2 {
			f.clock.Advance(time.Millisecond)
			q := &store.PendingMFA{AuthRequestID: "ar", UserID: uid, Kind: store.PendingVerify, ExpiresAt: f.clock.Now().Add(time.Minute)}
			if err := s.CreatePendingMFA(ctx, q, "bound-"+string(rune('a'+i))); err != nil {
				t.Fatal(err)
			}
		}
		kept := 0
		for i := range store.MaxPendingMFAPerUser + 2 {
			if _, err := s.PendingMFA(ctx, "bound-"+string(rune('a'+i))); err == nil {
				kept++
			} else if i >= 2 {
				t.Errorf("a recent pending login (%d) was dropped: %v", i, err)
			}
		}
		if _, err := s.PendingMFA(ctx, "token-1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the oldest pending login survived %d newer ones: %v", store.MaxPendingMFAPerUser+2, err)
		}
		if kept != store.MaxPendingMFAPerUser {
			t.Errorf("kept %d pending logins, want %d", kept, store.MaxPendingMFAPerUser)
		}

		// Expiry: not returned, not taken, and collected.
		f.clock.Advance(2 * time.Minute)
		if _, err := s.TakePendingMFA(ctx, "bound-g"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an expired pending login was taken: %v", err)
		}
		if _, err := s.DeleteExpired(ctx); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := s.QueryRowForTest(ctx, `SELECT COUNT(*) FROM nsauth_mfa_pending`).Scan(&left); err != nil || left != 0 {
			t.Errorf("%d expired pending logins left after DeleteExpired (%v)", left, err)
		}
	})
}

// TestSecondFactorSecretsSealed: a TOTP secret is not in the database in
// clear, is bound to its user's row, and is sealed again by a key
// rotation.
func TestSecondFactorSecretsSealed(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		const secret = "KRSXG5CTMVRXEZLUKN2XAZLDNFZGK5BB"
		if err := f.s.EnrollTOTP(ctx, f.user.ID, secret, 0, nil); err != nil {
			t.Fatal(err)
		}
		p := &store.PendingMFA{AuthRequestID: "a", UserID: f.user.ID, Kind: store.PendingEnroll, TOTPSecret: secret, ExpiresAt: f.clock.Now().Add(time.Minute)}
		if err := f.s.CreatePendingMFA(ctx, p, "tok"); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{`SELECT secret FROM nsauth_totp`, `SELECT totp_secret FROM nsauth_mfa_pending`} {
			raw, err := store.RawForTest(f.s, q)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte(secret)) || !seal.IsSealed(raw) {
				t.Errorf("%s: the secret is stored in clear", q)
			}
		}
		// Bound to its row: alice's secret copied into bob's row opens for
		// neither.
		bob := &store.User{Username: "bob", PasswordHash: "$argon2id$fake"}
		if err := f.s.CreateUser(ctx, bob); err != nil {
			t.Fatal(err)
		}
		if err := f.s.EnrollTOTP(ctx, bob.ID, "GEZDGNBVGY3TQOJQ", 0, nil); err != nil {
			t.Fatal(err)
		}
		if err := store.ExecForTest(f.s, `UPDATE nsauth_totp SET secret = (SELECT secret FROM nsauth_totp WHERE user_id = ?) WHERE user_id = ?`, f.user.ID, bob.ID); err != nil {
			t.Fatal(err)
		}
		if got, _, err := f.s.TOTPSecret(ctx, bob.ID); err == nil {
			t.Fatalf("a secret moved to another user's row opened: %q", got)
		}
		if _, err := f.s.ResetSecondFactors(ctx, bob.ID); err != nil {
			t.Fatal(err)
		}
		// Rotation: a store with a new key (and the old one to open)
		// seals both again, and a store with the new key alone opens them.
		newKey, _ := seal.ParseKey(seal.GenerateKey())
		rot := b.Reopen(t, f.s, store.Options{Now: f.clock.Now, Keyring: seal.NewKeyring(newKey, storetestKey(t))})
		n, err := rot.ResealSecrets(ctx, nil, nil)
		if err != nil || n.SecondFactors != 2 {
			t.Fatalf("ResealSecrets = %+v, %v; want 2 second-factor secrets", n, err)
		}
		only := b.Reopen(t, f.s, store.Options{Now: f.clock.Now, Keyring: seal.NewKeyring(newKey)})
		if got, _, err := only.TOTPSecret(ctx, f.user.ID); err != nil || got != secret {
			t.Fatalf("after rotation: %q, %v", got, err)
		}
		if got, err := only.PendingMFA(ctx, "tok"); err != nil || got.TOTPSecret != secret {
			t.Fatalf("after rotation, the offered secret: %+v, %v", got, err)
		}
	})
}

// storetestKey is the key of storetest.Keyring.
func storetestKey(t *testing.T) *seal.Key {
	t.Helper()
	k, err := seal.ParseKey("bnNhdXRoIHN0b3JldGVzdCBzZWNyZXQga2V5IDMyIGI=")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAddRecoveryCodesIfNone: codes are stored for a user who has none,
// never added to or replacing ones the user has.
func TestAddRecoveryCodesIfNone(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s, uid := f.s, f.user.ID
		first := []string{"AAAA-BBBB-CCCC-DDDD", "EEEE-FFFF-GGGG-HHHH"}
		if err := s.AddRecoveryCodesIfNone(ctx, uid, first); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.AddRecoveryCodesIfNone(ctx, uid, []string{"JJJJ-KKKK-LLLL-MMMM"}), store.ErrConflict)
		wantErr(t, s.AddRecoveryCodesIfNone(ctx, "no-such-user", first), store.ErrNotFound)
		if got, _ := s.SecondFactors(ctx, uid); got.RecoveryCodes != 2 {
			t.Fatalf("recovery codes after a refused second call: %+v", got)
		}
		wantErr(t, s.UseRecoveryCode(ctx, uid, "JJJJ-KKKK-LLLL-MMMM"), store.ErrNotFound)
		for _, c := range first {
			if err := s.UseRecoveryCode(ctx, uid, c); err != nil {
				t.Fatal(err)
			}
		}
		// All used up: the user has none, and gets new ones.
		if err := s.AddRecoveryCodesIfNone(ctx, uid, []string{"JJJJ-KKKK-LLLL-MMMM"}); err != nil {
			t.Fatal(err)
		}
		if err := s.UseRecoveryCode(ctx, uid, "JJJJ-KKKK-LLLL-MMMM"); err != nil {
			t.Fatal(err)
		}
	})
}
