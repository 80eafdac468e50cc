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

// EnsureClient registers c unless a client with its id exists, and
// reports whether it did. An existing client is left as it is.
func (s *ClientStore) EnsureClient(ctx context.Context, c *Client) (bool, error) {
	if c.ID == "" || len(c.SecretHash) == 0 {
		return false, errors.New("a client needs an id and a secret hash")
	}
	uris, err := json.Marshal(c.RedirectURIs)
	if err != nil {
		return false, fmt.Errorf("encoding redirect URIs: %w", err)
	}
	res, err := s.db.Exec(ctx, s.db, `INSERT INTO nsauth_clients (id, secret_hash, redirect_uris, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, c.ID, c.SecretHash, string(uris), s.db.NowMillis())
	if err != nil {
		return false, fmt.Errorf("registering client: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SetClientRedirectURIs replaces a client's extra redirect URIs.
func (s *ClientStore) SetClientRedirectURIs(ctx context.Context, id string, uris []string) error {
	b, err := json.Marshal(uris)
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

// ClientByID returns a native client (never a [MachineClient]), or an
// error wrapping [core.ErrNotFound].
func (s *ClientStore) ClientByID(ctx context.Context, id string) (*Client, error) {
	var c Client
	var uris string
	var created int64
	err := s.db.QueryRow(ctx, s.db, `SELECT id, secret_hash, redirect_uris, created_at FROM nsauth_clients WHERE id = ? AND kind = 'native'`, id).
		Scan(&c.ID, &c.SecretHash, &uris, &created)
	if err != nil {
		return nil, core.NotFound(err, "client")
	}
	if err := json.Unmarshal([]byte(uris), &c.RedirectURIs); err != nil {
		return nil, fmt.Errorf("client %q has unreadable redirect URIs: %w", id, err)
	}
	c.CreatedAt = time.UnixMilli(created)
	return &c, nil
}

// CheckSecret reports whether secret is the client's secret, in constant
// time.
func (c *Client) CheckSecret(secret string) bool { return secretMatches(secret, c.SecretHash) }

// secretMatches is the one comparison of a client secret with its stored
// digest: constant time, so a wrong guess learns nothing from the timing.
func secretMatches(secret string, hash []byte) bool {
	return len(hash) > 0 && subtle.ConstantTimeCompare(core.HashSecret(secret), hash) == 1
}
