package users

import (
	"context"
	"errors"
)

// CreateInvited stores a new user without a password (u.PasswordHash
// must be empty), whom no password lets in until they set one with a
// one-time link (nsauth users invite, package accountlinks). Otherwise it
// is CreateUser.
func (s *UserStore) CreateInvited(ctx context.Context, u *User) error {
	if u.PasswordHash != "" {
		return errors.New("an invited user has no password hash")
	}
	return s.createUser(ctx, s.db, u, true)
}
