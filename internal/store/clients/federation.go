package clients

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/revocations"
)

// FederationPolicy is a stored trust policy: the ID tokens of Issuer for
// Audience whose subject matches Subject are exchanged for access tokens
// of the machine client ClientID (see package federation for the rules).
type FederationPolicy struct {
	// ID is generated; the tokens issued under the policy carry it as
	// their grant id.
	ID       string
	Name     string
	Issuer   string
	Audience string
	Subject  string
	ClientID string
	// MaxTTL caps the lifetime of the tokens issued under the policy; zero
	// means the client's lifetime alone.
	MaxTTL    time.Duration
	CreatedAt time.Time
}

// CreateFederationPolicy stores a policy, checked by the caller. It fails
// with an error wrapping [core.ErrConflict] when the name is taken, and
// [core.ErrNotFound] when ClientID is not a machine client.
func (s *ClientStore) CreateFederationPolicy(ctx context.Context, p *FederationPolicy) error {
	if p.Name == "" || p.Issuer == "" || p.Audience == "" || p.Subject == "" || p.MaxTTL < 0 {
		return fmt.Errorf("a federation policy needs a name, an issuer, an audience, a subject and no negative lifetime")
	}
	if p.ID == "" {
		p.ID = core.NewID()
	}
	p.CreatedAt = s.db.Now()
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var got string
		if err := s.db.QueryRow(ctx, tx, `SELECT id FROM nsauth_clients WHERE id = ? AND kind = ?`, p.ClientID, machineKind).Scan(&got); err != nil {
			return core.NotFound(err, "machine client")
		}
		_, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_federation_policies (id, name, issuer, audience, subject, client_id, max_ttl_ms, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, p.ID, p.Name, p.Issuer, p.Audience, p.Subject, p.ClientID, p.MaxTTL.Milliseconds(), p.CreatedAt.UnixMilli())
		if err != nil {
			if s.db.Dialect.IsUnique(err) {
				return fmt.Errorf("federation policy %q: %w", p.Name, core.ErrConflict)
			}
			return fmt.Errorf("storing the federation policy: %w", err)
		}
		return nil
	})
}

const federationColumns = `id, name, issuer, audience, subject, client_id, max_ttl_ms, created_at`

// FederationPolicies returns every policy, ordered by name.
func (s *ClientStore) FederationPolicies(ctx context.Context) ([]FederationPolicy, error) {
	return s.federationPolicies(ctx, `SELECT `+federationColumns+` FROM nsauth_federation_policies ORDER BY name`)
}

// FederationPoliciesByIssuer returns the policies whose issuer is exactly
// issuer (compared byte for byte), ordered by name; none is not an error.
func (s *ClientStore) FederationPoliciesByIssuer(ctx context.Context, issuer string) ([]FederationPolicy, error) {
	return s.federationPolicies(ctx, `SELECT `+federationColumns+` FROM nsauth_federation_policies WHERE issuer = ? ORDER BY name`, issuer)
}

func (s *ClientStore) federationPolicies(ctx context.Context, query string, args ...any) ([]FederationPolicy, error) {
	rows, err := s.db.Query(ctx, s.db, query, args...)
	if err != nil {
		return nil, fmt.Errorf("reading federation policies: %w", err)
	}
	defer rows.Close()
	var out []FederationPolicy
	for rows.Next() {
		var p FederationPolicy
		var ttl, created int64
		if err := rows.Scan(&p.ID, &p.Name, &p.Issuer, &p.Audience, &p.Subject, &p.ClientID, &ttl, &created); err != nil {
			return nil, fmt.Errorf("reading federation policies: %w", err)
		}
		p.MaxTTL, p.CreatedAt = time.Duration(ttl)*time.Millisecond, time.UnixMilli(created)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading federation policies: %w", err)
	}
	return out, nil
}

// DeleteFederationPolicy deletes the policy named name and revokes the
// access tokens issued under it, atomically. It fails with an error
// wrapping [core.ErrNotFound] when there is no such policy.
func (s *ClientStore) DeleteFederationPolicy(ctx context.Context, name string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var id, client string
		if err := s.db.QueryRow(ctx, tx, `DELETE FROM nsauth_federation_policies WHERE name = ? RETURNING id, client_id`, name).Scan(&id, &client); err != nil {
			return core.NotFound(err, "federation policy")
		}
		_, err := s.rev.AccessTokens(ctx, tx, s.db.NowMillis(), revocations.OfClientsGrant(id, client))
		return err
	})
}
