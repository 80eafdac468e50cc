package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nsauth/nsauth/pkg/issuerurl"
)

// OIDCSettings are an OpenID Connect connector's settings (its client
// secret is kept apart, sealed).
type OIDCSettings struct {
	// Issuer is the upstream's issuer URL (https, or http to a loopback
	// host); its discovery document is read from it.
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
	// Scopes asked for besides openid (always asked, listed or not);
	// default (when empty) "profile email".
	Scopes []string `json:"scopes,omitempty"`
	// AllowedDomains, when set, admits only verified emails of these
	// domains.
	AllowedDomains []string `json:"allowed_domains,omitempty"`
	// GroupsClaim is the claim that lists groups; default "groups".
	GroupsClaim string `json:"groups_claim,omitempty"`
}

// GitHubSettings are a GitHub connector's settings (an OAuth app; its
// client secret is kept apart, sealed).
type GitHubSettings struct {
	ClientID string `json:"client_id"`
	// Org admits only members of this organisation; Teams only members of
	// one of these teams ("org/team-slug").
	Org   string   `json:"org,omitempty"`
	Teams []string `json:"teams,omitempty"`
	// AllowedDomains admits only people with a verified email of these
	// domains.
	AllowedDomains []string `json:"allowed_domains,omitempty"`
	// APIURL is GitHub Enterprise's API (https://HOST/api/v3); empty for
	// github.com. BaseURL is its web origin (https://HOST), for the
	// authorization and token endpoints; empty for github.com.
	APIURL  string `json:"api_url,omitempty"`
	BaseURL string `json:"base_url,omitempty"`
}

// LDAPSettings are an LDAP connector's settings (the bind password is kept
// apart, sealed).
type LDAPSettings struct {
	// URL is ldaps://host:port or ldap://host:port; plain ldap:// without
	// StartTLS only to a loopback host unless InsecurePlaintext.
	URL               string `json:"url"`
	StartTLS          bool   `json:"start_tls,omitempty"`
	InsecurePlaintext bool   `json:"insecure_plaintext,omitempty"`
	// InsecureSkipVerify skips checking the server's certificate; RootCAFile
	// names a PEM file of the CAs to trust instead of the system's.
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
	RootCAFile         string `json:"root_ca_file,omitempty"`
	BindDN             string `json:"bind_dn"`
	// UserBaseDN and UserFilter find the person: the filter has one %s
	// for the escaped username, e.g. (&(objectClass=person)(uid=%s)).
	UserBaseDN string `json:"user_base_dn"`
	UserFilter string `json:"user_filter"`
	// UsernameAttr, IDAttr, NameAttr, EmailAttr name attributes (uid,
	// entryUUID, cn, mail by default).
	UsernameAttr string `json:"username_attr,omitempty"`
	IDAttr       string `json:"id_attr,omitempty"`
	NameAttr     string `json:"name_attr,omitempty"`
	EmailAttr    string `json:"email_attr,omitempty"`
	// GroupBaseDN and GroupFilter find the groups: the filter has one %s
	// for the escaped user DN, e.g. (&(objectClass=groupOfNames)(member=%s));
	// GroupNameAttr names them (cn). No group search when GroupBaseDN is
	// empty.
	GroupBaseDN   string `json:"group_base_dn,omitempty"`
	GroupFilter   string `json:"group_filter,omitempty"`
	GroupNameAttr string `json:"group_name_attr,omitempty"`
	// CheckInterval is how often a refresh asks the directory whether the
	// user may still sign in, as a Go duration; default 5m.
	CheckInterval string `json:"check_interval,omitempty"`
}

// Defaults filled in by ParseSettings.
var (
	DefaultOIDCScopes = []string{"profile", "email"}
)

// Defaults filled in by ParseSettings.
const (
	DefaultGroupsClaim       = "groups"
	DefaultLDAPUsernameAttr  = "uid"
	DefaultLDAPIDAttr        = "entryUUID"
	DefaultLDAPNameAttr      = "cn"
	DefaultLDAPEmailAttr     = "mail"
	DefaultLDAPGroupNameAttr = "cn"
	DefaultLDAPCheckInterval = 5 * time.Minute
)

