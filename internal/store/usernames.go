package store

import (
	"context"
	"errors"
)

// Usernames names users by id for a listing (sessions, consents), asking
// the store once per user. A user deleted since is "(deleted user)".
type Usernames struct {
	st    *Store
	names map[string]string
}

// Usernames returns an empty cache of usernames over s.
func (s *Store) Usernames() *Usernames { return &Usernames{st: s, names: map[string]string{}} }

// Of is the username of the user with id.
func (n *Usernames) Of(ctx context.Context, id string) (string, error) {
	if name, ok := n.names[id]; ok {
		return name, nil
	}
	u, err := n.st.UserByID(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		n.names[id] = "(deleted user)"
	case err != nil:
		return "", err
	default:
		n.names[id] = u.Username
	}
	return n.names[id], nil
}
