package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/connector/ldaptest"
)

// ldapSettings are the test directory's settings over transport
// ("plain", "starttls" or "ldaps"), from the JSON ldaptest gives other
// packages' tests (unknown fields refused, so that it stays in step).
func ldapSettings(t *testing.T, s *ldaptest.Server, transport string) *LDAPSettings {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(s.SettingsJSON(transport)))
	dec.DisallowUnknownFields()
	var set LDAPSettings
	if err := dec.Decode(&set); err != nil {
		t.Fatal(err)
	}
	return &set
}

func mustLDAP(t *testing.T, s *LDAPSettings, secret string) *ldapConnector {
	t.Helper()
	pc, err := newLDAP(s, secret, Env{})
	if err != nil {
		t.Fatal(err)
	}
	return pc.(*ldapConnector)
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestLDAPLogin: a person signs in over plain LDAP to loopback, StartTLS
// and LDAPS; the identity has the entry's UUID, uid, cn, mail, groups and
// DN; Check then passes.
func TestLDAPLogin(t *testing.T) {
	dir := ldaptest.Start(t)
	for _, transport := range []string{"plain", "starttls", "ldaps"} {
		t.Run(transport, func(t *testing.T) {
			c := mustLDAP(t, ldapSettings(t, dir, transport), ldaptest.BindPassword)
			id, err := c.Login(t.Context(), "alice", ldaptest.Alice.Password)
			if err != nil {
				t.Fatal(err)
			}
			if !uuidPattern.MatchString(id.Subject) {
				t.Errorf("Subject = %q, want an entryUUID", id.Subject)
			}
			want := Identity{Subject: id.Subject, Username: "alice", Name: ldaptest.Alice.Name, Email: ldaptest.Alice.Mail,
				Groups: []string{"admins", "developers"}, State: ldaptest.Alice.DN()}
			if !slices.Equal(id.Groups, want.Groups) || id.Username != want.Username || id.Name != want.Name ||
				id.Email != want.Email || id.State != want.State || id.AMR != nil {
				t.Errorf("identity = %+v, want %+v", id, want)
			}
			if err := c.Check(t.Context(), id.Subject, id.State); err != nil {
				t.Errorf("Check: %v", err)
			}
			if c.CheckInterval() != 5*time.Minute {
				t.Errorf("CheckInterval = %s, want the default 5m", c.CheckInterval())
			}
		})
	}
	t.Run("username in another case", func(t *testing.T) {
		id, err := mustLDAP(t, ldapSettings(t, dir, "plain"), ldaptest.BindPassword).Login(t.Context(), "ALICE", ldaptest.Alice.Password)
		if err != nil || id.Username != "alice" {
			t.Fatalf("Login = %+v, %v; want alice as the directory spells her", id, err)
		}
	})
	t.Run("attribute names in another case", func(t *testing.T) {
		s := ldapSettings(t, dir, "plain")
		s.IDAttr, s.UsernameAttr, s.NameAttr, s.EmailAttr, s.GroupNameAttr = "entryuuid", "UID", "CN", "Mail", "CN"
		c := mustLDAP(t, s, ldaptest.BindPassword)
		id, err := c.Login(t.Context(), "alice", ldaptest.Alice.Password)
		if err != nil || id.Username != "alice" || id.Email != ldaptest.Alice.Mail || !uuidPattern.MatchString(id.Subject) || len(id.Groups) != 2 {
			t.Fatalf("Login = %+v, %v", id, err)
		}
		if err := c.Check(t.Context(), id.Subject, id.State); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
	t.Run("no group search", func(t *testing.T) {
		s := ldapSettings(t, dir, "plain")
		s.GroupBaseDN, s.GroupFilter = "", ""
		id, err := mustLDAP(t, s, ldaptest.BindPassword).Login(t.Context(), "bob", ldaptest.Bob.Password)
		if err != nil || id.Groups != nil || id.Username != "bob" {
			t.Fatalf("Login = %+v, %v; want bob without groups", id, err)
		}
	})
}

// TestLDAPRefusals: every way a sign-in is refused, with its category;
// usernames that try to widen the filter find nobody.
func TestLDAPRefusals(t *testing.T) {
	dir := ldaptest.Start(t)
	c := mustLDAP(t, ldapSettings(t, dir, "plain"), ldaptest.BindPassword)
	for _, tc := range []struct {
		name, username, password, reason string
	}{
		{"wrong password", "alice", "not-" + ldaptest.Alice.Password, ReasonWrongCredentials},
		{"another's password", "alice", ldaptest.Bob.Password, ReasonWrongCredentials},
		{"unknown user", "mallory", ldaptest.Alice.Password, ReasonWrongCredentials},
		{"empty password", "alice", "", ReasonWrongCredentials},
		{"empty username", "", ldaptest.Alice.Password, ReasonWrongCredentials},
		{"username too long", strings.Repeat("a", maxLDAPUsername+1), ldaptest.Alice.Password, ReasonWrongCredentials},
		{"password too long", "alice", strings.Repeat("p", maxLDAPPassword+1), ReasonWrongCredentials},
		{"username not UTF-8", "alice\xff", ldaptest.Alice.Password, ReasonWrongCredentials},
		{"disabled, right password", "carol", ldaptest.Carol.Password, ReasonNotAllowed},
		{"disabled, wrong password", "carol", "not-" + ldaptest.Carol.Password, ReasonWrongCredentials},
		{"filter injection: wildcard", "*", ldaptest.Alice.Password, ReasonWrongCredentials},
		{"filter injection: close and match all", "*)(uid=*", ldaptest.Alice.Password, ReasonWrongCredentials},
		{"filter injection: or", "alice)(|(uid=*", ldaptest.Alice.Password, ReasonWrongCredentials},
		{"filter injection: prefix", "al*", ldaptest.Alice.Password, ReasonWrongCredentials},
		{"filter injection: disabled escape", "carol)(!(employeeType=x", ldaptest.Carol.Password, ReasonWrongCredentials},
		{"filter injection: NUL", "alice\x00", ldaptest.Alice.Password, ReasonWrongCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := c.Login(t.Context(), tc.username, tc.password)
			if got := ReasonOf(err); got != tc.reason {
				t.Fatalf("Login = %+v, %v; want a refusal %q", id, err, tc.reason)
			}
			if id.Subject != "" {
				t.Errorf("a refusal with an identity: %+v", id)
			}
			assertNoSecret(t, err, tc.password, ldaptest.BindPassword)
			if tc.username != "" && strings.Contains(err.Error(), tc.username) {
				t.Errorf("the refusal repeats the username: %v", err)
			}
		})
	}
}

// TestLDAPCheck: a person deleted or disabled in the directory is refused
// by Check (a refresh) and by the next Login; the others still pass.
func TestLDAPCheck(t *testing.T) {
	dir := ldaptest.Start(t)
	c := mustLDAP(t, ldapSettings(t, dir, "plain"), ldaptest.BindPassword)
	login := func(u ldaptest.User) Identity {
		t.Helper()
		id, err := c.Login(t.Context(), u.UID, u.Password)
		if err != nil {
			t.Fatalf("Login %s: %v", u.UID, err)
		}
		return id
	}
	alice, bob, dave := login(ldaptest.Alice), login(ldaptest.Bob), login(ldaptest.Dave)
	dir.Disable(t, ldaptest.Bob)
	dir.Delete(t, ldaptest.Dave)
	dir.Rename(t, ldaptest.Alice, "alice2")
	for _, tc := range []struct {
		name           string
		subject, state string
		reason         string
	}{
		{"renamed, still allowed", alice.Subject, alice.State, ""},
		{"disabled", bob.Subject, bob.State, ReasonUserGone},
		{"deleted", dave.Subject, dave.State, ReasonUserGone},
		{"unknown subject", "00000000-0000-0000-0000-000000000000", alice.State, ReasonUserGone},
		{"empty subject", "", alice.State, ReasonUserGone},
		{"subject injection", "*", alice.State, ReasonUserGone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Check(t.Context(), tc.subject, tc.state)
			if ReasonOf(err) != tc.reason || (tc.reason == "" && err != nil) {
				t.Fatalf("Check = %v, want reason %q", err, tc.reason)
			}
		})
	}
	t.Run("login after", func(t *testing.T) {
		id, err := c.Login(t.Context(), "alice2", ldaptest.Alice.Password)
		if err != nil || id.Subject != alice.Subject || id.Username != "alice2" || id.State == alice.State {
			t.Errorf("renamed alice: %+v, %v; want the same subject, the new uid and DN", id, err)
		}
		if _, err := c.Login(t.Context(), "alice", ldaptest.Alice.Password); ReasonOf(err) != ReasonWrongCredentials {
			t.Errorf("alice's old uid: %v, want %s", err, ReasonWrongCredentials)
		}
		if _, err := c.Login(t.Context(), "bob", ldaptest.Bob.Password); ReasonOf(err) != ReasonNotAllowed {
			t.Errorf("disabled bob: %v, want %s", err, ReasonNotAllowed)
		}
		if _, err := c.Login(t.Context(), "dave", ldaptest.Dave.Password); ReasonOf(err) != ReasonWrongCredentials {
			t.Errorf("deleted dave: %v, want %s", err, ReasonWrongCredentials)
		}
	})
}

// TestLDAPDirectoryFailures: what is not a refusal (the directory is
// misconfigured, unreachable or untrusted) is an error naming the step,
// never holding a password.
func TestLDAPDirectoryFailures(t *testing.T) {
	dir := ldaptest.Start(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "ldap://" + closed.Addr().String()
	closed.Close()
	for _, tc := range []struct {
		name   string
		change func(*LDAPSettings)
		secret string
		want   string
	}{
		{"wrong bind password", func(*LDAPSettings) {}, "wrong-bind-password", "binding as bind_dn"},
		{"unreachable", func(s *LDAPSettings) { s.URL = closedURL }, ldaptest.BindPassword, "connecting"},
		{"untrusted certificate (ldaps)", func(s *LDAPSettings) { s.URL, s.RootCAFile = dir.LDAPSURL, "" }, ldaptest.BindPassword, "TLS handshake"},
		{"untrusted certificate (StartTLS)", func(s *LDAPSettings) { s.StartTLS = true }, ldaptest.BindPassword, "StartTLS"},
		{"name not in the certificate", func(s *LDAPSettings) { s.URL, s.RootCAFile = dir.LDAPSURL, dir.CAFile }, ldaptest.BindPassword, "TLS handshake"},
		{"missing base DN", func(s *LDAPSettings) { s.UserBaseDN = "ou=nobody,dc=example,dc=org" }, ldaptest.BindPassword, "user_base_dn does not exist"},
		{"filter matching several", func(s *LDAPSettings) { s.UserFilter = "(|(uid=%s)(objectClass=inetOrgPerson))" }, ldaptest.BindPassword, "more than one entry"},
		{"no id attribute", func(s *LDAPSettings) { s.IDAttr = "employeeNumber" }, ldaptest.BindPassword, "no employeeNumber attribute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ldapSettings(t, dir, "plain")
			tc.change(s)
			c := mustLDAP(t, s, tc.secret)
			if tc.name == "name not in the certificate" {
				c.tls.ServerName = "ldap.example.com"
			}
			_, err := c.Login(t.Context(), "alice", ldaptest.Alice.Password)
			if err == nil || ReasonOf(err) != "" || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Login = %v; want a failure (not a refusal) saying %q", err, tc.want)
			}
			assertNoSecret(t, err, tc.secret, ldaptest.BindPassword, ldaptest.Alice.Password)
			if strings.Contains(tc.name, "certificate") || tc.name == "unreachable" || tc.name == "wrong bind password" {
				err := c.Check(t.Context(), "00000000-0000-0000-0000-000000000000", "")
				if err == nil || ReasonOf(err) != "" {
					t.Fatalf("Check = %v; want a failure, never a pass or a refusal", err)
				}
				assertNoSecret(t, err, tc.secret, ldaptest.BindPassword)
			}
		})
	}
	t.Run("insecure skip verify", func(t *testing.T) {
		s := ldapSettings(t, dir, "ldaps")
		s.RootCAFile, s.InsecureSkipVerify = "", true
		if _, err := mustLDAP(t, s, ldaptest.BindPassword).Login(t.Context(), "alice", ldaptest.Alice.Password); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLDAPTimeouts: a directory that accepts and never answers costs a
// bounded time, at every step (TCP, LDAPS handshake, StartTLS, bind), by
// the connector's own bound and by the caller's context.
func TestLDAPTimeouts(t *testing.T) {
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mute.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read nothing, answer nothing
		}
	}()
	addr := mute.Addr().String()
	for _, tc := range []struct {
		name     string
		settings LDAPSettings
	}{
		{"plain", LDAPSettings{URL: "ldap://" + addr}},
		{"starttls", LDAPSettings{URL: "ldap://" + addr, StartTLS: true, InsecureSkipVerify: true}},
		{"ldaps", LDAPSettings{URL: "ldaps://" + addr, InsecureSkipVerify: true}},
	} {
		tc.settings.BindDN, tc.settings.UserBaseDN, tc.settings.UserFilter = ldaptest.BindDN, ldaptest.PeopleDN, ldaptest.UserFilter
		for _, bound := range []string{"connector", "context"} {
			t.Run(tc.name+"/"+bound, func(t *testing.T) {
				c := mustLDAP(t, &tc.settings, ldaptest.BindPassword)
				ctx := t.Context()
				if bound == "connector" {
					c.timeout = 300 * time.Millisecond
				} else {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
					defer cancel()
				}
				start := time.Now()
				_, err := c.Login(ctx, "alice", ldaptest.Alice.Password)
				elapsed := time.Since(start)
				if err == nil || ReasonOf(err) != "" || !strings.Contains(err.Error(), "did not answer in time") {
					t.Errorf("Login = %v; want a failure saying the directory did not answer in time", err)
				}
				if elapsed > 3*time.Second {
					t.Errorf("Login took %s, bounded at 300ms", elapsed)
				}
				assertNoSecret(t, err, ldaptest.BindPassword, ldaptest.Alice.Password)
				start = time.Now()
				if err := c.Check(ctx, "x", ""); err == nil || ReasonOf(err) != "" || time.Since(start) > 3*time.Second {
					t.Errorf("Check = %v after %s; want a bounded failure", err, time.Since(start))
				}
			})
		}
	}
}

// TestLDAPSettings: validate's rules, each error naming its setting;
// plain ldap:// leaves loopback only when insecure_plaintext says so.
func TestLDAPSettings(t *testing.T) {
	good := func() LDAPSettings {
		return LDAPSettings{URL: "ldaps://ldap.example.com", BindDN: "cn=nsauth,dc=example,dc=com",
			UserBaseDN: "ou=people,dc=example,dc=com", UserFilter: "(uid=%s)"}
	}
	for _, tc := range []struct {
		name   string
		change func(*LDAPSettings)
		want   string // "" valid, else the start of the error
	}{
		{"ldaps", func(*LDAPSettings) {}, ""},
		{"ldaps with port and slash", func(s *LDAPSettings) { s.URL = "ldaps://ldap.example.com:1636/" }, ""},
		{"starttls", func(s *LDAPSettings) { s.URL, s.StartTLS = "ldap://ldap.example.com", true }, ""},
		{"plain to 127.0.0.1", func(s *LDAPSettings) { s.URL = "ldap://127.0.0.1:389" }, ""},
		{"plain to ::1", func(s *LDAPSettings) { s.URL = "ldap://[::1]:389" }, ""},
		{"plain to localhost", func(s *LDAPSettings) { s.URL = "ldap://localhost" }, ""},
		{"plain to a remote host", func(s *LDAPSettings) { s.URL = "ldap://ldap.example.com" }, "url: plain ldap://"},
		{"plain to a remote address", func(s *LDAPSettings) { s.URL = "ldap://10.0.0.5" }, "url: plain ldap://"},
		{"plain to a name ending in localhost", func(s *LDAPSettings) { s.URL = "ldap://localhost.example.com" }, "url: plain ldap://"},
		{"plain to a remote host, insecure", func(s *LDAPSettings) { s.URL, s.InsecurePlaintext = "ldap://ldap.example.com", true }, ""},
		{"insecure plaintext with ldaps", func(s *LDAPSettings) { s.InsecurePlaintext = true }, "insecure_plaintext:"},
		{"insecure plaintext with starttls", func(s *LDAPSettings) {
			s.URL, s.StartTLS, s.InsecurePlaintext = "ldap://ldap.example.com", true, true
		}, "insecure_plaintext:"},
		{"starttls with ldaps", func(s *LDAPSettings) { s.StartTLS = true }, "start_tls:"},
		{"skip verify without TLS", func(s *LDAPSettings) { s.URL, s.InsecureSkipVerify = "ldap://127.0.0.1", true }, "insecure_skip_verify, root_ca_file:"},
		{"root CA without TLS", func(s *LDAPSettings) { s.URL, s.RootCAFile = "ldap://127.0.0.1", "/ca.pem" }, "insecure_skip_verify, root_ca_file:"},
		{"skip verify and root CA", func(s *LDAPSettings) { s.InsecureSkipVerify, s.RootCAFile = true, "/ca.pem" }, "insecure_skip_verify:"},
		{"http scheme", func(s *LDAPSettings) { s.URL = "https://ldap.example.com" }, "url:"},
		{"no host", func(s *LDAPSettings) { s.URL = "ldaps://" }, "url:"},
		{"empty", func(s *LDAPSettings) { s.URL = "" }, "url:"},
		{"user in URL", func(s *LDAPSettings) { s.URL = "ldaps://admin:pw@ldap.example.com" }, "url: must not hold"},
		{"base DN in URL", func(s *LDAPSettings) { s.URL = "ldaps://ldap.example.com/dc=example,dc=com" }, "url: only"},
		{"bad port", func(s *LDAPSettings) { s.URL = "ldaps://ldap.example.com:0" }, "url: the port"},
		{"anonymous search", func(s *LDAPSettings) { s.BindDN = "" }, ""},
		{"bad bind DN", func(s *LDAPSettings) { s.BindDN = "not a dn" }, "bind_dn:"},
		{"no user base DN", func(s *LDAPSettings) { s.UserBaseDN = "" }, "user_base_dn: required"},
		{"no user filter", func(s *LDAPSettings) { s.UserFilter = "" }, "user_filter: required"},
		{"filter without %s", func(s *LDAPSettings) { s.UserFilter = "(uid=alice)" }, "user_filter: must hold exactly one %s"},
		{"filter with two %s", func(s *LDAPSettings) { s.UserFilter = "(|(uid=%s)(mail=%s))" }, "user_filter: must hold exactly one %s"},
		{"filter with another verb", func(s *LDAPSettings) { s.UserFilter = "(&(uid=%s)(cn=%d))" }, "user_filter: must hold exactly one %s"},
		{"filter unbalanced", func(s *LDAPSettings) { s.UserFilter = "(&(uid=%s)" }, "user_filter: not an LDAP filter"},
		{"group filter without base", func(s *LDAPSettings) { s.GroupFilter = "(member=%s)" }, "group_filter: needs group_base_dn"},
		{"group search", func(s *LDAPSettings) {
			s.GroupBaseDN, s.GroupFilter = "ou=groups,dc=example,dc=com", "(&(objectClass=groupOfNames)(member=%s))"
		}, ""},
		{"group filter without %s", func(s *LDAPSettings) { s.GroupBaseDN, s.GroupFilter = "ou=groups,dc=example,dc=com", "(member=x)" }, "group_filter: must hold"},
		{"group name attribute, no group search", func(s *LDAPSettings) { s.GroupNameAttr = "cn" }, ""}, // ParseSettings fills it in
		{"attribute name", func(s *LDAPSettings) { s.IDAttr = "objectGUID" }, ""},
		{"attribute OID", func(s *LDAPSettings) { s.IDAttr = "1.3.6.1.1.16.4" }, ""},
		{"attribute not a name", func(s *LDAPSettings) { s.UsernameAttr = "uid)(x" }, "username_attr:"},
		{"check interval", func(s *LDAPSettings) { s.CheckInterval = "90s" }, ""},
		{"check interval every refresh", func(s *LDAPSettings) { s.CheckInterval = "0s" }, ""},
		{"check interval not a duration", func(s *LDAPSettings) { s.CheckInterval = "5" }, "check_interval:"},
		{"check interval negative", func(s *LDAPSettings) { s.CheckInterval = "-1m" }, "check_interval:"},
		{"check interval too long", func(s *LDAPSettings) { s.CheckInterval = "48h" }, "check_interval:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.change(&s)
			err := s.validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("validate: %v", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("validate = %v, want %q…", err, tc.want)
			}
			if err != nil {
				assertNoSecret(t, err, "pw")
			}
			// newLDAP refuses what validate refuses (Build may get
			// settings that ParseSettings never saw).
			if s.RootCAFile == "" {
				if _, nerr := newLDAP(&s, "secret", Env{}); (nerr == nil) != (err == nil && s.BindDN != "") {
					t.Errorf("newLDAP = %v, validate = %v", nerr, err)
				}
			}
		})
	}
}

