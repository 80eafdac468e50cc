package clients

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
)

// Apps: the native clients people log in to, managed by `nsauth apps`.
// Every change takes effect at once on every replica (nothing is cached).
// Rotating the secret, disabling or deleting an app revokes every token
// issued to it, atomically, as for machine clients: the revocation
// reaches every replica within a second.

// nativeKind is the nsauth_clients.kind of apps.
const nativeKind = "native"

// DeviceCodeGrantType is the grant type of the device flow (RFC 8628).
const DeviceCodeGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// appGrantTypes are the grant types an app may be allowed.
var appGrantTypes = []string{"authorization_code", "refresh_token", DeviceCodeGrantType}

// Bounds on an app's lists, so one row stays small.
const (
	maxAppURIs      = 32
	maxAppURILen    = 2048
	maxAppAudiences = 32
	maxDisplayName  = 128
)

// checkApp checks the settings of c that the store can judge; the URIs'
// form (absolute, https or loopback) is the caller's to check.
func checkApp(c *Client) error {
	if len(c.DisplayName) > maxDisplayName || strings.ContainsFunc(c.DisplayName, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("a display name must be at most %d printable characters", maxDisplayName)
	}
	for what, uris := range map[string][]string{"redirect URIs": c.RedirectURIs, "post-logout redirect URIs": c.PostLogoutRedirectURIs} {
		if len(uris) > maxAppURIs {
			return fmt.Errorf("an app may have at most %d %s", maxAppURIs, what)
		}
		for _, u := range uris {
			if u == "" || len(u) > maxAppURILen || strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				return fmt.Errorf("%s must be 1 to %d characters without spaces", what, maxAppURILen)
			}
		}
	}
	if len(c.BackchannelLogoutURI) > maxAppURILen || strings.ContainsFunc(c.BackchannelLogoutURI, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("a back-channel logout URI must be at most %d characters without spaces", maxAppURILen)
	}
	if err := checkScopeSyntax(c.Scopes); err != nil {
		return err
	}
	for _, g := range c.GrantTypes {
		if !slices.Contains(appGrantTypes, g) {
			return fmt.Errorf("an app's grant types are %s", strings.Join(appGrantTypes, ", "))
		}
	}
	if len(c.Audiences) > maxAppAudiences {
		return fmt.Errorf("an app may have at most %d audiences", maxAppAudiences)
	}
	for _, a := range c.Audiences {
		if a == "" || len(a) > maxAppURILen || strings.ContainsFunc(a, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return fmt.Errorf("an audience must be 1 to %d characters without spaces", maxAppURILen)
		}
	}
	if c.AccessTokenTTL < 0 || c.RefreshTokenTTL < 0 {
		return fmt.Errorf("a token lifetime cannot be negative")
	}
	return nil
}

// appRow is c as stored: the columns that need encoding.
type appRow struct {
	uris, postLogout string
	grantTypes       []string
}

