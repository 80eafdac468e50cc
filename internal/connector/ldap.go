package connector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

// The LDAP connector's bounds.
const (
	// ldapTimeout bounds a whole Login or Check: connecting, TLS, binds
	// and searches.
	ldapTimeout = 10 * time.Second
	// Longer usernames and passwords are refused before the directory
	// sees them.
	maxLDAPUsername = 256
	maxLDAPPassword = 1024
	maxLDAPSubject  = 1024
	// maxLDAPGroups bounds a person's groups; more fails the sign-in
	// rather than silently dropping some.
	maxLDAPGroups         = 1000
	maxRootCAFile         = 1 << 20
	defaultCheckInterval  = 5 * time.Minute
	maxCheckInterval      = 24 * time.Hour
	defaultLDAPUserAttr   = "uid"
	defaultLDAPIDAttr     = "entryUUID"
	defaultLDAPNameAttr   = "cn"
	defaultLDAPEmailAttr  = "mail"
	defaultLDAPGroupAttr  = "cn"
	defaultLDAPGroupQuery = "(&(objectClass=groupOfNames)(member=%s))"
)

// ldapAttrName is an attribute description: a name or a numeric OID.
var ldapAttrName = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]{0,63}|[0-9]+(\.[0-9]+){1,31})$`)

// validate checks the settings (ParseSettings calls it): the URL, the
// plaintext rule, the TLS options, the DNs, the filters and the check
// interval. The error names the setting at fault.
func (s *LDAPSettings) validate() error {
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" || u.Opaque != "" {
		return errors.New("url: must be ldaps://HOST[:PORT] or ldap://HOST[:PORT]")
	}
	if u.User != nil {
		return errors.New("url: must not hold a user or password (bind_dn and the sealed bind password do)")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("url: only a scheme, a host and a port (the base DNs are settings of their own)")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("url: the port must be 1 to 65535")
		}
	}
	encrypted := u.Scheme == "ldaps" || s.StartTLS
	switch {
	case u.Scheme == "ldaps" && s.StartTLS:
		return errors.New("start_tls: not with ldaps:// (already TLS); use ldap:// with start_tls, or ldaps:// alone")
	case encrypted && s.InsecurePlaintext:
		return errors.New("insecure_plaintext: only for ldap:// without start_tls")
	case !encrypted && !s.InsecurePlaintext && !isLoopbackHost(u.Hostname()):
		return errors.New("url: plain ldap:// sends passwords in clear, allowed only to a loopback host; use ldaps://, start_tls, or insecure_plaintext")
	case !encrypted && (s.InsecureSkipVerify || s.RootCAFile != ""):
		return errors.New("insecure_skip_verify, root_ca_file: only with TLS (ldaps:// or start_tls)")
	case s.InsecureSkipVerify && s.RootCAFile != "":
		return errors.New("insecure_skip_verify: not with root_ca_file (one trusts the CAs it names, the other nothing)")
	}
	for _, dn := range []struct {
		name, value string
		required    bool
	}{
		{"bind_dn", s.BindDN, false},
		{"user_base_dn", s.UserBaseDN, true},
		{"group_base_dn", s.GroupBaseDN, false},
	} {
		if dn.value == "" {
			if dn.required {
				return fmt.Errorf("%s: required", dn.name)
			}
			continue
		}
		if _, err := ldap.ParseDN(dn.value); err != nil {
			return fmt.Errorf("%s: not a distinguished name: %v", dn.name, err)
		}
	}
	if s.UserFilter == "" {
		return errors.New("user_filter: required, e.g. (&(objectClass=person)(uid=%s))")
	}
	if err := checkLDAPFilter("user_filter", s.UserFilter); err != nil {
		return err
	}
	if s.GroupFilter != "" {
		if s.GroupBaseDN == "" {
			return errors.New("group_filter: needs group_base_dn")
		}
		if err := checkLDAPFilter("group_filter", s.GroupFilter); err != nil {
			return err
		}
	}
	for _, a := range []struct{ name, value string }{
		{"username_attr", s.UsernameAttr}, {"id_attr", s.IDAttr}, {"name_attr", s.NameAttr},
		{"email_attr", s.EmailAttr}, {"group_name_attr", s.GroupNameAttr},
	} {
		if a.value != "" && !ldapAttrName.MatchString(a.value) {
			return fmt.Errorf("%s: not an attribute name", a.name)
		}
	}
	if s.CheckInterval != "" {
		d, err := time.ParseDuration(s.CheckInterval)
		if err != nil || d < 0 || d > maxCheckInterval {
			return fmt.Errorf("check_interval: a Go duration from 0s (every refresh) to %s, e.g. 5m", maxCheckInterval)
		}
	}
	return nil
}

// checkLDAPFilter: exactly one %s, no other %, and a filter once filled.
func checkLDAPFilter(name, filter string) error {
	if strings.Count(filter, "%s") != 1 || strings.Count(filter, "%") != 1 {
		return fmt.Errorf("%s: must hold exactly one %%s (where the escaped value goes) and no other %%", name)
	}
	if _, err := ldap.CompileFilter(strings.Replace(filter, "%s", "x", 1)); err != nil {
		return fmt.Errorf("%s: not an LDAP filter: %v", name, err)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ldapConnector is an LDAP directory: it finds a person with the service
// account (or anonymously without bind_dn), checks their password by
// binding as them, and reads their groups with the service account again.
type ldapConnector struct {
	s        LDAPSettings // defaults applied
	secret   string       // the bind password
	addr     string       // host:port
	ldaps    bool
	startTLS bool
	tls      *tls.Config // nil for plaintext
	interval time.Duration
	timeout  time.Duration
}

// newLDAP builds an LDAP connector (Build calls it). secret is the bind
// password; it is required with bind_dn and refused without.
func newLDAP(s *LDAPSettings, secret string, env Env) (PasswordChecker, error) {
	if s == nil {
		return nil, errors.New("ldap: no settings")
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	c := &ldapConnector{s: *s, secret: secret, timeout: ldapTimeout, interval: defaultCheckInterval}
	switch {
	case s.BindDN != "" && secret == "":
		return nil, errors.New("bind_dn: needs a bind password")
	case s.BindDN == "" && secret != "":
		return nil, errors.New("bind_dn: a bind password is set but no bind_dn")
	}
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.s.UsernameAttr, defaultLDAPUserAttr)
	def(&c.s.IDAttr, defaultLDAPIDAttr)
	def(&c.s.NameAttr, defaultLDAPNameAttr)
	def(&c.s.EmailAttr, defaultLDAPEmailAttr)
	if c.s.GroupBaseDN != "" {
		def(&c.s.GroupFilter, defaultLDAPGroupQuery)
		def(&c.s.GroupNameAttr, defaultLDAPGroupAttr)
	}
	if s.CheckInterval != "" {
		c.interval, _ = time.ParseDuration(s.CheckInterval) // validated
	}
	u, _ := url.Parse(s.URL) // validated
	c.ldaps = u.Scheme == "ldaps"
	c.startTLS = s.StartTLS
	port := u.Port()
	if port == "" {
		port = "389"
		if c.ldaps {
			port = "636"
		}
	}
	c.addr = net.JoinHostPort(u.Hostname(), port)
	if c.ldaps || c.startTLS {
		c.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.InsecureSkipVerify}
		if s.RootCAFile != "" {
			pool, err := readRootCAs(s.RootCAFile)
			if err != nil {
				return nil, err
			}
			c.tls.RootCAs = pool
		}
	}
	return c, nil
}

func readRootCAs(name string) (*x509.CertPool, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("root_ca_file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRootCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("root_ca_file: %w", err)
	}
	if len(b) > maxRootCAFile {
		return nil, fmt.Errorf("root_ca_file: %s is larger than %d bytes", name, maxRootCAFile)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("root_ca_file: no PEM certificate in %s", name)
	}
	return pool, nil
}

func (c *ldapConnector) CheckInterval() time.Duration { return c.interval }

func wrongCredentials() error {
	return Refused(ReasonWrongCredentials, "The username or password is not right.")
}

// Login finds the person with the user filter and binds as them.
func (c *ldapConnector) Login(ctx context.Context, username, password string) (Identity, error) {
	if username == "" || password == "" || len(username) > maxLDAPUsername || len(password) > maxLDAPPassword ||
		!utf8.ValidString(username) {
		return Identity{}, wrongCredentials()
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, done, err := c.connect(ctx)
	if err != nil {
		return Identity{}, err
	}
	defer done()
	if err := c.serviceBind(conn); err != nil {
		return Identity{}, c.failed(ctx, "binding as bind_dn", err)
	}
	entry, err := c.findUser(conn, fmt.Sprintf(c.s.UserFilter, ldap.EscapeFilter(username)))
	if err != nil {
		return Identity{}, c.failed(ctx, "searching user_base_dn with user_filter", err)
	}
	if entry == nil {
		// Unknown, or kept out by the filter: a person kept out who
		// proves their password is told apart in the audit trail only.
		entry, err = c.findUser(conn, fmt.Sprintf("(%s=%s)", c.s.UsernameAttr, ldap.EscapeFilter(username)))
		if err != nil {
			return Identity{}, c.failed(ctx, "searching user_base_dn by username_attr", err)
		}
		if entry == nil {
			return Identity{}, wrongCredentials()
		}
		if err := c.userBind(conn, entry.DN, password); err != nil {
			return Identity{}, c.failed(ctx, "binding as the person", err)
		}
		return Identity{}, Refused(ReasonNotAllowed, "This account may not sign in here.")
	}
	if err := c.userBind(conn, entry.DN, password); err != nil {
		return Identity{}, c.failed(ctx, "binding as the person", err)
	}
	id, err := c.identity(entry)
	if err != nil {
		return Identity{}, err
	}
	if c.s.GroupBaseDN != "" {
		if err := c.serviceBind(conn); err != nil {
			return Identity{}, c.failed(ctx, "binding again as bind_dn", err)
		}
		if id.Groups, err = c.groups(conn, entry.DN); err != nil {
			return Identity{}, c.failed(ctx, "searching group_base_dn with group_filter", err)
		}
	}
	return id, nil
}

// Check finds the entry by its id attribute (wherever it moved: the DN
// in state is not needed) and requires that the user filter still finds
// it by its username.
func (c *ldapConnector) Check(ctx context.Context, subject, _ string) error {
	if subject == "" || len(subject) > maxLDAPSubject {
		return Refused(ReasonUserGone, "The account no longer exists in the directory.")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, done, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := c.serviceBind(conn); err != nil {
		return c.failed(ctx, "binding as bind_dn", err)
	}
	byID, ok := c.subjectFilter(subject)
	if !ok {
		return Refused(ReasonUserGone, "The account no longer exists in the directory.")
	}
	entry, err := c.findUser(conn, byID)
	if err != nil {
		return c.failed(ctx, "searching user_base_dn by id_attr", err)
	}
	if entry == nil {
		return Refused(ReasonUserGone, "The account no longer exists in the directory.")
	}
	username := entry.GetEqualFoldAttributeValue(c.s.UsernameAttr)
	if username != "" {
		allowed, err := c.findUser(conn, fmt.Sprintf(c.s.UserFilter, ldap.EscapeFilter(username)))
		if err != nil {
			return c.failed(ctx, "searching user_base_dn with user_filter", err)
		}
		if allowed != nil {
			if again, err := c.subjectOf(allowed); err == nil && again == subject {
				return nil
			}
		}
	}
	return Refused(ReasonUserGone, "The account is disabled in the directory or no longer allowed to sign in.")
}

// connect dials the directory (TLS for ldaps://, then StartTLS when
// asked); the connection closes when ctx ends, which bounds every request
// on it. done closes it.
func (c *ldapConnector) connect(ctx context.Context) (*ldap.Conn, func(), error) {
	d := net.Dialer{Timeout: c.timeout}
	raw, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, nil, c.failed(ctx, "connecting", err)
	}
	if c.ldaps {
		tc := tls.Client(raw, c.tls.Clone())
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, nil, c.failed(ctx, "TLS handshake", err)
		}
		raw = tc
	}
	conn := ldap.NewConn(raw, c.ldaps)
	conn.Start()
	// ctx (at most c.timeout) ends first and says so; this is a backstop.
	conn.SetTimeout(c.timeout + time.Second)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	done := func() {
		stop()
		conn.Close()
	}
	if c.startTLS {
		if err := conn.StartTLS(c.tls.Clone()); err != nil {
			done()
			return nil, nil, c.failed(ctx, "StartTLS", err)
		}
	}
	return conn, done, nil
}

// failed wraps a directory failure (not a refusal): it names the directory
// and the step, never a password; when ctx ended, it says so.
func (c *ldapConnector) failed(ctx context.Context, step string, err error) error {
	if _, ok := errors.AsType[*Refusal](err); ok {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("LDAP directory %s did not answer in time (%s): %w", c.addr, step, ctx.Err())
	}
	return fmt.Errorf("LDAP directory %s: %s: %w", c.addr, step, err)
}

func (c *ldapConnector) serviceBind(conn *ldap.Conn) error {
	if c.s.BindDN == "" {
		return conn.UnauthenticatedBind("")
	}
	return conn.Bind(c.s.BindDN, c.secret)
}

// userBind binds as the person: invalid credentials are a refusal, as is
// a directory that refuses an account it locked or expired.
func (c *ldapConnector) userBind(conn *ldap.Conn, dn, password string) error {
	err := conn.Bind(dn, password)
	if ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication) {
		return wrongCredentials()
	}
	return err
}

// findUser searches user_base_dn: nil when nothing matches, an error
// when more than one entry does.
func (c *ldapConnector) findUser(conn *ldap.Conn, filter string) (*ldap.Entry, error) {
	res, err := conn.Search(ldap.NewSearchRequest(c.s.UserBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, int(c.timeout/time.Second), false, filter,
		[]string{c.s.UsernameAttr, c.s.IDAttr, c.s.NameAttr, c.s.EmailAttr}, nil))
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || (err == nil && len(res.Entries) > 1):
		return nil, errors.New("more than one entry matches: the filter must find one person")
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return nil, fmt.Errorf("user_base_dn does not exist or bind_dn may not read it: %w", err)
	case err != nil:
		return nil, err
	case len(res.Entries) == 0:
		return nil, nil
	}
	return res.Entries[0], nil
}

func (c *ldapConnector) identity(e *ldap.Entry) (Identity, error) {
	subject, err := c.subjectOf(e)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{
		Subject:  subject,
		Username: e.GetEqualFoldAttributeValue(c.s.UsernameAttr),
		Name:     e.GetEqualFoldAttributeValue(c.s.NameAttr),
		// The directory is the organisation's own record: its mail is
		// taken as verified.
		Email: e.GetEqualFoldAttributeValue(c.s.EmailAttr),
		State: e.DN,
	}
	return id, nil
}

// subjectOf is the entry's id attribute as text. Active Directory's
// objectGUID is 16 bytes: its text is the GUID as Windows writes it
// (Get-ADUser's ObjectGUID).
func (c *ldapConnector) subjectOf(e *ldap.Entry) (string, error) {
	if c.adGUID() {
		raw := e.GetEqualFoldRawAttributeValue(c.s.IDAttr)
		if len(raw) != 16 {
			return "", fmt.Errorf("LDAP directory %s: the person's entry has no 16-byte %s (id_attr)", c.addr, c.s.IDAttr)
		}
		return formatGUID(raw), nil
	}
	v := e.GetEqualFoldAttributeValue(c.s.IDAttr)
	if v == "" {
		return "", fmt.Errorf("LDAP directory %s: the person's entry has no %s attribute (id_attr), the stable id nsauth binds to", c.addr, c.s.IDAttr)
	}
	if !utf8.ValidString(v) || len(v) > maxLDAPSubject {
		return "", fmt.Errorf("LDAP directory %s: id_attr %s is binary or longer than %d bytes; name a text attribute (or objectGUID)", c.addr, c.s.IDAttr, maxLDAPSubject)
	}
	return v, nil
}

// subjectFilter finds the entry of subject by its id attribute; false
// when subject cannot be one.
func (c *ldapConnector) subjectFilter(subject string) (string, bool) {
	if !c.adGUID() {
		return fmt.Sprintf("(%s=%s)", c.s.IDAttr, ldap.EscapeFilter(subject)), true
	}
	raw, ok := parseGUID(subject)
	if !ok {
		return "", false
	}
	var b strings.Builder
	fmt.Fprintf(&b, "(%s=", c.s.IDAttr)
	for _, x := range raw {
		fmt.Fprintf(&b, "\\%02x", x)
	}
	b.WriteString(")")
	return b.String(), true
}

func (c *ldapConnector) adGUID() bool { return strings.EqualFold(c.s.IDAttr, "objectGUID") }

// guidOrder is where each byte of a GUID's text comes from: the first
// three fields are little-endian in AD's bytes.
var guidOrder = [16]int{3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15}

func formatGUID(raw []byte) string {
	var t [16]byte
	for i, j := range guidOrder {
		t[i] = raw[j]
	}
	h := hex.EncodeToString(t[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func parseGUID(s string) ([]byte, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, false
	}
	t, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(t) != 16 {
		return nil, false
	}
	raw := make([]byte, 16)
	for i, j := range guidOrder {
		raw[j] = t[i]
	}
	return raw, true
}

// groups returns the names of the groups group_filter finds for dn,
// sorted, without repeats.
func (c *ldapConnector) groups(conn *ldap.Conn, dn string) ([]string, error) {
	res, err := conn.Search(ldap.NewSearchRequest(c.s.GroupBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		maxLDAPGroups, int(c.timeout/time.Second), false, fmt.Sprintf(c.s.GroupFilter, ldap.EscapeFilter(dn)),
		[]string{c.s.GroupNameAttr}, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, fmt.Errorf("the person is in more than %d groups", maxLDAPGroups)
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range res.Entries {
		if n := e.GetEqualFoldAttributeValue(c.s.GroupNameAttr); n != "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
