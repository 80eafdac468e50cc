package cli_test

import (
	"context"
	"io"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// linkOf returns the secret of the one-time link a command printed: one
// line on standard output, ISSUER/link?link=SECRET.
func linkOf(t *testing.T, r usersResult) string {
	t.Helper()
	u, err := url.Parse(strings.TrimSpace(r.out))
	if err != nil || u.Scheme+"://"+u.Host+u.Path != "https://auth.example.com/link" || len(u.Query().Get("link")) != 43 ||
		strings.Count(r.out, "\n") != 1 {
		t.Fatalf("printed %q, want one link", r.out)
	}
	return u.Query().Get("link")
}

// TestUsersInviteAndResetLink: nsauth users invite creates a user without
// a password and prints an invite link; reset-link prints a reset link,
// --revoke removes it; each link is stored as a digest, replaces the
// previous one, and is audited by its ref with the operator as actor,
// never the secret; on each backend.
func TestUsersInviteAndResetLink(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		ctx := context.Background()
		if r := runUsers(env, nil, "invite", "early"); r.code == 0 || !strings.Contains(r.errOut, "start nsauth serve with it once") || r.out != "" {
			t.Fatalf("a link before the data was ever served: exit %d\n%s%s", r.code, r.out, r.errOut)
		}
		if _, err := st.RecordServedIssuer(ctx, "https://auth.example.com"); err != nil {
			t.Fatal(err)
		}
		r := runUsers(env, nil, "invite", "Bob", "--name", "Bob Builder", "--email", "bob@example.com", "--ttl", "2h")
		if r.code != 0 || !strings.Contains(r.errOut, `Created user "bob" without a password.`) || !strings.Contains(r.errOut, `Invite link for "bob" (ref `) {
			t.Fatalf("invite: exit %d\n%s", r.code, r.errOut)
		}
		first := linkOf(t, r)
		bob, err := st.UserByUsername(ctx, "bob")
		if err != nil || bob.HasPassword() || bob.Name != "Bob Builder" {
			t.Fatalf("the invited user: %+v, %v", bob, err)
		}
		l, err := st.LinkBySecret(ctx, first)
		if err != nil || l.Purpose != store.LinkInvite || l.UserID != bob.ID || time.Until(l.ExpiresAt) > 2*time.Hour {
			t.Fatalf("the stored link: %+v, %v", l, err)
		}
		// Again: the user exists, the new link replaces the old one.
		second := linkOf(t, runUsers(env, nil, "invite", "bob"))
		if _, err := st.LinkBySecret(ctx, first); err == nil {
			t.Fatal("the replaced link still works")
		}
		for _, c := range []struct {
			name string
			args []string
			code int
			want string
		}{
			{"profile of an existing user", []string{"invite", "bob", "--email", "x@example.com"}, 1, "--name, --email and --groups are for a new user"},
			{"ttl too long", []string{"reset-link", "bob", "--ttl", "200h"}, 2, "--ttl must be above 0 and at most"},
			{"ttl in fractions of a second", []string{"reset-link", "bob", "--ttl", "500ms"}, 2, "--ttl must be whole seconds, not 500ms"},
			{"invite ttl in fractions of a second", []string{"invite", "zed", "--ttl", "1.5s"}, 2, "--ttl must be whole seconds, not 1.5s"},
			{"no such user", []string{"reset-link", "nobody"}, 1, `no user "nobody"`},
			{"no such group", []string{"invite", "carol", "--groups", "no-such-group"}, 1, "no-such-group"},
			{"revoke with a ttl", []string{"reset-link", "bob", "--revoke", "--ttl", "1h"}, 2, "--revoke takes no --ttl"},
		} {
			if r := runUsers(env, nil, c.args...); r.code != c.code || !strings.Contains(r.errOut, c.want) || r.out != "" {
				t.Errorf("%s: exit %d (want %d), want %q in\n%s%s", c.name, r.code, c.code, c.want, r.out, r.errOut)
			}
		}
		hash := "$argon2id$v=19$m=65536,t=1,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
		if err := st.SetPassword(ctx, "bob", hash); err != nil {
			t.Fatal(err)
		}
		if r := runUsers(env, nil, "invite", "bob"); r.code != 1 || !strings.Contains(r.errOut, "already has a password: make a reset link instead (nsauth users reset-link bob)") {
			t.Fatalf("invite of a user with a password: exit %d\n%s", r.code, r.errOut)
		}
		r = runUsers(env, nil, "reset-link", "bob")
		if r.code != 0 || !strings.Contains(r.errOut, `Password reset link for "bob" (ref `) {
			t.Fatalf("reset-link: exit %d\n%s", r.code, r.errOut)
		}
		third := linkOf(t, r)
		if r := runUsers(env, nil, "reset-link", "bob", "--revoke"); r.code != 0 || !strings.Contains(r.errOut, `Revoked the one-time link of "bob".`) {
			t.Fatalf("--revoke: exit %d\n%s", r.code, r.errOut)
		}
		if r := runUsers(env, nil, "reset-link", "bob", "--revoke"); r.code != 1 || !strings.Contains(r.errOut, `"bob" has no one-time link`) {
			t.Fatalf("--revoke again: exit %d\n%s", r.code, r.errOut)
		}
		if err := st.SetDisabled(ctx, "bob", true); err != nil {
			t.Fatal(err)
		}
		if r := runUsers(env, nil, "reset-link", "bob"); r.code != 1 || !strings.Contains(r.errOut, `user "bob" is disabled: enable it first`) {
			t.Fatalf("reset-link of a disabled user: exit %d\n%s", r.code, r.errOut)
		}
		// NSAUTH_LINK_TTL is the lifetime when --ttl is not given.
		withTTL := map[string]string{"NSAUTH_LINK_TTL": "3h"}
		for k, v := range env {
			withTTL[k] = v
		}
		early := linkOf(t, runUsers(withTTL, nil, "invite", "early"))
		if l, err := st.LinkBySecret(ctx, early); err != nil || time.Until(l.ExpiresAt) > 3*time.Hour || time.Until(l.ExpiresAt) < 170*time.Minute {
			t.Fatalf("a link under NSAUTH_LINK_TTL=3h: %+v, %v", l, err)
		}
		events, err := st.AuditEvents(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events {
			for _, s := range []string{first, second, third} {
				if strings.Contains(e.Target+e.Reason+e.Username+e.Actor, s) || strings.Contains(strings.Join(mapValues(e.Refs), " "), s) {
					t.Fatalf("an audit event carries a link's secret: %+v", e)
				}
			}
			switch e.Type {
			case audit.LinkCreated, audit.LinkRevoked:
				if e.Username != "bob" {
					continue
				}
				if e.Target == "" || e.Actor == "" || e.Subject != bob.ID {
					t.Errorf("%s without a ref, an actor or the user: %+v", e.Type, e)
				}
				got = append(got, string(e.Type)+":"+e.Reason)
			}
		}
		want := "link.created:invite link.revoked:replaced link.created:invite link.revoked:replaced link.created:reset link.revoked:revoked"
		if strings.Join(got, " ") != want {
			t.Fatalf("link events %v, want %s", got, want)
		}
	})
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestUsersAddOffersInvite: on a terminal, Enter on an empty password
// creates the user without one and prints an invite link instead.
func TestUsersAddOffersInvite(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no pty")
	}
	env, st := usersEnv(t, storetest.Backends()[0])
	if _, err := st.RecordServedIssuer(context.Background(), "https://auth.example.com"); err != nil {
		t.Fatal(err)
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	go func() { _, _ = io.Copy(io.Discard, ptmx) }() // the terminal's echo
	out, errOut := &servetest.Buffer{}, &servetest.Buffer{}
	done := make(chan int, 1)
	go func() {
		app := &cli.App{In: tty, Out: out, ErrOut: errOut, Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Now: time.Now}
		done <- cli.Run(context.Background(), app, []string{"users", "add", "erin"}, servercmd.Commands...)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(errOut.String(), "New password: ") {
		if time.Now().After(deadline) {
			t.Fatalf("no prompt; stderr:\n%s", errOut.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := io.WriteString(ptmx, "\r"); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("users add did not finish")
	}
	if !strings.Contains(errOut.String(), "No password given: the user sets one with an invite link instead.") ||
		!strings.Contains(errOut.String(), `Invite link for "erin"`) {
		t.Fatalf("stderr:\n%s", errOut.String())
	}
	secret := linkOf(t, usersResult{out: out.String()})
	u, err := st.UserByUsername(context.Background(), "erin")
	if err != nil || u.HasPassword() {
		t.Fatalf("erin: %+v, %v", u, err)
	}
	if l, err := st.LinkBySecret(context.Background(), secret); err != nil || l.UserID != u.ID || l.Purpose != store.LinkInvite {
		t.Fatalf("the link: %+v, %v", l, err)
	}
}