// Bounds of the settings.
const (
	maxSettingsBytes = 16 << 10
	maxListLen       = 50
	maxValueLen      = 512
)

// ParseSettings decodes and checks typ's settings (unknown fields
// refused); the error names the setting at fault. It returns
// *OIDCSettings, *GitHubSettings or *LDAPSettings, with the defaults
// filled in (scopes, groups claim, LDAP attributes and check interval;
// GitHub's URLs stay empty for github.com, and one of them given derives
// the other).
func ParseSettings(typ string, settings []byte) (any, error) {
	if len(settings) > maxSettingsBytes {
		return nil, fmt.Errorf("%s settings are longer than %d bytes", typ, maxSettingsBytes)
	}
	switch typ {
	case TypeOIDC:
		var s OIDCSettings
		if err := decodeStrict(settings, &s); err != nil {
			return nil, err
		}
		if err := s.check(); err != nil {
			return nil, err
		}
		return &s, nil
	case TypeGitHub:
		var s GitHubSettings
		if err := decodeStrict(settings, &s); err != nil {
			return nil, err
		}
		if err := s.check(); err != nil {
			return nil, err
		}
		return &s, nil
	case TypeLDAP:
		var s LDAPSettings
		if err := decodeStrict(settings, &s); err != nil {
			return nil, err
		}
		if err := s.check(); err != nil {
			return nil, err
		}
		return &s, nil
	}
	return nil, fmt.Errorf("connector type %q is not one of %s, %s, %s", typ, TypeOIDC, TypeGitHub, TypeLDAP)
}

// Types of connectors (as the store names them).
const (
	TypeOIDC   = "oidc"
	TypeGitHub = "github"
	TypeLDAP   = "ldap"
)

// decodeStrict decodes one JSON object into v, refusing unknown members
// and anything after it. The error names the member at fault when
// encoding/json says which.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return fmt.Errorf("setting %s: wrong type (want %s)", te.Field, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fmt.Errorf("unknown setting %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return fmt.Errorf("settings are not a JSON object: %v", err)
	}
	if dec.More() {
		return errors.New("settings have data after the JSON object")
	}
	return nil
}

func settingErr(name, format string, args ...any) error {
	return fmt.Errorf("setting %s: %s", name, fmt.Sprintf(format, args...))
}

func (s *OIDCSettings) check() error {
	if s.Issuer == "" {
		return settingErr("issuer", "required (the provider's issuer URL)")
	}
	if _, err := issuerurl.Check(s.Issuer, issuerurl.Options{AllowPath: true}); err != nil {
		return settingErr("issuer", "%v", err)
	}
	if err := checkToken("client_id", s.ClientID); err != nil {
		return err
	}
	if len(s.Scopes) == 0 {
		s.Scopes = slices.Clone(DefaultOIDCScopes)
	}
	if len(s.Scopes) > maxListLen {
		return settingErr("scopes", "more than %d", maxListLen)
	}
	for _, sc := range s.Scopes {
		if !validScope(sc) {
			return settingErr("scopes", "%q is not a scope (RFC 6749 §3.3)", sc)
		}
	}
	var err error
	if s.AllowedDomains, err = checkDomains(s.AllowedDomains); err != nil {
		return err
	}
	if s.GroupsClaim == "" {
		s.GroupsClaim = DefaultGroupsClaim
	}
	if len(s.GroupsClaim) > 64 || !validScope(s.GroupsClaim) {
		return settingErr("groups_claim", "%q is not a claim name", s.GroupsClaim)
	}
	return nil
}

