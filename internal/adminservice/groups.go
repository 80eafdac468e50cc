package adminservice

import (
	"context"
	"errors"
	"slices"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/groups"
	"github.com/nsauth/nsauth/internal/visible"
)

// The groups nsauth keeps, and who is in them: what `nsauth groups
// add|list|delete` and `nsauth users groups` do, remotely or in process.
// A user's groups reach the `groups` claim of the tokens of apps granted
// the `groups` scope; the group `admin` is the one this service trusts.

// groupWhat names a group for errors: `group "ops"`.
func groupWhat(name string) string { return quoted("group", name) }

// groupName normalizes a group name given in field, or refuses it with
// InvalidArgument naming the field (never echoing the input, which may be
// anything).
func groupName(field, name string) (string, error) {
	if name == "" {
		return "", invalid("%s: a group name is required", field)
	}
	n, err := store.NormalizeGroupName(name)
	if err != nil {
		return "", invalid("%s: %v", field, err)
	}
	return n, nil
}

// groupNames normalizes the group names given in field.
func groupNames(field string, names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, name := range names {
		n, err := groupName(field, name)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func groupProto(g *store.Group) *adminv1.Group {
	return &adminv1.Group{
		Name:        g.Name,
		Description: g.Description,
		CreatedAt:   unix(g.CreatedAt),
		Members:     int32(min(g.Members, 1<<31-1)),
	}
}

// ListGroups lists every group nsauth keeps, by name, with its number of
// members. Connector groups (CONNECTOR:name) are not among them: they
// exist upstream.
func (s *Service) ListGroups(ctx context.Context, _ *connect.Request[adminv1.ListGroupsRequest]) (*connect.Response[adminv1.ListGroupsResponse], error) {
	list, err := s.cfg.Store.ListGroups(ctx)
	if err != nil {
		return nil, toConnect(err, "groups")
	}
	resp := &adminv1.ListGroupsResponse{Groups: make([]*adminv1.Group, 0, len(list))}
	for i := range list {
		resp.Groups = append(resp.Groups, groupProto(&list[i]))
	}
	return connect.NewResponse(resp), nil
}

// CreateGroup creates a group; AlreadyExists when the name is taken.
func (s *Service) CreateGroup(ctx context.Context, req *connect.Request[adminv1.CreateGroupRequest]) (*connect.Response[adminv1.CreateGroupResponse], error) {
	name, err := groupName("name", req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	desc := req.Msg.GetDescription()
	if len(desc) > groups.MaxDescriptionLen {
		return nil, invalid("description: at most %d bytes", groups.MaxDescriptionLen)
	}
	if err := visible.Check("description", desc); err != nil {
		return nil, invalid("%v", err)
	}
	g, err := s.cfg.Store.CreateGroup(ctx, name, desc)
	if err != nil {
		return nil, toConnect(err, groupWhat(name))
	}
	if err := s.record(ctx, audit.Event{Type: audit.GroupChanged, Target: g.Name, Reason: "added"}); err != nil {
		return nil, toConnect(err, groupWhat(name))
	}
	return connect.NewResponse(&adminv1.CreateGroupResponse{Group: groupProto(g)}), nil
}

// DeleteGroup deletes a group and its memberships; NotFound when there
// is none.
func (s *Service) DeleteGroup(ctx context.Context, req *connect.Request[adminv1.DeleteGroupRequest]) (*connect.Response[adminv1.DeleteGroupResponse], error) {
	name, err := groupName("name", req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.DeleteGroup(ctx, name); err != nil {
		return nil, toConnect(err, groupWhat(name))
	}
	if err := s.record(ctx, audit.Event{Type: audit.GroupChanged, Target: name, Reason: "deleted"}); err != nil {
		return nil, toConnect(err, groupWhat(name))
	}
	return connect.NewResponse(&adminv1.DeleteGroupResponse{}), nil
}

// SetUserGroups adds a user to groups and removes it from others, at
// once: when any group named does not exist, nothing changes (NotFound
// naming it). It answers the user's nsauth groups afterwards.
func (s *Service) SetUserGroups(ctx context.Context, req *connect.Request[adminv1.SetUserGroupsRequest]) (*connect.Response[adminv1.SetUserGroupsResponse], error) {
	add, err := groupNames("add", req.Msg.GetAdd())
	if err != nil {
		return nil, err
	}
	remove, err := groupNames("remove", req.Msg.GetRemove())
	if err != nil {
		return nil, err
	}
	for _, g := range add {
		if slices.Contains(remove, g) {
			return nil, invalid("group %q is both added and removed: name it once", g)
		}
	}
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	after, err := s.setUserGroups(ctx, u, add, remove)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.SetUserGroupsResponse{Groups: after}), nil
}

// setUserGroups changes u's memberships (names normalized, none both
// added and removed), audits each membership that changed, and returns
// u's nsauth groups afterwards. CreateUser's groups go through it too.
func (s *Service) setUserGroups(ctx context.Context, u *store.User, add, remove []string) ([]string, error) {
	before, err := s.cfg.Store.LocalUserGroups(ctx, u.ID)
	if err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	after, err := s.cfg.Store.SetUserGroups(ctx, u.ID, add, remove)
	if err != nil {
		what := userWhat(u.Username)
		if errors.Is(err, store.ErrNotFound) {
			what = s.missing(ctx, slices.Concat(add, remove), u.Username)
		}
		return nil, toConnect(err, what)
	}
	for _, change := range []struct {
		groups []string
		not    []string
		reason string
	}{{after, before, "member_added"}, {before, after, "member_removed"}} {
		for _, g := range change.groups {
			if slices.Contains(change.not, g) {
				continue
			}
			e := audit.Event{Type: audit.GroupChanged, Target: g, Subject: u.ID, Username: u.Username, Reason: change.reason}
			if err := s.record(ctx, e); err != nil {
				return nil, toConnect(err, groupWhat(g))
			}
		}
	}
	if after == nil {
		after = []string{}
	}
	return after, nil
}

// missing names what a NotFound from SetUserGroups did not find: the
// first group of names that does not exist, else the user (deleted
// meanwhile).
func (s *Service) missing(ctx context.Context, names []string, username string) string {
	for _, g := range names {
		if _, err := s.cfg.Store.GroupByName(ctx, g); errors.Is(err, store.ErrNotFound) {
			return groupWhat(g)
		}
	}
	return userWhat(username)
}
