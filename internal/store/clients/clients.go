// Package clients keeps the OAuth clients of the built-in provider: the
// broker's native clients, the machine clients that use the
// client-credentials grant, and the federation policies that let outside
// identities obtain a machine client's tokens. Client secrets are stored
// as digests only.
package clients

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/revocations"
)

// ClientStore keeps clients and federation policies.
type ClientStore struct {
	db  *core.DB
	rev *revocations.Revoker
}

// New returns the clients of db, whose tokens rev revokes.
func New(db *core.DB, rev *revocations.Revoker) *ClientStore {
	return &ClientStore{db: db, rev: rev}
}

// Client is an application registered with the built-in provider: a
// client that sends people's browsers to the login page (the broker's own
// nsauth-cli is one). Its id is its name. Machine clients are
// [MachineClient]s, never Clients.
type Client struct {
	// ID is the client id, which is also the app's name (see
	// [NormalizeClientName]).
	ID string
	// DisplayName is shown on the login and consent pages; empty means ID.
	DisplayName string
	// SecretHash is [HashSecret] of the client secret; empty for a public
	// client.
	SecretHash []byte
	// Public marks a client that holds no secret (token_endpoint_auth_method
	// none): it must use PKCE S256.
	Public bool
	// Native lets loopback redirect URIs vary their port (RFC 8252 §7.3);
	// every other redirect URI matches exactly.
	Native bool
	// ThirdParty apps get a consent page listing the scopes, once per user
	// and app (until the consent is revoked).
	ThirdParty bool
	// RedirectURIs are the exact redirect URIs registered.
	RedirectURIs []string
	// PostLogoutRedirectURIs are where end-session may send the browser.
	PostLogoutRedirectURIs []string
	// Scopes are the scopes the app may ask for; empty means every scope
	// the server supports.
	Scopes []string
	// GrantTypes are the OAuth grant types the app may use
	// (authorization_code, refresh_token,
	// urn:ietf:params:oauth:grant-type:device_code); empty means
	// [DefaultAppGrantTypes].
	GrantTypes []string
	// Audiences are the audiences (RFC 8707 resources) the app's access
	// tokens may be issued for besides nsauth's own.
	Audiences []string
	// AccessTokenTTL and RefreshTokenTTL are the app's token lifetimes;
	// zero means the server's.
	AccessTokenTTL, RefreshTokenTTL time.Duration
	// BackchannelLogoutURI, when set, receives OpenID Connect back-channel
	// logout tokens.
	BackchannelLogoutURI string
	CreatedAt            time.Time
	UpdatedAt            time.Time
	DisabledAt           time.Time
}

// DefaultAppGrantTypes are the grant types of an app registered without
// any: the code flow and refreshing.
var DefaultAppGrantTypes = []string{"authorization_code", "refresh_token"}

// BrokerGrantTypes are the grant types of the broker's client (nsauth-cli):
// the code flow, refreshing and the device flow.
var BrokerGrantTypes = []string{"authorization_code", "refresh_token", DeviceCodeGrantType}

// Disabled reports whether the app is disabled.
func (c *Client) Disabled() bool { return !c.DisabledAt.IsZero() }

// Name is the app's name: its id.
func (c *Client) Name() string { return c.ID }

// Title is what pages call the app: its display name, or its name.
func (c *Client) Title() string {
	if c.DisplayName != "" {
		return c.DisplayName
	}
	return c.ID
}

// EnsureClient registers c, a confidential app such as the broker's,
// unless a client with its id exists, and reports whether it did. An
// existing client is left as it is. c is stored with its app settings;
// empty GrantTypes are [BrokerGrantTypes] (not [DefaultAppGrantTypes]),
// as for the clients registered before apps had settings. It takes its id
// as its name unless a machine client has that name. Any unique value
// already taken makes it do nothing, not fail: replicas that start
// together register the one client at the same moment, and all but one
// of them find its id (or name) taken by the time their row is checked.
func (s *ClientStore) EnsureClient(ctx context.Context, c *Client) (bool, error) {
	if c.ID == "" || len(c.SecretHash) == 0 {
		return false, errors.New("a client needs an id and a secret hash")
	}
	if err := checkApp(c); err != nil {
		return false, err
	}
	withGrants := *c
	if len(withGrants.GrantTypes) == 0 {
		withGrants.GrantTypes = BrokerGrantTypes
	}
	row, err := encodeApp(&withGrants)
	if err != nil {
		return false, err
	}
	now := s.db.NowMillis()
	res, err := s.db.Exec(ctx, s.db, `INSERT INTO nsauth_clients (id, kind, name, secret_hash, redirect_uris, created_at, updated_at,
		display_name, is_public, native, third_party, post_logout_redirect_uris, scopes, grant_types, audiences,
		token_ttl_ms, refresh_token_ttl_ms, backchannel_logout_uri)
		SELECT ?, ?, CASE WHEN EXISTS (SELECT 1 FROM nsauth_clients WHERE name = ?) THEN NULL ELSE ? END, ?, ?, ?, ?,
		?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?
		WHERE true ON CONFLICT DO NOTHING`,
		c.ID, nativeKind, c.ID, c.ID, c.SecretHash, row.uris, now, now,
		c.DisplayName, boolInt(c.Native), boolInt(c.ThirdParty), row.postLogout, core.JoinList(c.Scopes),
		core.JoinList(row.grantTypes), core.JoinList(c.Audiences), c.AccessTokenTTL.Milliseconds(), c.RefreshTokenTTL.Milliseconds(),
		c.BackchannelLogoutURI)
	if err != nil {
		return false, fmt.Errorf("registering client: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SetClientRedirectURIs replaces a client's extra redirect URIs.
func (s *ClientStore) SetClientRedirectURIs(ctx context.Context, id string, uris []string) error {
	b, err := json.Marshal(nonNil(uris))
	if err != nil {
		return fmt.Errorf("encoding redirect URIs: %w", err)
	}
	res, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_clients SET redirect_uris = ? WHERE id = ?`, string(b), id)
	if err != nil {
		return fmt.Errorf("updating client: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("client: %w", core.ErrNotFound)
	}
	return nil
}

// ClientByID returns an app (a native client, never a [MachineClient])
// with all its settings, disabled or not, or an error wrapping
// [core.ErrNotFound].
func (s *ClientStore) ClientByID(ctx context.Context, id string) (*Client, error) {
	c, err := scanApp(s.db.QueryRow(ctx, s.db, `SELECT `+appColumns+` FROM nsauth_clients WHERE id = ? AND kind = ?`, id, nativeKind))
	if err != nil {
		return nil, core.NotFound(err, "client")
	}
	return c, nil
}

// CheckSecret reports whether secret is the client's secret, in constant
// time.
func (c *Client) CheckSecret(secret string) bool { return secretMatches(secret, c.SecretHash) }

// secretMatches is the one comparison of a client secret with its stored
// digest: constant time, so a wrong guess learns nothing from the timing.
func secretMatches(secret string, hash []byte) bool {
	return len(hash) > 0 && subtle.ConstantTimeCompare(core.HashSecret(secret), hash) == 1
}
