package connectorscmd

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/connector"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/stringset"
	"github.com/nsauth/nsauth/internal/visible"
)

// A connector's settings as nsauth connectors add and update take them,
// and the checks they pass before the store is opened. What a setting may
// hold is connector.ParseSettings's rule; this file maps flags to
// settings, names the flag at fault, and reads the secret.

// Bounds on what the flags take.
const (
	maxDisplayNameLen = 100
	// maxSecretLen bounds a client secret or bind password read from a
	// file or standard input.
	maxSecretLen = 4096
	maxListLen   = 64
)

// nameRule is a connector's name: it names the callback path and prefixes
// the groups the connector maps.
var nameRule = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// checkName refuses a name that is not a connector's.
func checkName(name string) error {
	if !nameRule.MatchString(name) {
		return cli.UsageErrorf("connector name %q: 1 to %d characters from a-z, 0-9 and -, starting with a letter", visible.Escape(name), 32)
	}
	return nil
}

// connectorFlags are the settings of a connector as add and update take
// them.
type connectorFlags struct {
	typ                      string
	displayName              string
	createUsers, trustMFA    bool
	clientID                 string
	secretFile               string
	secretStdin              bool
	allowedDomains           []string
	issuer, groupsClaim      string
	scopes                   []string
	org                      string
	teams                    []string
	apiURL, baseURL          string
	ldapURL, bindDN          string
	userBaseDN, userFilter   string
	usernameAttr, idAttr     string
	nameAttr, emailAttr      string
	groupBaseDN, groupFilter string
	groupNameAttr            string
	startTLS                 bool
	rootCAFile               string
	insecurePlaintext        bool
	insecureSkipVerify       bool
	checkInterval            time.Duration
	asJSON                   bool
}

// The flags of each connector type, and those every type takes.
var (
	commonFlags = []string{"display-name", "create-users"}
	oidcFlags   = []string{"issuer", "client-id", "client-secret-file", "client-secret-stdin", "scopes", "allowed-domains", "groups-claim", "trust-upstream-mfa"}
	githubFlags = []string{"client-id", "client-secret-file", "client-secret-stdin", "org", "team", "allowed-domains", "api-url", "base-url"}
	ldapFlags   = []string{"url", "bind-dn", "bind-password-file", "bind-password-stdin", "user-base-dn", "user-filter",
		"username-attr", "id-attr", "name-attr", "email-attr", "group-base-dn", "group-filter", "group-name-attr",
		"start-tls", "root-ca-file", "insecure-plaintext", "insecure-skip-verify", "check-interval"}
)

func typeFlags(typ string) []string {
	switch typ {
	case store.ConnectorOIDC:
		return oidcFlags
	case store.ConnectorGitHub:
		return githubFlags
	case store.ConnectorLDAP:
		return ldapFlags
	}
	return nil
}

