package cli_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestAdminCommandDatabaseUnreachable: an admin command through --api-url
// against a server whose PostgreSQL a proxy cut prints what the server
// said (it cannot reach its database; nothing changed; try again), not the
// generic account of a call that never reached the server; and a server
// that cannot be reached at all is still described as such.
func TestAdminCommandDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	dbURL, proxy := storetest.PostgresBehindProxy(t)
	serverURL := startServe(t, map[string]string{
		"NSAUTH_DATABASE_URL": dbURL, "NSAUTH_SECRET_KEY": seal.GenerateKey(), "NSAUTH_ADMIN_PASSWORD": biAdminPassword,
	})
	waitReady(t, serverURL)
	// The administrator reaches the server through a proxy too, cut to
	// stand for a server that cannot be reached at all.
	front := storetest.StartProxy(t, strings.TrimPrefix(serverURL, "http://"))
	apiURL := "http://" + front.Addr()
	e := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}, apiURL: apiURL}
	loginAs(t, e, "admin", biAdminPassword)
	ctx := context.Background()

	cases := []struct {
		name string
		cut  *storetest.Proxy
		want []string // one of them
	}{
		{"the server's database cut", proxy, []string{"the server cannot reach its database right now; nothing was changed, try again in a few seconds"}},
		// A refused connection, or a kept-alive one the cut reset: both
		// are the client's account of a server it cannot reach.
		{"the server cut", front, []string{"the server or its identity provider is unavailable", "cannot reach the server"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cut.Cut()
			defer tc.cut.Restore()
			r := e.run(ctx, nil, "users", "list", "--api-url", apiURL)
			said := slices.ContainsFunc(tc.want, func(w string) bool { return strings.Contains(r.errOut, w) })
			if r.code != 1 || !said || (tc.cut == front && strings.Contains(r.errOut, "database")) {
				t.Errorf("users list: exit %d, want 1 and one of %q:\n%s", r.code, tc.want, r.errOut)
			}
		})
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r := e.run(ctx, nil, "users", "list", "--api-url", apiURL)
		if r.code == 0 && strings.Contains(r.out, "admin") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("users list once the database is back: exit %d\n%s", r.code, r.errOut)
		}
	}
}
