// Package groups keeps the groups nsauth itself manages (nsauth groups
// add, nsauth users groups NAME --add G) and their members. They reach
// tokens, with the groups a connector saw upstream (CONNECTOR:name), in
// the `groups` claim; the group `admin` is the one the admin API trusts.
package groups

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/visible"
)

// GroupStore keeps groups and their members.
type GroupStore struct {
	db *core.DB
}

// New returns the groups of db.
func New(db *core.DB) *GroupStore {
	return &GroupStore{db: db}
}

// Group is a group nsauth keeps.
type Group struct {
	// Name is unique, lower-case (see [NormalizeGroupName]).
	Name string
	// Description is for people; optional.
	Description string
	CreatedAt   time.Time
	// Members is how many users are in the group.
	Members int
}

// MaxGroupNameLen bounds group names.
const MaxGroupNameLen = 64

// MaxDescriptionLen bounds a group's description.
const MaxDescriptionLen = 256

// NormalizeGroupName lower-cases a group name and checks it: 1 to 64
// characters from a-z, 0-9 and . _ -, starting with a letter or digit.
// It has no ':', which names a connector's groups (CONNECTOR:name). The
// error text never contains the input.
func NormalizeGroupName(name string) (string, error) {
	n := strings.ToLower(name)
	if n == "" || len(n) > MaxGroupNameLen {
		return "", fmt.Errorf("a group name must be 1 to %d characters long", MaxGroupNameLen)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (i > 0 && strings.IndexByte("._-", c) >= 0)
		if !ok {
			return "", errors.New("a group name may contain only letters, digits and . _ - (and must start with a letter or digit)")
		}
	}
	return n, nil
}

// CreateGroup stores a new group. It fails with [core.ErrConflict] when
// the name is taken.
func (s *GroupStore) CreateGroup(ctx context.Context, name, description string) (*Group, error) {
	n, err := NormalizeGroupName(name)
	if err != nil {
		return nil, err
	}
	if len(description) > MaxDescriptionLen {
		return nil, fmt.Errorf("a group's description must be at most %d bytes", MaxDescriptionLen)
	}
	if err := visible.Check("a group's description", description); err != nil {
		return nil, err
	}
	now := time.UnixMilli(s.db.NowMillis())
	if _, err := s.db.Exec(ctx, s.db, `INSERT INTO nsauth_groups (name, description, created_at) VALUES (?, ?, ?)`,
		n, description, now.UnixMilli()); err != nil {
		if s.db.Dialect.IsUnique(err) {
			return nil, fmt.Errorf("group %q: %w", n, core.ErrConflict)
		}
		return nil, fmt.Errorf("creating a group: %w", err)
	}
	return &Group{Name: n, Description: description, CreatedAt: now}, nil
}

const groupQuery = `SELECT g.name, g.description, g.created_at,
	(SELECT COUNT(*) FROM nsauth_group_members m WHERE m.group_name = g.name) FROM nsauth_groups g`

func scanGroup(row core.Scanner) (*Group, error) {
	var g Group
	var created int64
	if err := row.Scan(&g.Name, &g.Description, &created, &g.Members); err != nil {
		return nil, err
	}
	g.CreatedAt = time.UnixMilli(created)
	return &g, nil
}

// ListGroups returns every group, by name.
func (s *GroupStore) ListGroups(ctx context.Context) ([]Group, error) {
	return core.QueryAll(ctx, s.db, "listing groups", scanGroup, groupQuery+` ORDER BY g.name`)
}

// GroupByName returns a group, or [core.ErrNotFound].
func (s *GroupStore) GroupByName(ctx context.Context, name string) (*Group, error) {
	n, err := NormalizeGroupName(name)
	if err != nil {
		return nil, fmt.Errorf("group: %w", core.ErrNotFound)
	}
	g, err := scanGroup(s.db.QueryRow(ctx, s.db, groupQuery+` WHERE g.name = ?`, n))
	if err != nil {
		return nil, core.NotFound(err, fmt.Sprintf("group %q", n))
	}
	return g, nil
}

// DeleteGroup deletes a group and its memberships, or fails with
// [core.ErrNotFound].
func (s *GroupStore) DeleteGroup(ctx context.Context, name string) error {
	n, err := NormalizeGroupName(name)
	if err != nil {
		return fmt.Errorf("group: %w", core.ErrNotFound)
	}
	// The memberships go by cascade; deleting them first does not rely on
	// the connection enforcing foreign keys.
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.db.Exec(ctx, tx, `DELETE FROM nsauth_group_members WHERE group_name = ?`, n); err != nil {
			return fmt.Errorf("deleting a group's members: %w", err)
		}
		res, err := s.db.Exec(ctx, tx, `DELETE FROM nsauth_groups WHERE name = ?`, n)
		if err != nil {
			return fmt.Errorf("deleting a group: %w", err)
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return fmt.Errorf("group %q: %w", n, core.ErrNotFound)
		}
		return nil
	})
}