func (f *connectorFlags) register(fs *pflag.FlagSet, update bool) {
	replaces := ""
	if update {
		replaces = "; replaces the list"
	}
	if !update {
		fs.StringVar(&f.typ, "type", "", "the connector's `type`: oidc, github or ldap (required)")
		fs.BoolVar(&f.asJSON, "json", false, "print the connector as JSON")
	}
	fs.StringVar(&f.displayName, "display-name", "", "what the login page calls it: \"Continue with `TEXT`\" (default: its name)")
	fs.BoolVar(&f.createUsers, "create-users", false, "create the nsauth user at a first sign-in (only when the connector restricts who may sign in)")
	fs.BoolVar(&f.trustMFA, "trust-upstream-mfa", false, "count the upstream's second factor (its amr says mfa, otp, hwk…) as nsauth's (oidc)")

	fs.StringVar(&f.clientID, "client-id", "", "the client `id` nsauth has at the upstream (oidc, github)")
	fs.StringVar(&f.secretFile, "client-secret-file", "", "read the client secret from `FILE` (oidc, github)")
	fs.BoolVar(&f.secretStdin, "client-secret-stdin", false, "read the client secret from the first line of standard input (oidc, github)")
	fs.StringSliceVar(&f.allowedDomains, "allowed-domains", nil, "admit only verified emails of these domains, `D,…` (comma-separated; oidc, github)"+replaces)

	fs.StringVar(&f.issuer, "issuer", "", "the upstream's issuer `URL`, where its discovery document is (oidc)")
	fs.StringSliceVar(&f.scopes, "scopes", nil, "`scopes` to ask for besides openid, S,… (comma-separated; default profile,email; oidc)"+replaces)
	fs.StringVar(&f.groupsClaim, "groups-claim", "", "the ID token `claim` that lists groups (default groups; oidc)")

	fs.StringVar(&f.org, "org", "", "admit only members of this GitHub `organisation` (github)")
	fs.StringSliceVar(&f.teams, "team", nil, "admit only members of one of these teams, `ORG/TEAM` (repeat or comma-separate; github)"+replaces)
	fs.StringVar(&f.apiURL, "api-url", "", "GitHub Enterprise's API `URL`, https://HOST/api/v3 (github; default github.com)")
	fs.StringVar(&f.baseURL, "base-url", "", "GitHub Enterprise's web `URL` when it is not the API URL's origin (github)")

	fs.StringVar(&f.ldapURL, "url", "", "the directory's `URL`: ldaps://HOST:PORT, or ldap://HOST:PORT with --start-tls (ldap)")
	fs.StringVar(&f.bindDN, "bind-dn", "", "the `DN` nsauth binds as to search the directory (ldap)")
	fs.StringVar(&f.secretFile, "bind-password-file", "", "read the bind password from `FILE` (ldap)")
	fs.BoolVar(&f.secretStdin, "bind-password-stdin", false, "read the bind password from the first line of standard input (ldap)")
	fs.StringVar(&f.userBaseDN, "user-base-dn", "", "where to search for people, a `DN` such as ou=people,dc=example,dc=com (ldap)")
	fs.StringVar(&f.userFilter, "user-filter", "", "the `filter` that finds a person, %s the escaped username, such as (&(objectClass=person)(uid=%s)) (ldap)")
	fs.StringVar(&f.usernameAttr, "username-attr", "", "the `attribute` that is the username (default uid; ldap)")
	fs.StringVar(&f.idAttr, "id-attr", "", "the `attribute` that identifies the entry for good (default entryUUID; ldap)")
	fs.StringVar(&f.nameAttr, "name-attr", "", "the `attribute` of the display name (default cn; ldap)")
	fs.StringVar(&f.emailAttr, "email-attr", "", "the `attribute` of the email address (default mail; ldap)")
	fs.StringVar(&f.groupBaseDN, "group-base-dn", "", "where to search for groups, a `DN`; none searched when empty (ldap)")
	fs.StringVar(&f.groupFilter, "group-filter", "", "the `filter` that finds a person's groups, %s the escaped user DN, such as (&(objectClass=groupOfNames)(member=%s)) (ldap)")
	fs.StringVar(&f.groupNameAttr, "group-name-attr", "", "the `attribute` that names a group (default cn; ldap)")
	fs.BoolVar(&f.startTLS, "start-tls", false, "upgrade an ldap:// connection with StartTLS (ldap)")
	fs.StringVar(&f.rootCAFile, "root-ca-file", "", "trust the CAs of this PEM `file` for the directory, instead of the system's (ldap)")
	fs.BoolVar(&f.insecurePlaintext, "insecure-plaintext", false, "allow plain ldap:// without StartTLS to a host that is not loopback: passwords cross the network in clear (ldap)")
	fs.BoolVar(&f.insecureSkipVerify, "insecure-skip-verify", false, "do not check the directory's certificate (ldap; for tests only)")
	fs.DurationVar(&f.checkInterval, "check-interval", 0, "how often a refresh asks the directory whether the user may still sign in (default 5m; ldap)")
}

// settingFlags are the flags that change a connector.
func settingFlags() []string {
	return slices.Concat(commonFlags, oidcFlags, githubFlags, ldapFlags)
}

// anyGiven reports whether any setting was given on the command line.
func anyGiven(fs *pflag.FlagSet) bool {
	return slices.ContainsFunc(settingFlags(), fs.Changed)
}