func encodeApp(c *Client) (appRow, error) {
	uris, err := json.Marshal(nonNil(c.RedirectURIs))
	if err != nil {
		return appRow{}, fmt.Errorf("encoding redirect URIs: %w", err)
	}
	pl, err := json.Marshal(nonNil(c.PostLogoutRedirectURIs))
	if err != nil {
		return appRow{}, fmt.Errorf("encoding post-logout redirect URIs: %w", err)
	}
	gt := c.GrantTypes
	if len(gt) == 0 {
		gt = DefaultAppGrantTypes
	}
	return appRow{uris: string(uris), postLogout: string(pl), grantTypes: slices.Clone(gt)}, nil
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// AddApp stores a new app. c.ID is normalised ([NormalizeClientName]); a
// confidential app needs SecretHash, a public one must have none; a name
// cannot start with [MachineClientIDPrefix]. Empty
// GrantTypes become [DefaultAppGrantTypes]. It returns an error wrapping
// [core.ErrConflict] when the name is taken by an app or a machine client.
func (s *ClientStore) AddApp(ctx context.Context, c *Client) error {
	id, err := NormalizeClientName(c.ID)
	if err != nil {
		return err
	}
	if strings.HasPrefix(id, MachineClientIDPrefix) {
		// Such a name would read as a machine client's id.
		return fmt.Errorf("an app name cannot start with %q", MachineClientIDPrefix)
	}
	if c.Public != (len(c.SecretHash) == 0) {
		return errors.New("a confidential app needs a secret hash, and a public app has none")
	}
	if err := checkApp(c); err != nil {
		return err
	}
	row, err := encodeApp(c)
	if err != nil {
		return err
	}
	c.ID, c.GrantTypes = id, row.grantTypes
	now := s.db.Now()
	c.CreatedAt, c.UpdatedAt, c.DisabledAt = time.UnixMilli(now.UnixMilli()), time.UnixMilli(now.UnixMilli()), time.Time{}
	secret := c.SecretHash
	if secret == nil {
		secret = []byte{}
	}
	_, err = s.db.Exec(ctx, s.db, `INSERT INTO nsauth_clients (id, kind, name, secret_hash, redirect_uris, created_at, updated_at,
		display_name, is_public, native, third_party, post_logout_redirect_uris, scopes, grant_types, audiences,
		token_ttl_ms, refresh_token_ttl_ms, backchannel_logout_uri)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, nativeKind, c.ID, secret, row.uris, now.UnixMilli(), now.UnixMilli(),
		c.DisplayName, boolInt(c.Public), boolInt(c.Native), boolInt(c.ThirdParty), row.postLogout, core.JoinList(c.Scopes),
		core.JoinList(row.grantTypes), core.JoinList(c.Audiences), c.AccessTokenTTL.Milliseconds(), c.RefreshTokenTTL.Milliseconds(),
		c.BackchannelLogoutURI)
	if err != nil {
		if s.db.Dialect.IsUnique(err) {
			return fmt.Errorf("client %q: %w", c.ID, core.ErrConflict)
		}
		return fmt.Errorf("adding app: %w", err)
	}
	return nil
}

const appColumns = `id, display_name, secret_hash, is_public, native, third_party, redirect_uris, post_logout_redirect_uris,
	scopes, grant_types, audiences, token_ttl_ms, refresh_token_ttl_ms, backchannel_logout_uri, created_at, updated_at, disabled_at`

func scanApp(row core.Scanner) (*Client, error) {
	var c Client
	var public, native, third int
	var uris, postLogout, scopes, grantTypes, audiences string
	var accessTTL, refreshTTL, created int64
	var updated, disabled sql.NullInt64
	if err := row.Scan(&c.ID, &c.DisplayName, &c.SecretHash, &public, &native, &third, &uris, &postLogout,
		&scopes, &grantTypes, &audiences, &accessTTL, &refreshTTL, &c.BackchannelLogoutURI, &created, &updated, &disabled); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(uris), &c.RedirectURIs); err != nil {
		return nil, fmt.Errorf("client %q has unreadable redirect URIs: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(postLogout), &c.PostLogoutRedirectURIs); err != nil {
		return nil, fmt.Errorf("client %q has unreadable post-logout redirect URIs: %w", c.ID, err)
	}
	if len(c.SecretHash) == 0 {
		c.SecretHash = nil
	}
	if len(c.RedirectURIs) == 0 {
		c.RedirectURIs = nil
	}
	if len(c.PostLogoutRedirectURIs) == 0 {
		c.PostLogoutRedirectURIs = nil
	}
	c.Public, c.Native, c.ThirdParty = public != 0, native != 0, third != 0
	c.Scopes, c.GrantTypes, c.Audiences = core.SplitList(scopes), core.SplitList(grantTypes), core.SplitList(audiences)
	c.AccessTokenTTL, c.RefreshTokenTTL = time.Duration(accessTTL)*time.Millisecond, time.Duration(refreshTTL)*time.Millisecond
	c.CreatedAt, c.UpdatedAt, c.DisabledAt = time.UnixMilli(created), core.FromMillis(updated), core.FromMillis(disabled)
	return &c, nil
}

// ListApps returns every app, disabled or not, ordered by id.
func (s *ClientStore) ListApps(ctx context.Context) ([]Client, error) {
	return core.QueryAll(ctx, s.db, "listing apps", scanApp, `SELECT `+appColumns+` FROM nsauth_clients WHERE kind = ? ORDER BY id`, nativeKind)
}

// UpdateApp replaces the settings of the app c.ID (everything but the
// secret, Public, CreatedAt and DisabledAt), or fails with
// [core.ErrNotFound]. Empty GrantTypes become [DefaultAppGrantTypes]. On
// success c holds what is stored.
func (s *ClientStore) UpdateApp(ctx context.Context, c *Client) error {
	if err := checkApp(c); err != nil {
		return err
	}
	row, err := encodeApp(c)
	if err != nil {
		return err
	}
	got, err := scanApp(s.db.QueryRow(ctx, s.db, `UPDATE nsauth_clients SET display_name = ?, native = ?, third_party = ?, redirect_uris = ?,
		post_logout_redirect_uris = ?, scopes = ?, grant_types = ?, audiences = ?, token_ttl_ms = ?, refresh_token_ttl_ms = ?,
		backchannel_logout_uri = ?, updated_at = ? WHERE id = ? AND kind = ? RETURNING `+appColumns,
		c.DisplayName, boolInt(c.Native), boolInt(c.ThirdParty), row.uris, row.postLogout, core.JoinList(c.Scopes),
		core.JoinList(row.grantTypes), core.JoinList(c.Audiences), c.AccessTokenTTL.Milliseconds(), c.RefreshTokenTTL.Milliseconds(),
		c.BackchannelLogoutURI, s.db.NowMillis(), c.ID, nativeKind))
	if err != nil {
		return core.NotFound(err, "app")
	}
	*c = *got
	return nil
}

// SetAppSecret replaces a confidential app's secret hash and revokes every
// token issued to the app, atomically. A public app has no secret: it
// fails for one.
func (s *ClientStore) SetAppSecret(ctx context.Context, id string, secretHash []byte) error {
	if len(secretHash) == 0 {
		return errors.New("a client secret hash is required")
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var public int
		if err := s.db.QueryRow(ctx, tx, `SELECT is_public FROM nsauth_clients WHERE id = ? AND kind = ?`+s.db.Dialect.LockRows, id, nativeKind).Scan(&public); err != nil {
			return core.NotFound(err, "app")
		}
		if public != 0 {
			return errors.New("a public app has no secret")
		}
		if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_clients SET secret_hash = ?, updated_at = ? WHERE id = ?`, secretHash, s.db.NowMillis(), id); err != nil {
			return fmt.Errorf("replacing the app's secret: %w", err)
		}
		return s.rev.ClientTokens(ctx, tx, id)
	})
}

