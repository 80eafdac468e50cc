package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Client is an OAuth client registered with the built-in provider.
type Client struct {
	ID string
	// SecretHash is [HashSecret] of the client secret.
	SecretHash []byte
	// RedirectURIs are the exact redirect URIs registered besides the
	// loopback ones every native client may use.
	RedirectURIs []string
	CreatedAt    time.Time
}

// EnsureClient registers c unless a client with its id exists, and
// reports whether it did. An existing client is left as it is.
func (s *Store) EnsureClient(ctx context.Context, c *Client) (bool, error) {
	if c.ID == "" || len(c.SecretHash) == 0 {
		return false, errors.New("a client needs an id and a secret hash")
	}
	uris, err := json.Marshal(c.RedirectURIs)
	if err != nil {
		return false, fmt.Errorf("encoding redirect URIs: %w", err)
	}
	res, err := s.exec(ctx, s.db, `INSERT INTO nsauth_clients (id, secret_hash, redirect_uris, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, c.ID, c.SecretHash, string(uris), s.nowMillis())
	if err != nil {
		return false, fmt.Errorf("registering client: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SetClientRedirectURIs replaces a client's extra redirect URIs.
func (s *Store) SetClientRedirectURIs(ctx context.Context, id string, uris []string) error {
	b, err := json.Marshal(uris)
	if err != nil {
		return fmt.Errorf("encoding redirect URIs: %w", err)
	}
	res, err := s.exec(ctx, s.db, `UPDATE nsauth_clients SET redirect_uris = ? WHERE id = ?`, string(b), id)
	if err != nil {
		return fmt.Errorf("updating client: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("client: %w", ErrNotFound)
	}
	return nil
}

// ClientByID returns a native client (never a [MachineClient]), or an
// error wrapping [ErrNotFound].
func (s *Store) ClientByID(ctx context.Context, id string) (*Client, error) {
	var c Client
	var uris string
	var created int64
	err := s.queryRow(ctx, s.db, `SELECT id, secret_hash, redirect_uris, created_at FROM nsauth_clients WHERE id = ? AND kind = 'native'`, id).
		Scan(&c.ID, &c.SecretHash, &uris, &created)
	if err != nil {
		return nil, notFound(err, "client")
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
	return len(hash) > 0 && subtle.ConstantTimeCompare(HashSecret(secret), hash) == 1
}

// EnsureValue stores name=value unless name already has a value, and
// returns the stored value. Processes racing to initialise the same value
// all get the one that won.
func (s *Store) EnsureValue(ctx context.Context, name, value string) (string, error) {
	if _, err := s.exec(ctx, s.db, `INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, name, value, s.nowMillis()); err != nil {
		return "", fmt.Errorf("storing %s: %w", name, err)
	}
	return s.Value(ctx, name)
}

// SwapValue stores value under name and returns what was stored there
// before ("" when nothing was).
func (s *Store) SwapValue(ctx context.Context, name, value string) (string, error) {
	var prev string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := s.queryRow(ctx, tx, `SELECT value FROM nsauth_instance_values WHERE name = ?`+s.d.lockRows, name).Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value, s.nowMillis()); err != nil {
			return fmt.Errorf("storing %s: %w", name, err)
		}
		return nil
	})
	return prev, err
}

// servedIssuerName is the instance value recording the issuer URL the data
// was last served under.
const servedIssuerName = "issuer_url"

// RecordServedIssuer records issuer as the URL the built-in provider
// serves this data under, and returns the one recorded before ("" at the
// first start).
func (s *Store) RecordServedIssuer(ctx context.Context, issuer string) (string, error) {
	return s.SwapValue(ctx, servedIssuerName, issuer)
}

// ServedIssuer returns the issuer URL the data was last served under, or
// "" when no server has served it yet: what the commands that work on the
// store directly know of the server's issuer without its settings.
func (s *Store) ServedIssuer(ctx context.Context) (string, error) {
	v, err := s.Value(ctx, servedIssuerName)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return v, err
}

// Value returns a stored instance value, or an error wrapping
// [ErrNotFound].
func (s *Store) Value(ctx context.Context, name string) (string, error) {
	var v string
	if err := s.queryRow(ctx, s.db, `SELECT value FROM nsauth_instance_values WHERE name = ?`, name).Scan(&v); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("%s: %w", name, ErrNotFound)
		}
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	return v, nil
}