// checkFlags refuses the flags that are not typ's, and the settings that
// are wrong whatever the store holds.
func (f *connectorFlags) checkFlags(fs *pflag.FlagSet, typ string) error {
	own := typeFlags(typ)
	var foreign []string
	fs.Visit(func(fl *pflag.Flag) {
		if slices.Contains(settingFlags(), fl.Name) && !slices.Contains(commonFlags, fl.Name) && !slices.Contains(own, fl.Name) {
			foreign = append(foreign, "--"+fl.Name)
		}
	})
	if slices.Equal(foreign, []string{"--trust-upstream-mfa"}) {
		return cli.UsageErrorf("--trust-upstream-mfa: only an OpenID Connect upstream says (in its amr claim) whether it checked a second factor; a %s connector's sign-ins count as one factor", typ)
	}
	if len(foreign) > 0 {
		return cli.UsageErrorf("%s: not a setting of a connector of type %s (see nsauth connectors add --help)", strings.Join(foreign, ", "), typ)
	}
	fileFlag, stdinFlag := secretFlags(typ)
	if f.secretFile != "" && f.secretStdin {
		return cli.UsageErrorf("give one of %s and %s, not both", fileFlag, stdinFlag)
	}
	if fs.Changed(strings.TrimPrefix(fileFlag, "--")) && f.secretFile == "" {
		return cli.UsageErrorf("%s needs a file name", fileFlag)
	}
	if len(f.displayName) > maxDisplayNameLen {
		return cli.UsageErrorf("--display-name: at most %d bytes", maxDisplayNameLen)
	}
	if err := visible.Check("--display-name", f.displayName); err != nil {
		return cli.UsageErrorf("%v", err)
	}
	for _, l := range []struct {
		flag string
		list []string
	}{{"--allowed-domains", f.allowedDomains}, {"--scopes", f.scopes}, {"--team", f.teams}} {
		if len(l.list) > maxListLen {
			return cli.UsageErrorf("%s: at most %d values", l.flag, maxListLen)
		}
		for _, v := range l.list {
			if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r > '~' }) {
				return cli.UsageErrorf("%s %q: a value is printable ASCII without spaces", l.flag, visible.Escape(v))
			}
		}
	}
	for _, t := range f.teams {
		if org, team, ok := strings.Cut(t, "/"); !ok || org == "" || team == "" || strings.Contains(team, "/") {
			return cli.UsageErrorf("--team %q: a team is ORG/TEAM-SLUG, such as acme/platform", visible.Escape(t))
		}
	}
	if fs.Changed("check-interval") && f.checkInterval <= 0 {
		return cli.UsageErrorf("--check-interval must be above 0, such as 5m")
	}
	for _, s := range []struct{ flag, value string }{
		{"--client-id", f.clientID}, {"--issuer", f.issuer}, {"--groups-claim", f.groupsClaim}, {"--org", f.org},
		{"--api-url", f.apiURL}, {"--base-url", f.baseURL}, {"--url", f.ldapURL}, {"--bind-dn", f.bindDN},
		{"--user-base-dn", f.userBaseDN}, {"--user-filter", f.userFilter}, {"--group-base-dn", f.groupBaseDN},
		{"--group-filter", f.groupFilter}, {"--root-ca-file", f.rootCAFile},
	} {
		if len(s.value) > 2048 {
			return cli.UsageErrorf("%s: at most 2048 bytes", s.flag)
		}
		if err := visible.Check(s.flag, s.value); err != nil {
			return cli.UsageErrorf("%v", err)
		}
	}
	return nil
}

// secretFlags names the flags that give typ's secret.
func secretFlags(typ string) (file, stdin string) {
	if typ == store.ConnectorLDAP {
		return "--bind-password-file", "--bind-password-stdin"
	}
	return "--client-secret-file", "--client-secret-stdin"
}

// secretGiven reports whether a secret flag was given.
func (f *connectorFlags) secretGiven() bool { return f.secretFile != "" || f.secretStdin }

// readSecret reads the secret from the file or standard input the flags
// name: its first line, at most maxSecretLen bytes. It never appears in
// an error.
func (f *connectorFlags) readSecret(typ string, stdin io.Reader) (string, error) {
	fileFlag, stdinFlag := secretFlags(typ)
	var (
		r    io.Reader
		from string
	)
	if f.secretFile != "" {
		file, err := os.Open(f.secretFile)
		if err != nil {
			return "", fmt.Errorf("%s: %w", fileFlag, err)
		}
		defer file.Close()
		r, from = file, fileFlag+" "+f.secretFile
	} else {
		r, from = stdin, stdinFlag+" (standard input)"
	}
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxSecretLen+2), maxSecretLen+2).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the secret from %s: %w", from, err)
	}
	secret := strings.TrimRight(line, "\r\n")
	if len(secret) > maxSecretLen {
		return "", fmt.Errorf("the secret in %s is longer than %d bytes", from, maxSecretLen)
	}
	if secret == "" {
		return "", fmt.Errorf("no secret in %s: its first line is empty", from)
	}
	if strings.ContainsFunc(secret, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", fmt.Errorf("the secret in %s holds a control character", from)
	}
	return secret, nil
}

