package store

import "context"

// RawAllForTest reads one column of every row as stored, without opening
// it.
func RawAllForTest(s *Store, query string, args ...any) ([][]byte, error) {
	rows, err := s.db.Query(context.Background(), s.db, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