func (s *GitHubSettings) check() error {
	if err := checkToken("client_id", s.ClientID); err != nil {
		return err
	}
	if s.Org != "" && !validGitHubName(s.Org) {
		return settingErr("org", "%q is not a GitHub organisation login", s.Org)
	}
	if len(s.Teams) > maxListLen {
		return settingErr("teams", "more than %d", maxListLen)
	}
	for _, t := range s.Teams {
		org, slug, ok := strings.Cut(t, "/")
		if !ok || !validGitHubName(org) || !validTeamSlug(slug) {
			return settingErr("teams", "%q is not ORG/TEAM-SLUG", t)
		}
		if s.Org != "" && !strings.EqualFold(org, s.Org) {
			return settingErr("teams", "team %q is not of the organisation %q", t, s.Org)
		}
	}
	var err error
	if s.AllowedDomains, err = checkDomains(s.AllowedDomains); err != nil {
		return err
	}
	if s.APIURL != "" {
		if _, err := issuerurl.Check(s.APIURL, issuerurl.Options{AllowPath: true}); err != nil {
			return settingErr("api_url", "%v", err)
		}
		s.APIURL = strings.TrimRight(s.APIURL, "/")
	}
	if s.BaseURL != "" {
		if _, err := issuerurl.Check(strings.TrimRight(s.BaseURL, "/"), issuerurl.Options{}); err != nil {
			return settingErr("base_url", "%v", err)
		}
		s.BaseURL = strings.TrimRight(s.BaseURL, "/")
	}
	switch {
	case s.APIURL != "" && s.BaseURL == "":
		u, _ := url.Parse(s.APIURL)
		s.BaseURL = u.Scheme + "://" + u.Host
	case s.BaseURL != "" && s.APIURL == "":
		s.APIURL = s.BaseURL + "/api/v3"
	}
	return nil
}

func (s *LDAPSettings) check() error {
	if s.URL == "" {
		return settingErr("url", "required (ldaps://HOST:PORT or ldap://HOST:PORT)")
	}
	if s.BindDN == "" {
		return settingErr("bind_dn", "required")
	}
	for name, v := range map[string]string{"url": s.URL, "bind_dn": s.BindDN, "user_base_dn": s.UserBaseDN, "group_base_dn": s.GroupBaseDN,
		"root_ca_file": s.RootCAFile, "user_filter": s.UserFilter, "group_filter": s.GroupFilter} {
		if len(v) > maxValueLen || strings.ContainsAny(v, "\x00\r\n") {
			return settingErr(name, "longer than %d bytes or holds a control character", maxValueLen)
		}
	}
	for _, a := range []struct {
		v   *string
		def string
	}{
		{&s.UsernameAttr, DefaultLDAPUsernameAttr},
		{&s.IDAttr, DefaultLDAPIDAttr},
		{&s.NameAttr, DefaultLDAPNameAttr},
		{&s.EmailAttr, DefaultLDAPEmailAttr},
		{&s.GroupNameAttr, DefaultLDAPGroupNameAttr},
	} {
		if *a.v == "" {
			*a.v = a.def
		}
	}
	if s.CheckInterval == "" {
		s.CheckInterval = DefaultLDAPCheckInterval.String()
	}
	// The rules of the connection, the DNs, the filters and the
	// attributes are the connector's own (ldap.go), the one place they
	// live: it names the setting at fault.
	if err := s.validate(); err != nil {
		return fmt.Errorf("setting %w", err)
	}
	return nil
}

// checkToken requires a printable ASCII value without spaces.
func checkToken(name, v string) error {
	if v == "" {
		return settingErr(name, "required")
	}
	if len(v) > maxValueLen {
		return settingErr(name, "longer than %d bytes", maxValueLen)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= 0x20 || v[i] >= 0x7f {
			return settingErr(name, "holds a space or a character outside printable ASCII")
		}
	}
	return nil
}

// checkDomains lowercases the allowed domains and refuses what is not a
// domain name.
func checkDomains(ds []string) ([]string, error) {
	if len(ds) > maxListLen {
		return nil, settingErr("allowed_domains", "more than %d", maxListLen)
	}
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		d = strings.ToLower(strings.TrimPrefix(d, "@"))
		if !validDomain(d) {
			return nil, settingErr("allowed_domains", "%q is not a domain name", d)
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func validDomain(d string) bool {
	if len(d) == 0 || len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// validScope is RFC 6749's scope-token: %x21 / %x23-5B / %x5D-7E.
func validScope(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// validGitHubName is a GitHub user or organisation login: 1 to 39
// alphanumerics or single hyphens, not at either end.
func validGitHubName(s string) bool {
	if s == "" || len(s) > 39 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validTeamSlug is a GitHub team slug: lowercase alphanumerics, - and _.
func validTeamSlug(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