// SetAppDisabled disables or enables an app. Disabling revokes every token
// issued to it and ends nothing else (the users' browser sessions stay).
// Disabling a disabled app keeps its first DisabledAt.
func (s *ClientStore) SetAppDisabled(ctx context.Context, id string, disabled bool) error {
	now := s.db.NowMillis()
	if !disabled {
		res, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_clients SET disabled_at = NULL, updated_at = ? WHERE id = ? AND kind = ?`, now, id, nativeKind)
		if err != nil {
			return fmt.Errorf("enabling app: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("app: %w", core.ErrNotFound)
		}
		return nil
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var got string
		if err := s.db.QueryRow(ctx, tx, `UPDATE nsauth_clients SET disabled_at = COALESCE(disabled_at, ?), updated_at = ? WHERE id = ? AND kind = ? RETURNING id`,
			now, now, id, nativeKind).Scan(&got); err != nil {
			return core.NotFound(err, "app")
		}
		return s.rev.ClientTokens(ctx, tx, id)
	})
}

// DeleteApp revokes every token issued to the app and deletes it (its
// records, consents and session links by cascade). The tokens are revoked
// first, so that the revocations outlive the records.
func (s *ClientStore) DeleteApp(ctx context.Context, id string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var got string
		if err := s.db.QueryRow(ctx, tx, `SELECT id FROM nsauth_clients WHERE id = ? AND kind = ?`+s.db.Dialect.LockRows, id, nativeKind).Scan(&got); err != nil {
			return core.NotFound(err, "app")
		}
		if err := s.rev.ClientTokens(ctx, tx, id); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, `DELETE FROM nsauth_clients WHERE id = ?`, id); err != nil {
			return fmt.Errorf("deleting app: %w", err)
		}
		return nil
	})
}
