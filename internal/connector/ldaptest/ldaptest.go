// Package ldaptest runs OpenLDAP's slapd (Debian's /usr/sbin/slapd) for
// tests: its own process on 127.0.0.1 with free ports, a temporary
// directory, the mdb backend, a generated test CA for StartTLS and LDAPS,
// and a small test directory (people, a service account, groups). It never
// touches the system's slapd service. Without slapd a test skips, saying
// how to install it, unless the CI environment variable is set: then it
// fails.
package ldaptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// The test directory.
const (
	BaseDN   = "dc=example,dc=org"
	PeopleDN = "ou=people,dc=example,dc=org"
	GroupsDN = "ou=groups,dc=example,dc=org"

	// BindDN is the service account nsauth searches with; it may read
	// people and groups, nothing else.
	BindDN       = "cn=nsauth,ou=services,dc=example,dc=org"
	BindPassword = "service-account-secret-7f3a"

	// UserFilter keeps out people marked employeeType=disabled.
	UserFilter  = "(&(objectClass=inetOrgPerson)(uid=%s)(!(employeeType=disabled)))"
	GroupFilter = "(&(objectClass=groupOfNames)(member=%s))"

	rootDN       = "cn=admin,dc=example,dc=org"
	rootPassword = "root-secret-91c2"
)

// User is a person of the test directory.
type User struct {
	UID, Name, Mail, Password string
	Groups                    []string
	Disabled                  bool
}

// DN is the user's entry.
func (u User) DN() string { return "uid=" + u.UID + "," + PeopleDN }

// The people of the test directory. Carol is marked disabled; Dave exists
// so that a test can delete him (every Start has its own directory).
var (
	Alice = User{UID: "alice", Name: "Alice Liddell", Mail: "alice@example.org", Password: "alice-pass-4d1b", Groups: []string{"admins", "developers"}}
	Bob   = User{UID: "bob", Name: "Bob Builder", Mail: "bob@example.org", Password: "bob-pass-88e0", Groups: []string{"developers"}}
	Carol = User{UID: "carol", Name: "Carol Disabled", Mail: "carol@example.org", Password: "carol-pass-2b7c", Groups: []string{"developers"}, Disabled: true}
	Dave  = User{UID: "dave", Name: "Dave Leaving", Mail: "dave@example.org", Password: "dave-pass-0a9f", Groups: []string{"developers"}}
	Users = []User{Alice, Bob, Carol, Dave}
)

// Server is a running slapd.
type Server struct {
	// URL is plain ldap:// on 127.0.0.1 (StartTLS offered), LDAPSURL
	// ldaps:// on 127.0.0.1; their certificate names 127.0.0.1 and
	// localhost.
	URL, LDAPSURL string
	// CAFile is the test CA's PEM file; CAPool holds it.
	CAFile string
	CAPool *x509.CertPool

	cmd    *exec.Cmd
	stderr *lockedBuffer
}

// Binary is the slapd Start runs.
const Binary = "/usr/sbin/slapd"

// slapdPath is Binary, but for the test of a missing slapd.
var slapdPath = Binary

