package adminservice

import (
	"context"
	"math"
	"strings"
	"unicode/utf8"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
)

// The users of the built-in provider: what `nsauth users add|list|passwd|
// disable|enable|unlock|delete` do, remotely or in process.

// userWhat names the user a request names, for errors: `user "bob"`
// (usernames are compared lower-case).
func userWhat(username string) string {
	return quoted("user", strings.ToLower(username))
}

// userChanged records the audit.UserChanged event of action on u.
func (s *usersRPC) userChanged(ctx context.Context, u *store.User, action string) error {
	return s.record(ctx, audit.Event{Type: audit.UserChanged, Subject: u.ID, Username: u.Username, Reason: action})
}

// user reads the user username names; NotFound when there is none.
func (s *usersRPC) user(ctx context.Context, username string) (*store.User, error) {
	if username == "" {
		return nil, invalid("username is required")
	}
	u, err := s.cfg.Store.UserByUsername(ctx, username)
	if err != nil {
		return nil, toConnect(err, userWhat(username))
	}
	return u, nil
}

// userProto describes u with its second factors and groups.
func (s *usersRPC) userProto(ctx context.Context, u *store.User) (*adminv1.User, error) {
	f, err := s.cfg.Store.SecondFactors(ctx, u.ID)
	if err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	groups, err := s.cfg.Store.UserGroups(ctx, u.ID)
	if err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	return userProtoOf(u, f, groups), nil
}

// usersProto describes users as userProto does, reading their second
// factors and groups in a few queries per store.MaxUsersAtOnce users, not
// three per user: a page of 500 took 1,500 round trips to PostgreSQL.
func (s *usersRPC) usersProto(ctx context.Context, users []store.User) ([]*adminv1.User, error) {
	out := make([]*adminv1.User, 0, len(users))
	for start := 0; start < len(users); start += store.MaxUsersAtOnce {
		chunk := users[start:min(len(users), start+store.MaxUsersAtOnce)]
		ids := make([]string, len(chunk))
		for i := range chunk {
			ids[i] = chunk[i].ID
		}
		factors, err := s.cfg.Store.SecondFactorsOf(ctx, ids)
		if err != nil {
			return nil, toConnect(err, "users")
		}
		groups, err := s.cfg.Store.UsersGroups(ctx, ids)
		if err != nil {
			return nil, toConnect(err, "users")
		}
		for i := range chunk {
			out = append(out, userProtoOf(&chunk[i], factors[chunk[i].ID], groups[chunk[i].ID]))
		}
	}
	return out, nil
}

// userProtoOf is u as the admin API describes it, with its second
// factors f and its groups.
func userProtoOf(u *store.User, f store.SecondFactors, groups []string) *adminv1.User {
	return &adminv1.User{
		Id:          u.ID,
		Username:    u.Username,
		Name:        u.Name,
		Email:       u.Email,
		CreatedAt:   unix(u.CreatedAt),
		UpdatedAt:   unix(u.UpdatedAt),
		DisabledAt:  unix(u.DisabledAt),
		HasPassword: u.HasPassword(),
		Factors:     factorList(f),
		Groups:      groups,
	}
}

// factorList is f as User.factors lists it: one entry per factor.
func factorList(f store.SecondFactors) []string {
	var out []string
	if f.TOTP {
		out = append(out, FactorTOTP)
	}
	for range f.RecoveryCodes {
		out = append(out, FactorRecoveryCode)
	}
	for range f.Passkeys {
		out = append(out, FactorPasskey)
	}
	return out
}

// The entries of User.factors.
const (
	FactorTOTP         = "totp"
	FactorPasskey      = "passkey"
	FactorRecoveryCode = "recovery"
)

// Factors counts the entries of User.factors back into store.SecondFactors.
func Factors(u *adminv1.User) store.SecondFactors {
	var f store.SecondFactors
	for _, name := range u.GetFactors() {
		switch name {
		case FactorTOTP:
			f.TOTP = true
		case FactorPasskey:
			f.Passkeys++
		case FactorRecoveryCode:
			f.RecoveryCodes++
		}
	}
	return f
}

// MaxUsersPage caps ListUsersRequest.limit.
const MaxUsersPage = 1000

// UsersPage is the page `nsauth users list` asks for.
const UsersPage = 500

// maxAfterUsername bounds ListUsersRequest.after_username: longer than
// any username (store.NormalizeUsername), so it never cuts one short.
const maxAfterUsername = 1024

// ListUsers lists the users by username: a page of them (limit, after
// after_username), or, with no limit, every one after after_username.
func (s *usersRPC) ListUsers(ctx context.Context, req *connect.Request[adminv1.ListUsersRequest]) (*connect.Response[adminv1.ListUsersResponse], error) {
	after, limit := req.Msg.GetAfterUsername(), int(req.Msg.GetLimit())
	if limit < 0 {
		return nil, invalid("limit: must not be negative")
	}
	if len(after) > maxAfterUsername || !utf8.ValidString(after) {
		return nil, invalid("after_username: not a username")
	}
	var users []store.User
	var err error
	switch {
	case limit == 0 && after == "":
		users, err = s.cfg.Store.ListUsers(ctx)
	case limit == 0:
		users, err = s.cfg.Store.ListUsersAfter(ctx, after, math.MaxInt32)
	default:
		users, err = s.cfg.Store.ListUsersAfter(ctx, after, min(limit, MaxUsersPage))
	}
	if err != nil {
		return nil, toConnect(err, "users")
	}
	described, err := s.usersProto(ctx, users)
	if err != nil {
		return nil, err
	}
	resp := &adminv1.ListUsersResponse{Users: described}
	if len(users) > 0 {
		resp.LastUsername = users[len(users)-1].Username
	}
	return connect.NewResponse(resp), nil
}