// TestNewLDAP: the bind password goes with bind_dn, the check interval
// and the CA file are read.
func TestNewLDAP(t *testing.T) {
	base := LDAPSettings{URL: "ldap://127.0.0.1", BindDN: "cn=nsauth,dc=example,dc=com",
		UserBaseDN: "dc=example,dc=com", UserFilter: "(uid=%s)"}
	for _, tc := range []struct {
		name   string
		change func(*LDAPSettings)
		secret string
		want   string
	}{
		{"bind DN without password", func(*LDAPSettings) {}, "", "bind_dn: needs a bind password"},
		{"password without bind DN", func(s *LDAPSettings) { s.BindDN = "" }, "pw", "bind_dn: a bind password is set"},
		{"anonymous", func(s *LDAPSettings) { s.BindDN = "" }, "", ""},
		{"missing CA file", func(s *LDAPSettings) { s.URL, s.RootCAFile = "ldaps://127.0.0.1", "/nonexistent/ca.pem" }, "pw", "root_ca_file:"},
		{"CA file not PEM", func(s *LDAPSettings) { s.URL, s.RootCAFile = "ldaps://127.0.0.1", "/etc/hostname" }, "pw", "root_ca_file: no PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.change(&s)
			_, err := newLDAP(&s, tc.secret, Env{})
			if (tc.want == "" && err != nil) || (tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want))) {
				t.Fatalf("newLDAP = %v, want %q", err, tc.want)
			}
		})
	}
	s := base
	s.CheckInterval = "90s"
	if got := mustLDAP(t, &s, "pw").CheckInterval(); got != 90*time.Second {
		t.Errorf("CheckInterval = %s, want 90s", got)
	}
	if _, err := newLDAP(nil, "", Env{}); err == nil {
		t.Error("newLDAP(nil) succeeded")
	}
}

func assertNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("the error holds a secret: %v", err)
		}
		if s != "" && strings.Contains(err.Error(), url.QueryEscape(s)) {
			t.Errorf("the error holds a secret, escaped: %v", err)
		}
	}
}

// TestLDAPObjectGUID: Active Directory's binary objectGUID becomes the
// GUID's usual text, and back into an escaped filter for Check.
func TestLDAPObjectGUID(t *testing.T) {
	raw := []byte{0xd4, 0xc3, 0xb2, 0xa1, 0xf6, 0xe5, 0x18, 0x07, 0x29, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f, 0x90}
	const text = "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90"
	if got := formatGUID(raw); got != text {
		t.Fatalf("formatGUID = %s, want %s", got, text)
	}
	c := &ldapConnector{s: LDAPSettings{IDAttr: "objectGUID"}}
	filter, ok := c.subjectFilter(text)
	if want := `(objectGUID=\d4\c3\b2\a1\f6\e5\18\07\29\3a\4b\5c\6d\7e\8f\90)`; !ok || filter != want {
		t.Fatalf("subjectFilter = %q, %v; want %q", filter, ok, want)
	}
	for _, bad := range []string{"", "*", "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f9", "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f9g", "a1b2c3d4e5f60718293a4b5c6d7e8f90xxxx"} {
		if f, ok := c.subjectFilter(bad); ok {
			t.Errorf("subjectFilter(%q) = %q, want refused", bad, f)
		}
	}
	c.s.IDAttr = "entryUUID"
	if f, _ := c.subjectFilter("*)(uid=*"); f != `(entryUUID=\2a\29\28uid=\2a)` {
		t.Errorf("subjectFilter escapes %q", f)
	}
}

// TestLDAPConcurrent: one connector serves many sign-ins at once (each on
// its own connection), rightly each.
func TestLDAPConcurrent(t *testing.T) {
	dir := ldaptest.Start(t)
	c := mustLDAP(t, ldapSettings(t, dir, "starttls"), ldaptest.BindPassword)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			u, password, want := ldaptest.Alice, ldaptest.Alice.Password, ""
			switch i % 3 {
			case 1:
				u, password = ldaptest.Bob, ldaptest.Bob.Password
			case 2:
				password, want = "not-"+u.Password, ReasonWrongCredentials
			}
			id, err := c.Login(t.Context(), u.UID, password)
			switch {
			case want == "" && (err != nil || id.Username != u.UID):
				errs <- fmt.Errorf("%s: %+v, %v", u.UID, id, err)
			case want != "" && ReasonOf(err) != want:
				errs <- fmt.Errorf("%s with a wrong password: %v", u.UID, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
