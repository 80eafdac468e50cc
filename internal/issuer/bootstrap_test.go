package issuer_test

import (
	"testing"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func TestBootstrapGeneratesOnce(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t, store.Options{})
		first, err := issuer.Bootstrap(ctx, st, issuer.BootstrapConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if !first.AdminCreated || first.AdminUser != "admin" || len(first.GeneratedPassword) != 24 || first.ClientID != issuer.DefaultClientID || len(first.ClientSecret) < 40 {
			t.Fatalf("first start = %+v", first)
		}
		u, err := st.UserByUsername(ctx, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if u.PasswordHash == first.GeneratedPassword {
			t.Fatal("the password is stored in clear")
		}
		if ok, err := password.Verify(first.GeneratedPassword, u.PasswordHash); err != nil || !ok {
			t.Fatalf("the generated password does not log in: %v %v", ok, err)
		}
		c, err := st.ClientByID(ctx, issuer.DefaultClientID)
		if err != nil || !c.CheckSecret(first.ClientSecret) {
			t.Fatalf("client = %v, %v", c, err)
		}

		// A second process, and a restart, change nothing and show nothing.
		again, err := issuer.Bootstrap(ctx, b.Reopen(t, st, store.Options{}), issuer.BootstrapConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if again.AdminCreated || again.GeneratedPassword != "" || again.ClientSecret != first.ClientSecret || again.AdminPasswordIgnored {
			t.Fatalf("second start = %+v", again)
		}
		// A configured password at a later start is reported as ignored.
		later, err := issuer.Bootstrap(ctx, st, issuer.BootstrapConfig{AdminPassword: "another-password"})
		if err != nil || !later.AdminPasswordIgnored || later.AdminCreated {
			t.Fatalf("later start with a password = %+v, %v", later, err)
		}
	})
}

func TestBootstrapWithConfiguredAdmin(t *testing.T) {
	t.Parallel()
	st := sqlite().Open(t, store.Options{})
	res, err := issuer.Bootstrap(ctx, st, issuer.BootstrapConfig{AdminUser: "Root", AdminPassword: "configured-password"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.AdminCreated || res.GeneratedPassword != "" || res.AdminUser != "root" {
		t.Fatalf("result = %+v", res)
	}
	u, err := st.UserByUsername(ctx, "root")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := password.Verify("configured-password", u.PasswordHash); !ok {
		t.Fatal("the configured password does not log in")
	}
	for _, tc := range []struct {
		name string
		cfg  issuer.BootstrapConfig
	}{
		{"short password", issuer.BootstrapConfig{AdminPassword: "short"}},
		{"bad username", issuer.BootstrapConfig{AdminUser: "no spaces"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := issuer.Bootstrap(ctx, sqlite().Open(t, store.Options{}), tc.cfg); err == nil {
				t.Fatal("Bootstrap accepted it")
			}
		})
	}
}
