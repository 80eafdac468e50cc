package store

import (
	"context"
	"database/sql"
)

// BumpSchemaForTest records a schema version one above this build's, as a
// newer nsauth would have.
func BumpSchemaForTest(s *Store) error {
	_, err := s.db.Exec(context.Background(), s.db, `INSERT INTO nsauth_schema_migrations (version, applied_at) VALUES (?, 0)`, SchemaVersion()+1)
	return err
}

// RevocationChannelForTest returns the PostgreSQL channel s notifies
// revocations on.
func RevocationChannelForTest(s *Store) string { return s.channel }

// RecordRevocationSilentlyForTest records a revocation, revoked now,
// without notifying it: a notification that never arrived.
func RecordRevocationSilentlyForTest(s *Store, id string, expiresAt int64) error {
	_, err := s.db.Exec(context.Background(), s.db, `INSERT INTO nsauth_revocations (token_id, expires_at, revoked_at) VALUES (?, ?, ?)`, id, expiresAt, s.db.NowMillis())
	return err
}

// BeginRevocationSilentlyForTest records a revocation, revoked now,
// without notifying it, in a transaction that commits when commit is
// called: a revoking transaction slower than others.
func BeginRevocationSilentlyForTest(s *Store, id string, expiresAt int64) (commit func() error, err error) {
	ctx := context.Background()
	tx, err := s.db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_revocations (token_id, expires_at, revoked_at) VALUES (?, ?, ?)`, id, expiresAt, s.db.NowMillis()); err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	return tx.Commit, nil
}

// QueryRowForTest runs a query on s's database (PostgreSQL placeholders
// as written).
func (s *Store) QueryRowForTest(ctx context.Context, query string, args ...any) *sql.Row {
	return s.db.SQL.QueryRowContext(ctx, query, args...)
}

// ExecForTest runs a statement (with `?` placeholders) on the store's
// database, as an earlier nsauth or an attacker with the file would.
func ExecForTest(s *Store, query string, args ...any) error {
	_, err := s.db.Exec(context.Background(), s.db, query, args...)
	return err
}

// RawForTest reads one column of one row as stored, without opening it.
func RawForTest(s *Store, query string, args ...any) ([]byte, error) {
	var v []byte
	err := s.db.QueryRow(context.Background(), s.db, query, args...).Scan(&v)
	return v, err
}
