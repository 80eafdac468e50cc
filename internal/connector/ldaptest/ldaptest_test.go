package ldaptest

import (
	"crypto/tls"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// TestStart: the directory answers on plain LDAP, StartTLS and LDAPS, the
// service account reads people and groups, a person binds with their
// password.
func TestStart(t *testing.T) {
	s := Start(t)
	tlsConfig := &tls.Config{RootCAs: s.CAPool, ServerName: "127.0.0.1"}
	for _, tc := range []struct {
		name string
		dial func() (*ldap.Conn, error)
	}{
		{"plain", func() (*ldap.Conn, error) { return ldap.DialURL(s.URL) }},
		{"starttls", func() (*ldap.Conn, error) {
			c, err := ldap.DialURL(s.URL)
			if err != nil {
				return nil, err
			}
			return c, c.StartTLS(tlsConfig)
		}},
		{"ldaps", func() (*ldap.Conn, error) { return ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(tlsConfig)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Bind(BindDN, BindPassword); err != nil {
				t.Fatal(err)
			}
			res, err := c.Search(ldap.NewSearchRequest(PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
				"(objectClass=inetOrgPerson)", []string{"uid", "entryUUID"}, nil))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Entries) != len(Users) {
				t.Fatalf("%d people, want %d", len(res.Entries), len(Users))
			}
			if res.Entries[0].GetAttributeValue("entryUUID") == "" {
				t.Fatal("no entryUUID")
			}
			if err := c.Bind(Alice.DN(), Alice.Password); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMissingSlapd: without slapd, Start skips saying how to install it;
// with CI set, it fails instead.
func TestMissingSlapd(t *testing.T) {
	slapdPath = "/nonexistent/slapd"
	t.Cleanup(func() { slapdPath = Binary })
	for _, tc := range []struct {
		name, ci, want string
	}{
		{"developer's machine", "", "skip"},
		{"CI", "true", "fatal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &outcome{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				Start(r)
			}()
			<-done
			if r.kind != tc.want || !strings.Contains(r.msg, "apt-get install slapd ldap-utils") {
				t.Fatalf("Start: %s %q, want %s naming the install command", r.kind, r.msg, tc.want)
			}
		})
	}
}

// outcome records how Start ended a test.
type outcome struct {
	testing.TB
	kind, msg string
}

func (o *outcome) Helper() {}
func (o *outcome) Skip(args ...any) {
	o.kind, o.msg = "skip", fmt.Sprint(args...)
	runtime.Goexit()
}
func (o *outcome) Fatal(args ...any) {
	o.kind, o.msg = "fatal", fmt.Sprint(args...)
	runtime.Goexit()
}
