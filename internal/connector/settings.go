package connector

// OIDCSettings are an OpenID Connect connector's settings (its client
// secret is kept apart, sealed).
type OIDCSettings struct {
	// Issuer is the upstream's issuer URL (https, or http to a loopback
	// host); its discovery document is read from it.
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
	// Scopes asked for besides openid; default "profile email".
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

// ParseSettings decodes and checks typ's settings (unknown fields
// refused); the error names the setting at fault. It returns
// *OIDCSettings, *GitHubSettings or *LDAPSettings.
func ParseSettings(typ string, settings []byte) (any, error) {
	return nil, ErrNotImplemented
}
