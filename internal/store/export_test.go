package store

import "context"

// BumpSchemaForTest records a schema version one above this build's, as a
// newer nsauth would have.
func BumpSchemaForTest(s *Store) error {
	_, err := s.exec(context.Background(), s.db, `INSERT INTO nsauth_schema_migrations (version, applied_at) VALUES (?, 0)`, SchemaVersion()+1)
	return err
}