// GetUser describes one user.
func (s *usersRPC) GetUser(ctx context.Context, req *connect.Request[adminv1.GetUserRequest]) (*connect.Response[adminv1.GetUserResponse], error) {
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	p, err := s.userProto(ctx, u)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.GetUserResponse{User: p}), nil
}

// hashPassword checks a new password against the policy and hashes it.
func hashPassword(pw string) (string, error) {
	if err := password.Validate(pw); err != nil {
		return "", invalid("password: %v", err)
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return "", internal(err)
	}
	return hash, nil
}

// CreateUser creates a user, with a password or without one (who then
// signs in after an invite link, or through a connector).
func (s *usersRPC) CreateUser(ctx context.Context, req *connect.Request[adminv1.CreateUserRequest]) (*connect.Response[adminv1.CreateUserResponse], error) {
	m := req.Msg
	username, err := store.NormalizeUsername(m.GetUsername())
	if err != nil {
		return nil, invalid("username: %v", err)
	}
	var groups []string
	if len(m.GetGroups()) > 0 {
		if groups, err = s.checkGroups(ctx, m.GetGroups()); err != nil {
			return nil, err
		}
	}
	u := &store.User{Username: username, Name: m.GetName(), Email: m.GetEmail()}
	if m.GetPassword() != "" {
		if u.PasswordHash, err = hashPassword(m.GetPassword()); err != nil {
			return nil, err
		}
	}
	create := s.cfg.Store.CreateUser
	if u.PasswordHash == "" {
		create = s.cfg.Store.CreateInvited // sets a password with a link (CreateUserLink)
	}
	if err := create(ctx, u); err != nil {
		return nil, toConnect(err, userWhat(username))
	}
	if err := s.userChanged(ctx, u, "added"); err != nil {
		return nil, err
	}
	if len(groups) > 0 {
		if _, err := s.setUserGroups(ctx, u, groups, nil); err != nil {
			return nil, err
		}
	}
	p, err := s.userProto(ctx, u)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.CreateUserResponse{User: p}), nil
}

// SetUserPassword sets a user's password, which revokes its tokens, and
// with reset_factors removes its second factors too.
func (s *usersRPC) SetUserPassword(ctx context.Context, req *connect.Request[adminv1.SetUserPasswordRequest]) (*connect.Response[adminv1.SetUserPasswordResponse], error) {
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	hash, err := hashPassword(req.Msg.GetPassword())
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.SetPassword(ctx, u.Username, hash); err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	if err := s.userChanged(ctx, u, "password_changed"); err != nil {
		return nil, err
	}
	if !req.Msg.GetResetFactors() {
		return connect.NewResponse(&adminv1.SetUserPasswordResponse{}), nil
	}
	if err := s.resetFactors(ctx, u, "the password was changed, but removing the second factors failed (run nsauth users mfa-reset "+u.Username+")"); err != nil {
		return nil, err // factors.go
	}
	return connect.NewResponse(&adminv1.SetUserPasswordResponse{FactorsReset: true}), nil
}

// SetUserDisabled disables a user (revoking its tokens) or enables it.
func (s *usersRPC) SetUserDisabled(ctx context.Context, req *connect.Request[adminv1.SetUserDisabledRequest]) (*connect.Response[adminv1.SetUserDisabledResponse], error) {
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	disabled := req.Msg.GetDisabled()
	changed := u.Disabled() != disabled
	link, err := s.liveLink(ctx, u) // the store deletes it with the disable (links.go)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.SetDisabled(ctx, u.Username, disabled); err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	action := "enabled"
	if disabled {
		action = "disabled"
	}
	if err := s.userChanged(ctx, u, action); err != nil {
		return nil, err
	}
	if disabled {
		if err := s.linkEnded(ctx, u, link, "user_disabled"); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(&adminv1.SetUserDisabledResponse{Changed: changed}), nil
}

// UnlockUser clears the account's login-attempt counters (the one for
// browsers that never logged in to it and those of its known browsers)
// and takes its failures off the client addresses' counters. What an
// address tried at other accounts still counts.
func (s *usersRPC) UnlockUser(ctx context.Context, req *connect.Request[adminv1.UnlockUserRequest]) (*connect.Response[adminv1.UnlockUserResponse], error) {
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	cleared, err := s.cfg.Store.ClearAccountLoginAttempts(ctx, u.Username)
	if err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	if err := s.userChanged(ctx, u, "unlocked"); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.UnlockUserResponse{Counters: cleared.Counters, Addresses: cleared.Addresses}), nil
}

// DeleteUser deletes a user and everything issued to it.
func (s *usersRPC) DeleteUser(ctx context.Context, req *connect.Request[adminv1.DeleteUserRequest]) (*connect.Response[adminv1.DeleteUserResponse], error) {
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	link, err := s.liveLink(ctx, u) // deleted with the user (links.go)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.DeleteUser(ctx, u.Username); err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	if err := s.userChanged(ctx, u, "deleted"); err != nil {
		return nil, err
	}
	if err := s.linkEnded(ctx, u, link, "user_deleted"); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.DeleteUserResponse{}), nil
}

// checkGroups normalizes the groups a new user is to join and refuses
// those that do not exist, before the user is created.
func (s *usersRPC) checkGroups(ctx context.Context, groups []string) ([]string, error) {
	names, err := groupNames("groups", groups)
	if err != nil {
		return nil, err
	}
	for _, g := range names {
		if _, err := s.cfg.Store.GroupByName(ctx, g); err != nil {
			return nil, toConnect(err, groupWhat(g))
		}
	}
	return names, nil
}
