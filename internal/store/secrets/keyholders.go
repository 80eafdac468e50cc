package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
)

// KeyHolder is a process that opens and seals secrets with keys of its
// own: a running server. Each publishes which keys it holds, and renews
// the record while it runs, so that a rotation can refuse to switch to a
// key some running server lacks (see [SecretStore.ResealSecrets]). The record
// names keys by id only.
//
// The records are instance values named keyHolderPrefix + ID rather than
// a table of their own: a database stays readable by the version before,
// so servers of both can share it during an upgrade.
type KeyHolder struct {
	// ID tells processes apart: random, made at start.
	ID string `json:"-"`
	// Host and PID say where the process runs, for people.
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Source says where the process took its keys, for people:
	// "NSAUTH_SECRET_KEY", or "the key file /etc/nsauth/secret.key".
	Source string `json:"source"`
	// KeyFile is the file the process reads its keys from again when it
	// meets a key it lacks; "" when its keys cannot change while it runs.
	KeyFile string `json:"key_file,omitempty"`
	// KeyIDs are the ids of the keys it holds, its newest first.
	KeyIDs []string `json:"key_ids"`
	// Started is when the process started.
	Started time.Time `json:"started"`
	// Seen is when it last published this record; Expires is when the
	// record no longer counts: the process stopped without removing it.
	Seen    time.Time `json:"seen"`
	Expires time.Time `json:"expires"`
}

// Holds reports whether h holds the key with this id.
func (h KeyHolder) Holds(id string) bool {
	for _, k := range h.KeyIDs {
		if k == id {
			return true
		}
	}
	return false
}

// keyHolderPrefix starts the instance values of key holders; the query
// range ends before keyHolderEnd, the next string after every such name.
const (
	keyHolderPrefix = "key_holder:"
	keyHolderEnd    = "key_holder;"
	// maxKeyHolderBytes bounds a record: a host name, a path and a few
	// key ids.
	maxKeyHolderBytes = 8 << 10
)

// PublishKeyHolder records h (as of now), replacing its earlier record.
func (s *SecretStore) PublishKeyHolder(ctx context.Context, h KeyHolder) error {
	if h.ID == "" || len(h.KeyIDs) == 0 || !h.Expires.After(h.Seen) {
		return errors.New("a key holder needs an id, keys and an expiry after it was seen")
	}
	v, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encoding the key holder: %w", err)
	}
	if len(v) > maxKeyHolderBytes {
		return errors.New("the key holder's record is too large")
	}
	if _, err := s.db.Exec(ctx, s.db, `INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, keyHolderPrefix+h.ID, string(v), s.db.NowMillis()); err != nil {
		return fmt.Errorf("publishing the keys this server holds: %w", err)
	}
	return nil
}

// RemoveKeyHolder removes the record of a process that stops.
func (s *SecretStore) RemoveKeyHolder(ctx context.Context, id string) error {
	if _, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_instance_values WHERE name = ?`, keyHolderPrefix+id); err != nil {
		return fmt.Errorf("removing the record of this server's keys: %w", err)
	}
	return nil
}

// KeyHolders returns the processes whose records have not expired, and
// deletes the expired ones.
func (s *SecretStore) KeyHolders(ctx context.Context) ([]KeyHolder, error) {
	live, expired, err := s.readKeyHolders(ctx, s.db)
	if err != nil {
		return nil, err
	}
	for name, v := range expired {
		// Only the record as read: one renewed meanwhile stays.
		if _, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_instance_values WHERE name = ? AND value = ?`, name, v); err != nil {
			return nil, fmt.Errorf("removing expired key holders: %w", err)
		}
	}
	return live, nil
}

// keyHolders returns the live key holders as q sees them.
func (s *SecretStore) keyHolders(ctx context.Context, q core.Querier) ([]KeyHolder, error) {
	live, _, err := s.readKeyHolders(ctx, q)
	return live, err
}

func (s *SecretStore) readKeyHolders(ctx context.Context, q core.Querier) (live []KeyHolder, expired map[string]string, err error) {
	rows, err := s.db.Query(ctx, q, `SELECT name, value FROM nsauth_instance_values WHERE name >= ? AND name < ? ORDER BY name`, keyHolderPrefix, keyHolderEnd)
	if err != nil {
		return nil, nil, fmt.Errorf("reading key holders: %w", err)
	}
	defer rows.Close()
	now := s.db.Now()
	expired = map[string]string{}
	for rows.Next() {
		var name, v string
		if err := rows.Scan(&name, &v); err != nil {
			return nil, nil, fmt.Errorf("reading key holders: %w", err)
		}
		var h KeyHolder
		if err := json.Unmarshal([]byte(v), &h); err != nil || !h.Expires.After(now) {
			expired[name] = v
			continue
		}
		h.ID = name[len(keyHolderPrefix):]
		live = append(live, h)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading key holders: %w", err)
	}
	return live, expired, nil
}