// Start runs a slapd with the test directory, stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(slapdPath); err != nil {
		msg := "OpenLDAP's slapd is not installed (" + slapdPath + "); on Debian: apt-get install slapd ldap-utils"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set: the LDAP tests must run)")
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	caPool, err := writeCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(conf, []byte(slapdConf(dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data.ldif")
	if err := os.WriteFile(data, []byte(directoryLDIF()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(slapadd(), "-f", conf, "-l", data).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	var lastErr error
	for range 3 { // the free ports may be taken between looking and listening
		s, err := start(t, dir, conf, caPool)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

// slapadd is slapd itself under another name (Debian links it).
func slapadd() string {
	if p, err := exec.LookPath("slapadd"); err == nil {
		return p
	}
	return "/usr/sbin/slapadd"
}

func start(t testing.TB, dir, conf string, caPool *x509.CertPool) (*Server, error) {
	port, tlsPort, err := freePorts()
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL:      fmt.Sprintf("ldap://127.0.0.1:%d", port),
		LDAPSURL: fmt.Sprintf("ldaps://127.0.0.1:%d", tlsPort),
		CAFile:   filepath.Join(dir, "ca.pem"),
		CAPool:   caPool,
		stderr:   &lockedBuffer{},
	}
	// -d keeps slapd in the foreground, a child of the test that the
	// cleanup stops; level 0 logs only what goes wrong.
	s.cmd = exec.Command(slapdPath, "-f", conf, "-d", "0",
		"-h", s.URL+"/ "+s.LDAPSURL+"/")
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting slapd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("slapd exited at start (%v):\n%s", err, s.stderr.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			s.cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("slapd did not listen on 127.0.0.1:%d within 15s:\n%s", port, s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("slapd's log:\n%s", s.stderr.String())
		}
	})
	return s, nil
}

func freePorts() (int, int, error) {
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer a.Close()
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer b.Close()
	return a.Addr().(*net.TCPAddr).Port, b.Addr().(*net.TCPAddr).Port, nil
}

func slapdConf(dir string) string {
	return strings.NewReplacer("DIR", dir, "BASE", BaseDN, "ROOTDN", rootDN, "ROOTPW", rootPassword,
		"BINDDN", BindDN).Replace(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile DIR/slapd.pid
argsfile DIR/slapd.args
TLSCACertificateFile DIR/ca.pem
TLSCertificateFile DIR/server.pem
TLSCertificateKeyFile DIR/server.key
database mdb
maxsize 16777216
suffix "BASE"
rootdn "ROOTDN"
rootpw ROOTPW
directory DIR/db
index objectClass eq
index uid eq
index member eq
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by dn.exact="BINDDN" read
  by self read
  by * none
`)
}

func directoryLDIF() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n", BaseDN)
	for _, ou := range []string{"people", "groups", "services"} {
		fmt.Fprintf(&b, "dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n", ou, BaseDN, ou)
	}
	fmt.Fprintf(&b, "dn: %s\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: nsauth\nsn: nsauth\nuserPassword: %s\n\n", BindDN, BindPassword)
	members := map[string][]string{}
	for _, u := range Users {
		fmt.Fprintf(&b, "dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s\nuserPassword: %s\n",
			u.DN(), u.UID, u.Name, u.UID, u.Mail, u.Password)
		if u.Disabled {
			b.WriteString("employeeType: disabled\n")
		}
		b.WriteString("\n")
		for _, g := range u.Groups {
			members[g] = append(members[g], u.DN())
		}
	}
	for _, g := range []string{"admins", "developers"} {
		fmt.Fprintf(&b, "dn: cn=%s,%s\nobjectClass: groupOfNames\ncn: %s\n", g, GroupsDN, g)
		for _, m := range members[g] {
			fmt.Fprintf(&b, "member: %s\n", m)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// SettingsJSON are an LDAP connector's settings (connector.LDAPSettings'
// JSON, as the store keeps them) for this directory over transport:
// "plain" (ldap:// to 127.0.0.1), "starttls" or "ldaps" (both trusting
// CAFile). The bind password (the connector's secret) is BindPassword.
func (s *Server) SettingsJSON(transport string) []byte {
	set := map[string]any{
		"url":           s.URL,
		"bind_dn":       BindDN,
		"user_base_dn":  PeopleDN,
		"user_filter":   UserFilter,
		"group_base_dn": GroupsDN,
		"group_filter":  GroupFilter,
	}
	switch transport {
	case "plain":
	case "starttls":
		set["start_tls"], set["root_ca_file"] = true, s.CAFile
	case "ldaps":
		set["url"], set["root_ca_file"] = s.LDAPSURL, s.CAFile
	default:
		panic("ldaptest: transport is plain, starttls or ldaps, not " + transport)
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err)
	}
	return b
}

// Admin returns a connection bound as the directory's root, for a test
// to change the directory (closed when the test ends).
func (s *Server) Admin(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetTimeout(10 * time.Second)
	if err := c.Bind(rootDN, rootPassword); err != nil {
		t.Fatal(err)
	}
	return c
}

// Delete removes u's entry.
func (s *Server) Delete(t testing.TB, u User) {
	t.Helper()
	if err := s.Admin(t).Del(ldap.NewDelRequest(u.DN(), nil)); err != nil {
		t.Fatalf("deleting %s: %v", u.DN(), err)
	}
}

// Rename gives u's entry the uid newUID (its DN changes, its entryUUID
// stays).
func (s *Server) Rename(t testing.TB, u User, newUID string) {
	t.Helper()
	if err := s.Admin(t).ModifyDN(ldap.NewModifyDNRequest(u.DN(), "uid="+ldap.EscapeDN(newUID), true, "")); err != nil {
		t.Fatalf("renaming %s: %v", u.DN(), err)
	}
}

// Disable marks u employeeType=disabled, which UserFilter keeps out.
func (s *Server) Disable(t testing.TB, u User) {
	t.Helper()
	m := ldap.NewModifyRequest(u.DN(), nil)
	m.Replace("employeeType", []string{"disabled"})
	if err := s.Admin(t).Modify(m); err != nil {
		t.Fatalf("disabling %s: %v", u.DN(), err)
	}
}

// writeCerts writes a test CA (ca.pem) and a server certificate for
// 127.0.0.1 and localhost (server.pem, server.key) into dir.
func writeCerts(dir string) (*x509.CertPool, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nsauth ldaptest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"ca.pem":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"server.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"server.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
