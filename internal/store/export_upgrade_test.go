package store

// MigrationSQLForTest returns the dialect's migrations in order, the SQL
// of migration k at index k-1, for tests that build a database of an
// earlier schema step by step.
func MigrationSQLForTest(dialect string) ([]string, error) {
	ms, err := migrations(dialect)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.sql
	}
	return out, nil
}
