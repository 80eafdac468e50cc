package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Revocation is an access token revoked before its expiry: a server that
// verifies access tokens itself (JWTs) must refuse TokenID, the token's
// `jti`, until ExpiresAt.
type Revocation struct {
	TokenID   string
	ExpiresAt time.Time

	seq int64 // its row, when read from nsauth_revocations
}

// revocationBatch bounds the rows of one INSERT into nsauth_revocations
// and the entries of one PostgreSQL notification (whose payload must stay
// under 8000 bytes: an entry is about 40).
const revocationBatch = 150

// revokeAccessTokens is the one place where access tokens are revoked:
// every token matching where (a condition on nsauth_access_tokens, with
// args) that is not revoked yet is marked revoked, and those not yet
// expired are recorded in nsauth_revocations and published: on
// PostgreSQL by a notification that replicas receive when the transaction
// commits, and to this process's followers (see [Store.FollowRevocations])
// after the commit. It returns how many tokens it marked. Given the
// database rather than a transaction, it runs in one of its own.
func (s *Store) revokeAccessTokens(ctx context.Context, q querier, now int64, where string, args ...any) (int64, error) {
	tx, ok := q.(*sql.Tx)
	if !ok {
		var n int64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var err error
			n, err = s.revokeAccessTokens(ctx, tx, now, where, args...)
			return err
		})
		return n, err
	}
	rows, err := s.query(ctx, tx, `UPDATE nsauth_access_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND (`+where+`)
		RETURNING id, expires_at`, append([]any{now}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("revoking access tokens: %w", err)
	}
	var n int64
	var live []Revocation
	for rows.Next() {
		var id string
		var exp int64
		if err := rows.Scan(&id, &exp); err != nil {
			rows.Close()
			return 0, fmt.Errorf("revoking access tokens: %w", err)
		}
		n++
		if exp > now {
			live = append(live, Revocation{TokenID: id, ExpiresAt: time.UnixMilli(exp)})
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("revoking access tokens: %w", err)
	}
	for batch := range slices.Chunk(live, revocationBatch) {
		if err := s.recordRevocations(ctx, tx, now, batch); err != nil {
			return 0, err
		}
	}
	s.hooks.hold(tx, live)
	return n, nil
}

// recordRevocations inserts one batch and, on PostgreSQL, notifies it.
func (s *Store) recordRevocations(ctx context.Context, tx *sql.Tx, now int64, batch []Revocation) error {
	var b strings.Builder
	b.WriteString(`INSERT INTO nsauth_revocations (token_id, expires_at, revoked_at) VALUES `)
	args := make([]any, 0, 3*len(batch))
	for i, r := range batch {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?)")
		args = append(args, r.TokenID, r.ExpiresAt.UnixMilli(), now)
	}
	if _, err := s.exec(ctx, tx, b.String(), args...); err != nil {
		return fmt.Errorf("recording revocations: %w", err)
	}
	if s.d.name != "postgres" {
		return nil
	}
	if _, err := s.exec(ctx, tx, `SELECT pg_notify(?, ?)`, s.channel, encodeRevocations(batch)); err != nil {
		return fmt.Errorf("notifying revocations: %w", err)
	}
	return nil
}

// encodeRevocations writes a notification payload: one "id expiry-ms"
// line per revocation. Token ids are base64url, so never hold a space or a
// newline.
func encodeRevocations(rs []Revocation) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.TokenID)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(r.ExpiresAt.UnixMilli(), 10))
		b.WriteByte('\n')
	}
	return b.String()
}

// decodeRevocations reads what encodeRevocations wrote.
func decodeRevocations(payload string) ([]Revocation, error) {
	var out []Revocation
	for line := range strings.Lines(payload) {
		id, exp, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		ms, err := strconv.ParseInt(exp, 10, 64)
		if !ok || id == "" || err != nil {
			return nil, fmt.Errorf("malformed revocation notification")
		}
		out = append(out, Revocation{TokenID: id, ExpiresAt: time.UnixMilli(ms)})
	}
	return out, nil
}

// revocationChannel is the PostgreSQL notification channel of the
// installation in schema: notifications are database-wide, and several
// installations may share a database in schemas of their own.
func revocationChannel(schema string) string {
	sum := sha256.Sum256([]byte(schema))
	return "nsauth_revocations_" + hex.EncodeToString(sum[:8])
}

// revocationHooks holds what open transactions revoked, to publish to this
// process's followers once they commit (and drop if they roll back), and
// the followers.
type revocationHooks struct {
	mu        sync.Mutex
	pending   map[*sql.Tx][]Revocation
	followers []func([]Revocation)
}

func (h *revocationHooks) hold(tx *sql.Tx, rs []Revocation) {
	if len(rs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending == nil {
		h.pending = make(map[*sql.Tx][]Revocation)
	}
	h.pending[tx] = append(h.pending[tx], rs...)
}

// finish publishes tx's revocations when it committed, and forgets them.
func (h *revocationHooks) finish(tx *sql.Tx, committed bool) {
	h.mu.Lock()
	rs, ok := h.pending[tx]
	delete(h.pending, tx)
	followers := h.followers
	h.mu.Unlock()
	if !ok || !committed {
		return
	}
	for _, f := range followers {
		f(rs)
	}
}

func (h *revocationHooks) follow(f func([]Revocation)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.followers = append(h.followers, f)
}

// LiveRevocations returns every revocation whose token has not expired.
func (s *Store) LiveRevocations(ctx context.Context) ([]Revocation, error) {
	return s.readRevocations(ctx, `SELECT seq, token_id, expires_at FROM nsauth_revocations WHERE expires_at > ?`, s.nowMillis())
}

// revocationsAfter returns the revocations recorded after seq and the
// highest seq among them (seq when there are none). Only on SQLite do
// rows become visible in seq order, writers being serialised; on
// PostgreSQL a later seq may commit first.
func (s *Store) revocationsAfter(ctx context.Context, seq int64) ([]Revocation, int64, error) {
	var last int64
	rs, err := s.readRevocations(ctx, `SELECT seq, token_id, expires_at FROM nsauth_revocations WHERE seq > ? ORDER BY seq`, seq)
	if err != nil {
		return nil, seq, err
	}
	last = seq
	for _, r := range rs {
		last = max(last, r.seq)
	}
	return rs, last, nil
}

// lastRevocationSeq returns the highest seq recorded, 0 when none.
func (s *Store) lastRevocationSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.queryRow(ctx, s.db, `SELECT COALESCE(MAX(seq), 0) FROM nsauth_revocations`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("reading revocations: %w", err)
	}
	return seq, nil
}

func (s *Store) readRevocations(ctx context.Context, query string, arg int64) ([]Revocation, error) {
	rows, err := s.query(ctx, s.db, query, arg)
	if err != nil {
		return nil, fmt.Errorf("reading revocations: %w", err)
	}
	defer rows.Close()
	var out []Revocation
	for rows.Next() {
		var r Revocation
		var exp int64
		if err := rows.Scan(&r.seq, &r.TokenID, &exp); err != nil {
			return nil, fmt.Errorf("reading revocations: %w", err)
		}
		r.ExpiresAt = time.UnixMilli(exp)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading revocations: %w", err)
	}
	return out, nil
}
