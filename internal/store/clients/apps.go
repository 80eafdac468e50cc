package clients

import (
	"context"
	"errors"
)

// errAppsNotYet is returned by the app methods until they are written
// (issue 24 skeleton).
var errAppsNotYet = errors.New("apps: not implemented yet")

// Apps: the native clients people log in to, managed by `nsauth apps`.
// Every change takes effect at once on every replica (nothing is cached).
// Rotating the secret, disabling or deleting an app revokes every token
// issued to it, atomically, as for machine clients: the revocation
// reaches every replica within a second.

// AddApp stores a new app. c.ID is normalised ([NormalizeClientName]); a
// confidential app needs SecretHash, a public one must have none. It
// returns an error wrapping [core.ErrConflict] when the name is taken by an
// app or a machine client.
func (s *ClientStore) AddApp(ctx context.Context, c *Client) error { return errAppsNotYet }

// ListApps returns every app, disabled or not, ordered by id.
func (s *ClientStore) ListApps(ctx context.Context) ([]Client, error) { return nil, errAppsNotYet }

// UpdateApp replaces the settings of the app c.ID (everything but the
// secret, Public, CreatedAt and DisabledAt), or fails with
// [core.ErrNotFound].
func (s *ClientStore) UpdateApp(ctx context.Context, c *Client) error { return errAppsNotYet }

// SetAppSecret replaces a confidential app's secret hash and revokes every
// token issued to the app, atomically.
func (s *ClientStore) SetAppSecret(ctx context.Context, id string, secretHash []byte) error {
	return errAppsNotYet
}

// SetAppDisabled disables or enables an app. Disabling revokes every token
// issued to it and ends nothing else (the users' browser sessions stay).
func (s *ClientStore) SetAppDisabled(ctx context.Context, id string, disabled bool) error {
	return errAppsNotYet
}

// DeleteApp revokes every token issued to the app and deletes it (its
// records, consents and session links by cascade).
func (s *ClientStore) DeleteApp(ctx context.Context, id string) error { return errAppsNotYet }
