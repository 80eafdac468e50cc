package store

import "context"

// BumpSchemaForTest records a schema version one above this build's, as a
// newer nsauth would have.
func BumpSchemaForTest(s *Store) error {
	_, err := s.exec(context.Background(), s.db, `INSERT INTO nsauth_schema_migrations (version, applied_at) VALUES (?, 0)`, SchemaVersion()+1)
	return err
}

// ExecForTest runs a statement (with `?` placeholders) on the store's
// database, as an earlier nsauth or an attacker with the file would.
func ExecForTest(s *Store, query string, args ...any) error {
	_, err := s.exec(context.Background(), s.db, query, args...)
	return err
}

// RawForTest reads one column of one row as stored, without opening it.
func RawForTest(s *Store, query string, args ...any) ([]byte, error) {
	var v []byte
	err := s.queryRow(context.Background(), s.db, query, args...).Scan(&v)
	return v, err
}
