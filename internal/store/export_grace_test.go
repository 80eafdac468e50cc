package store

import "context"

// SealedSuccessorForTest returns what the row of refresh token id holds of
// its successor's value (nil when nothing).
func SealedSuccessorForTest(s *Store, id string) ([]byte, error) {
	var sealed []byte
	err := s.db.QueryRow(context.Background(), s.db, `SELECT successor_sealed FROM nsauth_refresh_tokens WHERE id = ?`, id).Scan(&sealed)
	return sealed, err
}
