package store_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestAccountLinkCreation: a link needs a known user, a purpose and an
// expiry within MaxLinkTTL; only its secret's digest is stored, and the ID
// the audit trail names is not the secret.
func TestAccountLinkCreation(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s, uid := f.s, f.user.ID
		now := f.clock.Now()
		secret := store.RandomToken(32)
		_, _, err := s.CreateLink(ctx, "no-such-user", store.LinkInvite, secret, now.Add(time.Hour))
		wantErr(t, err, store.ErrNotFound)
		refusals := []struct {
			name, purpose, secret string
			expires               time.Time
		}{
			{"an unknown purpose", "login", secret, now.Add(time.Hour)},
			{"no purpose", "", secret, now.Add(time.Hour)},
			{"no secret", store.LinkReset, "", now.Add(time.Hour)},
			{"an expiry now", store.LinkReset, secret, now},
			{"an expiry past", store.LinkReset, secret, now.Add(-time.Second)},
			{"an expiry too far", store.LinkReset, secret, now.Add(store.MaxLinkTTL + time.Millisecond)},
		}
		for _, tc := range refusals {
			if l, _, err := s.CreateLink(ctx, uid, tc.purpose, tc.secret, tc.expires); err == nil {
				t.Errorf("a link with %s was stored: %+v", tc.name, l)
			}
		}
		l, replaced, err := s.CreateLink(ctx, uid, store.LinkInvite, secret, now.Add(store.MaxLinkTTL))
		if err != nil || replaced != nil {
			t.Fatalf("CreateLink = %+v, %+v, %v", l, replaced, err)
		}
		if l.ID == "" || l.ID == secret || l.UserID != uid || l.Purpose != store.LinkInvite || !l.CreatedAt.Equal(now) || !l.ExpiresAt.Equal(now.Add(store.MaxLinkTTL)) {
			t.Fatalf("created %+v", l)
		}
		stored, err := store.RawForTest(s, `SELECT link_hash FROM nsauth_account_links WHERE user_id = ?`, uid)
		sum := sha256.Sum256([]byte(secret))
		if err != nil || !bytes.Equal(stored, sum[:]) {
			t.Fatalf("stored %x, %v; want the SHA-256 of the secret", stored, err)
		}
		row, err := store.RawForTest(s, `SELECT id || ' ' || user_id || ' ' || purpose FROM nsauth_account_links`)
		if err != nil || strings.Contains(string(row), secret) {
			t.Fatalf("a column holds the secret: %q, %v", row, err)
		}

		for name, got := range map[string]func() (*store.Link, error){
			"LinkBySecret": func() (*store.Link, error) { return s.LinkBySecret(ctx, secret) },
			"UserLink":     func() (*store.Link, error) { return s.UserLink(ctx, uid) },
		} {
			if g, err := got(); err != nil || *g != *l {
				t.Errorf("%s = %+v, %v; want %+v", name, g, err, l)
			}
		}
		for name, secret := range map[string]string{"another secret": store.RandomToken(32), "no secret": "", "the ID": l.ID} {
			_, err := s.LinkBySecret(ctx, secret)
			if !isNotFound(err) {
				t.Errorf("LinkBySecret(%s): %v, want ErrNotFound", name, err)
			}
		}
		_, err = s.UserLink(ctx, "no-such-user")
		wantErr(t, err, store.ErrNotFound)
	})
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// TestAccountLinkUse: a link is used once, by its user, while unexpired
// and the user is enabled; of simultaneous uses from two replicas exactly
// one succeeds.
func TestAccountLinkUse(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s, uid := f.s, f.user.ID
		bob := &store.User{Username: "bob", PasswordHash: "$argon2id$fake"}
		if err := s.CreateUser(ctx, bob); err != nil {
			t.Fatal(err)
		}
		secret := store.RandomToken(32)
		l, _, err := s.CreateLink(ctx, uid, store.LinkReset, secret, f.clock.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for name, take := range map[string]func() error{
			"another user's":   func() error { _, err := s.TakeLink(ctx, secret, bob.ID); return err },
			"another secret":   func() error { _, err := s.TakeLink(ctx, store.RandomToken(32), uid); return err },
			"no secret":        func() error { _, err := s.TakeLink(ctx, "", uid); return err },
			"the ID as secret": func() error { _, err := s.TakeLink(ctx, l.ID, uid); return err },
		} {
			if err := take(); !isNotFound(err) {
				t.Errorf("TakeLink with %s: %v, want ErrNotFound", name, err)
			}
		}

		other := b.Reopen(t, s, store.Options{Now: f.clock.Now})
		wins := together(16, s, other, func(h *store.Store) (string, bool) {
			got, err := h.TakeLink(ctx, secret, uid)
			if err != nil {
				return "", false
			}
			return got.ID, true
		})
		if len(wins) != 1 || wins[0] != l.ID {
			t.Fatalf("simultaneous uses of one link: %d succeeded (%q), want exactly 1 returning %s", len(wins), wins, l.ID)
		}
		if _, err := s.LinkBySecret(ctx, secret); !isNotFound(err) {
			t.Fatalf("a used link is still found: %v", err)
		}

		// A disabled user's link is refused, and disabling deletes it.
		secret = store.RandomToken(32)
		if _, _, err := s.CreateLink(ctx, uid, store.LinkReset, secret, f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.SetDisabled(ctx, "alice", true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LinkBySecret(ctx, secret); !isNotFound(err) {
			t.Fatalf("disabling the user left its link: %v", err)
		}
		if _, _, err := s.CreateLink(ctx, uid, store.LinkReset, secret, f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TakeLink(ctx, secret, uid); !isNotFound(err) {
			t.Fatalf("a disabled user's link was used: %v", err)
		}
		if err := s.SetDisabled(ctx, "alice", false); err != nil {
			t.Fatal(err)
		}
		if got, err := s.TakeLink(ctx, secret, uid); err != nil || got.UserID != uid || got.Purpose != store.LinkReset {
			t.Fatalf("the link of a user enabled again: %+v, %v", got, err)
		}

		// Deleting the user deletes its link.
		if _, _, err := s.CreateLink(ctx, bob.ID, store.LinkInvite, store.RandomToken(32), f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		if n, err := store.RawForTest(s, `SELECT CAST(COUNT(*) AS TEXT) FROM nsauth_account_links`); err != nil || string(n) != "0" {
			t.Fatalf("links left after the user was deleted: %s, %v", n, err)
		}
	})
}

// TestAccountLinkLifetime: a new link replaces the live one (returned to
// be audited as revoked); an expired link is still found, as expired, but
// never used, and deleted a while after; links are revoked and deleted.
func TestAccountLinkLifetime(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b)
		s, uid := f.s, f.user.ID
		first, second := store.RandomToken(32), store.RandomToken(32)
		l1, _, err := s.CreateLink(ctx, uid, store.LinkInvite, first, f.clock.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		l2, replaced, err := s.CreateLink(ctx, uid, store.LinkReset, second, f.clock.Now().Add(time.Hour))
		if err != nil || replaced == nil || *replaced != *l1 || l2.ID == l1.ID {
			t.Fatalf("a second link: %+v replacing %+v, %v; want it to replace %+v", l2, replaced, err, l1)
		}
		if _, err := s.LinkBySecret(ctx, first); !isNotFound(err) {
			t.Fatalf("a replaced link is still found: %v", err)
		}
		if _, err := s.TakeLink(ctx, first, uid); !isNotFound(err) {
			t.Fatalf("a replaced link was used: %v", err)
		}

		// Expiry.
		f.clock.Advance(time.Hour)
		got, err := s.LinkBySecret(ctx, second)
		if err != nil || got.ID != l2.ID || !got.Expired(f.clock.Now()) {
			t.Fatalf("an expired link: %+v, %v; want it found, expired", got, err)
		}
		if _, err := s.TakeLink(ctx, second, uid); !isNotFound(err) {
			t.Fatalf("an expired link was used: %v", err)
		}
		if _, err := s.UserLink(ctx, uid); !isNotFound(err) {
			t.Fatalf("UserLink returned an expired link: %v", err)
		}
		if live, err := s.RevokeUserLinks(ctx, uid); err != nil || len(live) != 0 {
			t.Fatalf("RevokeUserLinks of an expired link: %+v, %v; want none live", live, err)
		}
		if _, err := s.LinkBySecret(ctx, second); !isNotFound(err) {
			t.Fatalf("RevokeUserLinks left the expired link: %v", err)
		}

		// An expired link is kept a week, then deleted; a link it
		// replaces is not reported as revoked.
		if _, _, err := s.CreateLink(ctx, uid, store.LinkReset, first, f.clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute + 6*24*time.Hour)
		if _, err := s.DeleteExpired(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LinkBySecret(ctx, first); err != nil {
			t.Fatalf("a link expired six days ago was deleted: %v", err)
		}
		f.clock.Advance(24 * time.Hour)
		if _, err := s.DeleteExpired(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LinkBySecret(ctx, first); !isNotFound(err) {
			t.Fatalf("a link expired a week ago is kept: %v", err)
		}
		if _, _, err := s.CreateLink(ctx, uid, store.LinkReset, first, f.clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
		if _, replaced, err := s.CreateLink(ctx, uid, store.LinkReset, second, f.clock.Now().Add(time.Minute)); err != nil || replaced != nil {
			t.Fatalf("replacing an expired link: %+v, %v; want nothing reported revoked", replaced, err)
		}

		// Revocation and deletion.
		live, err := s.RevokeUserLinks(ctx, uid)
		if err != nil || len(live) != 1 || live[0].UserID != uid {
			t.Fatalf("RevokeUserLinks = %+v, %v", live, err)
		}
		if live, err := s.RevokeUserLinks(ctx, uid); err != nil || len(live) != 0 {
			t.Fatalf("RevokeUserLinks again = %+v, %v", live, err)
		}
		l, _, err := s.CreateLink(ctx, uid, store.LinkInvite, first, f.clock.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteLink(ctx, l.ID); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.DeleteLink(ctx, l.ID), store.ErrNotFound)
		if _, err := s.LinkBySecret(ctx, first); !isNotFound(err) {
			t.Fatalf("a deleted link is found: %v", err)
		}
	})
}