// settings returns typ's settings: base (the stored JSON; nil when
// adding) with the flags given applied, checked by
// connector.ParseSettings. adding applies every flag.
func (f *connectorFlags) settings(fs *pflag.FlagSet, typ string, base []byte, adding bool) ([]byte, error) {
	given := func(name string) bool { return adding && fs.Lookup(name) != nil || fs.Changed(name) }
	set := func(name string, dst *string, v string) {
		if given(name) {
			*dst = v
		}
	}
	lower := func(l []string) []string {
		out := make([]string, 0, len(l))
		for _, v := range l {
			if v = strings.ToLower(v); !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	var s any
	switch typ {
	case store.ConnectorOIDC:
		var o connector.OIDCSettings
		if err := unmarshal(base, &o); err != nil {
			return nil, err
		}
		set("issuer", &o.Issuer, f.issuer)
		set("client-id", &o.ClientID, f.clientID)
		set("groups-claim", &o.GroupsClaim, f.groupsClaim)
		if given("scopes") {
			o.Scopes = stringset.Unique(f.scopes)
		}
		if given("allowed-domains") {
			o.AllowedDomains = lower(f.allowedDomains)
		}
		s = &o
	case store.ConnectorGitHub:
		var g connector.GitHubSettings
		if err := unmarshal(base, &g); err != nil {
			return nil, err
		}
		set("client-id", &g.ClientID, f.clientID)
		set("org", &g.Org, f.org)
		if given("team") {
			g.Teams = stringset.Unique(f.teams)
		}
		if given("allowed-domains") {
			g.AllowedDomains = lower(f.allowedDomains)
		}
		if given("api-url") {
			// github.com's API is the default, spelled as nothing; the web
			// URL of an Enterprise server is derived from its API URL
			// (connector.ParseSettings) unless --base-url names it.
			g.APIURL = strings.TrimSuffix(f.apiURL, "/")
			if g.APIURL == "https://api.github.com" {
				g.APIURL = ""
			}
		}
		if given("base-url") {
			g.BaseURL = strings.TrimSuffix(f.baseURL, "/")
		}
		s = &g
	case store.ConnectorLDAP:
		var l connector.LDAPSettings
		if err := unmarshal(base, &l); err != nil {
			return nil, err
		}
		set("url", &l.URL, f.ldapURL)
		set("bind-dn", &l.BindDN, f.bindDN)
		set("user-base-dn", &l.UserBaseDN, f.userBaseDN)
		set("user-filter", &l.UserFilter, f.userFilter)
		set("username-attr", &l.UsernameAttr, f.usernameAttr)
		set("id-attr", &l.IDAttr, f.idAttr)
		set("name-attr", &l.NameAttr, f.nameAttr)
		set("email-attr", &l.EmailAttr, f.emailAttr)
		set("group-base-dn", &l.GroupBaseDN, f.groupBaseDN)
		set("group-filter", &l.GroupFilter, f.groupFilter)
		set("group-name-attr", &l.GroupNameAttr, f.groupNameAttr)
		set("root-ca-file", &l.RootCAFile, f.rootCAFile)
		if given("start-tls") {
			l.StartTLS = f.startTLS
		}
		if given("insecure-plaintext") {
			l.InsecurePlaintext = f.insecurePlaintext
		}
		if given("insecure-skip-verify") {
			l.InsecureSkipVerify = f.insecureSkipVerify
		}
		if fs.Changed("check-interval") {
			l.CheckInterval = f.checkInterval.String()
		}
		s = &l
	default:
		return nil, cli.UsageErrorf("--type %q: not one of oidc, github, ldap", visible.Escape(typ))
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	if _, err := connector.ParseSettings(typ, raw); err != nil {
		return nil, settingError(typ, err)
	}
	return raw, nil
}

// settingError names the flag of the setting connector.ParseSettings
// refused ("setting start_tls: …" becomes "--start-tls: …").
func settingError(typ string, err error) error {
	msg := err.Error()
	name, rest, ok := strings.Cut(strings.TrimPrefix(msg, "setting "), ": ")
	if !ok || !strings.HasPrefix(msg, "setting ") {
		return fmt.Errorf("the %s connector's settings are refused: %w", typ, err)
	}
	flag := strings.ReplaceAll(name, "_", "-")
	switch name {
	case "teams":
		flag = "team"
	case "bind_password":
		flag = "bind-password-file"
	}
	if !slices.Contains(typeFlags(typ), flag) {
		return fmt.Errorf("the %s connector's settings are refused: %w", typ, err)
	}
	return cli.UsageErrorf("--%s (setting %s): %s", flag, name, rest)
}

// unmarshal decodes stored settings; nil is the zero settings.
func unmarshal(raw []byte, v any) error {
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("the stored settings do not decode: %w", err)
	}
	return nil
}

// restricts reports whether the settings bound who may sign in, which
// --create-users needs: allowed domains, a GitHub org or team, or an LDAP
// directory's filter.
func restricts(typ string, raw []byte) bool {
	switch typ {
	case store.ConnectorOIDC:
		var o connector.OIDCSettings
		return json.Unmarshal(raw, &o) == nil && len(o.AllowedDomains) > 0
	case store.ConnectorGitHub:
		var g connector.GitHubSettings
		return json.Unmarshal(raw, &g) == nil && (g.Org != "" || len(g.Teams) > 0 || len(g.AllowedDomains) > 0)
	case store.ConnectorLDAP:
		return true
	}
	return false
}

// checkCreateUsers refuses --create-users on a connector anyone may sign
// in through: everyone with an account at the upstream would get one
// here.
func checkCreateUsers(typ string, raw []byte) error {
	if restricts(typ, raw) {
		return nil
	}
	how := "--allowed-domains"
	if typ == store.ConnectorGitHub {
		how = "--org, --team or --allowed-domains"
	}
	return cli.UsageErrorf("--create-users: anyone with an account at this %s upstream would get an nsauth account; "+
		"first restrict who may sign in with %s (or link people one by one with nsauth users link)", typ, how)
}

// settingLines are the settings show prints, by label, as the server
// reads them (connector.ParseSettings fills in the defaults), and where
// the secret is; never the secret.
func settingLines(typ string, raw []byte) [][2]string {
	list := func(l []string, none string) string {
		if len(l) == 0 {
			return none
		}
		return strings.Join(l, ",")
	}
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	const sealed = "set, sealed (never shown; a secret flag of update replaces it)"
	parsed, err := connector.ParseSettings(typ, raw)
	if err != nil {
		return [][2]string{{"settings", "refused: " + err.Error() + " (fix with nsauth connectors update)"}}
	}
	switch s := parsed.(type) {
	case *connector.OIDCSettings:
		scopes := s.Scopes
		if !slices.Contains(scopes, "openid") {
			scopes = append([]string{"openid"}, scopes...) // always asked
		}
		return [][2]string{
			{"issuer", s.Issuer}, {"client id", s.ClientID}, {"client secret", sealed},
			{"scopes", strings.Join(scopes, " ")},
			{"allowed domains", list(s.AllowedDomains, "any")}, {"groups claim", s.GroupsClaim},
		}
	case *connector.GitHubSettings:
		return [][2]string{
			{"client id", s.ClientID}, {"client secret", sealed},
			{"org", or(s.Org, "any")}, {"teams", list(s.Teams, "any")}, {"allowed domains", list(s.AllowedDomains, "any")},
			{"API URL", or(s.APIURL, "https://api.github.com")}, {"web URL", or(s.BaseURL, "https://github.com")},
		}
	case *connector.LDAPSettings:
		transport := "TLS (ldaps)"
		switch {
		case strings.HasPrefix(strings.ToLower(s.URL), "ldap://") && s.StartTLS:
			transport = "StartTLS"
		case strings.HasPrefix(strings.ToLower(s.URL), "ldap://"):
			transport = "plain text"
		}
		if s.InsecureSkipVerify {
			transport += ", certificate NOT checked (--insecure-skip-verify)"
		} else if s.RootCAFile != "" {
			transport += ", CAs of " + s.RootCAFile
		}
		groups := "not searched"
		if s.GroupBaseDN != "" {
			groups = s.GroupBaseDN + " " + s.GroupFilter + " (name: " + s.GroupNameAttr + ")"
		}
		return [][2]string{
			{"URL", s.URL}, {"transport", transport}, {"bind", s.BindDN + " (its password set, sealed, never shown)"},
			{"user base DN", s.UserBaseDN}, {"user filter", s.UserFilter},
			{"attributes", fmt.Sprintf("username %s, id %s, name %s, email %s", s.UsernameAttr, s.IDAttr, s.NameAttr, s.EmailAttr)},
			{"groups", groups}, {"check interval", s.CheckInterval},
		}
	}
	return nil
}