// SetUserGroups adds the user to the groups add and removes it from the
// groups remove, at once, and returns the user's groups after (sorted).
// Every group named must exist: otherwise nothing changes and the error
// wraps [core.ErrNotFound] and names the first missing group (or the
// user, when there is no such user). Adding a membership the user has, or
// removing one it lacks, is not an error; naming one group in both lists
// is.
func (s *GroupStore) SetUserGroups(ctx context.Context, userID string, add, remove []string) ([]string, error) {
	addN, err := normalizeAll(add)
	if err != nil {
		return nil, err
	}
	removeN, err := normalizeAll(remove)
	if err != nil {
		return nil, err
	}
	for _, g := range addN {
		if slices.Contains(removeN, g) {
			return nil, fmt.Errorf("group %q is both added and removed", g)
		}
	}
	var out []string
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var id string
		if err := s.db.QueryRow(ctx, tx, `SELECT id FROM nsauth_users WHERE id = ?`+s.db.Dialect.ShareRows, userID).Scan(&id); err != nil {
			return core.NotFound(err, "user")
		}
		for _, g := range slices.Concat(addN, removeN) {
			var name string
			if err := s.db.QueryRow(ctx, tx, `SELECT name FROM nsauth_groups WHERE name = ?`+s.db.Dialect.ShareRows, g).Scan(&name); err != nil {
				return core.NotFound(err, fmt.Sprintf("group %q", g))
			}
		}
		now := s.db.NowMillis()
		for _, g := range addN {
			if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_group_members (group_name, user_id, created_at) VALUES (?, ?, ?)
				ON CONFLICT (group_name, user_id) DO NOTHING`, g, userID, now); err != nil {
				return fmt.Errorf("adding a group member: %w", err)
			}
		}
		for _, g := range removeN {
			if _, err := s.db.Exec(ctx, tx, `DELETE FROM nsauth_group_members WHERE group_name = ? AND user_id = ?`, g, userID); err != nil {
				return fmt.Errorf("removing a group member: %w", err)
			}
		}
		var err error
		out, err = localUserGroups(ctx, s.db, tx, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// normalizeAll normalises names, sorted and without duplicates.
func normalizeAll(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, name := range names {
		n, err := NormalizeGroupName(name)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// LocalUserGroups returns the names of the groups nsauth keeps that the
// user is in, sorted; nil when none. Connector groups are not among them
// (store.Store's UserGroups is the union of both).
func (s *GroupStore) LocalUserGroups(ctx context.Context, userID string) ([]string, error) {
	return localUserGroups(ctx, s.db, s.db, userID)
}

func localUserGroups(ctx context.Context, db *core.DB, q core.Querier, userID string) ([]string, error) {
	rows, err := db.Query(ctx, q, `SELECT group_name FROM nsauth_group_members WHERE user_id = ? ORDER BY group_name`, userID)
	if err != nil {
		return nil, fmt.Errorf("reading a user's groups: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, fmt.Errorf("reading a user's groups: %w", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading a user's groups: %w", err)
	}
	return out, nil
}

// LocalGroupsOf is [GroupStore.LocalUserGroups] of each of userIDs (at
// most [core.MaxInArgs]) in one query. A user in no group is absent.
func (s *GroupStore) LocalGroupsOf(ctx context.Context, userIDs []string) (map[string][]string, error) {
	out := make(map[string][]string)
	if len(userIDs) == 0 {
		return out, nil
	}
	in, args := core.InArgs(userIDs)
	members, err := core.QueryAll(ctx, s.db, "reading users' groups", func(row core.Scanner) (*[2]string, error) {
		var m [2]string
		return &m, row.Scan(&m[0], &m[1])
	}, `SELECT user_id, group_name FROM nsauth_group_members WHERE user_id IN (`+in+`) ORDER BY user_id, group_name`, args...)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		out[m[0]] = append(out[m[0]], m[1])
	}
	return out, nil
}

// InGroup reports whether the user is in the group nsauth keeps under
// that name (false for a connector group or a name that is not one).
func (s *GroupStore) InGroup(ctx context.Context, userID, group string) (bool, error) {
	n, err := NormalizeGroupName(group)
	if err != nil {
		return false, nil
	}
	var one int
	err = s.db.QueryRow(ctx, s.db, `SELECT 1 FROM nsauth_group_members WHERE group_name = ? AND user_id = ?`, n, userID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading a group membership: %w", err)
	}
	return true, nil
}
