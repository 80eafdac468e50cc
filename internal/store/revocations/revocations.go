// Package revocations is the one place where tokens are revoked, and
// where the revocations of access tokens are read and followed: a server
// that verifies access tokens itself must refuse them until they expire.
package revocations

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/store/internal/core"
)

// Revocation is an access token revoked before its expiry: a server that
// verifies access tokens itself (JWTs) must refuse TokenID, the token's
// `jti`, until ExpiresAt.
type Revocation struct {
	TokenID   string
	ExpiresAt time.Time

	seq int64 // its row, when read from nsauth_revocations
}

// Retention is how long a revocation is kept, and read, after its
// token's expiry: a verifier accepts an expired token for its clock skew
// (NSAUTH_CLOCK_SKEW, at most config.MaxClockSkew), and must refuse a
// revoked one all that time, from its set or, when the set is full, from
// the store.
const Retention = config.MaxClockSkew

// revocationBatch bounds the rows of one INSERT into nsauth_revocations
// and the entries of one PostgreSQL notification (whose payload must stay
// under 8000 bytes: an entry is about 40).
const revocationBatch = 150

// Which selects the access tokens a revocation applies to.
type Which struct {
	where string
	args  []any
}

// ByID selects one access token.
func ByID(id string) Which { return Which{`id = ?`, []any{id}} }

// OfGrant selects the access tokens of one grant.
func OfGrant(grantID string) Which { return Which{`grant_id = ?`, []any{grantID}} }

// OfUsersGrant selects the access tokens of one grant when it is userID's
// at clientID.
func OfUsersGrant(grantID, userID, clientID string) Which {
	return Which{`grant_id = ? AND user_id = ? AND client_id = ?`, []any{grantID, userID, clientID}}
}

// OfClientsGrant selects the access tokens of one grant (such as a
// federation policy's) issued to clientID.
func OfClientsGrant(grantID, clientID string) Which {
	return Which{`grant_id = ? AND client_id = ?`, []any{grantID, clientID}}
}

// OfUser selects every access token of a user.
func OfUser(userID string) Which { return Which{`user_id = ?`, []any{userID}} }

// OfUserExceptGrants selects every access token of a user but those of
// the grants keep.
func OfUserExceptGrants(userID string, keep []string) Which {
	if len(keep) == 0 {
		return OfUser(userID)
	}
	args := []any{userID}
	for _, g := range keep {
		args = append(args, g)
	}
	return Which{`user_id = ? AND grant_id NOT IN (?` + strings.Repeat(", ?", len(keep)-1) + `)`, args}
}

// OfClient selects every access token issued to a client.
func OfClient(clientID string) Which { return Which{`client_id = ?`, []any{clientID}} }

// Revoker is the one place where tokens are revoked, for the sub-stores
// whose changes revoke tokens (a user disabled, a client deleted, a code
// replayed). It shares its followers with the [RevocationStore] made
// with it.
type Revoker struct {
	db      *core.DB
	channel string
	hooks   *hooks
}

// New returns the revocations of db: the store that reads and follows
// them, and the revoker that records them. channel is the PostgreSQL
// notification channel of the installation (see [Channel]); "" on SQLite.
func New(db *core.DB, channel string) (*RevocationStore, *Revoker) {
	h := &hooks{}
	return &RevocationStore{db: db, channel: channel, hooks: h}, &Revoker{db: db, channel: channel, hooks: h}
}

// RevocationStore reads the revocations of access tokens, and follows
// them as they are made.
type RevocationStore struct {
	db *core.DB
	// channel is the PostgreSQL notification channel of revocations.
	channel string
	hooks   *hooks
}

// AccessTokens is the one place where access tokens are revoked: every
// token w selects that is not revoked yet is marked revoked, and those
// live (not expired, or not for longer than [Retention]) are recorded in
// nsauth_revocations and published: on
// PostgreSQL by a notification that replicas receive when the transaction
// commits, and to this process's followers (see
// [RevocationStore.FollowRevocations]) after the commit. It returns how
// many tokens it marked. Given the database rather than a transaction, it
// runs in one of its own.
func (r *Revoker) AccessTokens(ctx context.Context, q core.Querier, now int64, w Which) (int64, error) {
	tx, ok := q.(*sql.Tx)
	if !ok {
		var n int64
		err := r.db.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			n, err = r.AccessTokens(ctx, tx, now, w)
			return err
		})
		return n, err
	}
	rows, err := r.db.Query(ctx, tx, `UPDATE nsauth_access_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND (`+w.where+`)
		RETURNING id, expires_at`, append([]any{now}, w.args...)...)
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
		if exp > now-Retention.Milliseconds() {
			live = append(live, Revocation{TokenID: id, ExpiresAt: time.UnixMilli(exp)})
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("revoking access tokens: %w", err)
	}
	for batch := range slices.Chunk(live, revocationBatch) {
		if err := r.record(ctx, tx, now, batch); err != nil {
			return 0, err
		}
	}
	r.hooks.hold(r.db, tx, live)
	return n, nil
}

// Grant revokes every refresh and access token of one grant (the tokens
// descended from one authorization code), under the family's lock.
func (r *Revoker) Grant(ctx context.Context, tx *sql.Tx, grantID string) error {
	if err := r.LockFamily(ctx, tx, grantID); err != nil {
		return err
	}
	now := r.db.NowMillis()
	if _, err := r.db.Exec(ctx, tx, `UPDATE nsauth_refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL`, now, grantID); err != nil {
		return fmt.Errorf("revoking refresh tokens: %w", err)
	}
	_, err := r.AccessTokens(ctx, tx, now, OfGrant(grantID))
	return err
}

// LockFamily serialises the transactions that write the refresh tokens of
// family: a rotation, a retry, a reuse or a revocation. Each of them may
// lock several of the family's rows (the presented token, its successor,
// its predecessor's stash, all of them), in an order no one statement
// fixes; taking the family's lock first means two of them never each
// hold a row the other waits for. It holds until the transaction ends.
func (r *Revoker) LockFamily(ctx context.Context, tx *sql.Tx, family string) error {
	if r.db.Dialect.LockName == "" {
		return nil
	}
	if _, err := r.db.Exec(ctx, tx, r.db.Dialect.LockName, "nsauth_refresh_family:"+family); err != nil {
		return fmt.Errorf("locking a refresh token family: %w", err)
	}
	return nil
}

// UserTokens revokes every refresh and access token a user holds.
func (r *Revoker) UserTokens(ctx context.Context, q core.Querier, userID string) error {
	now := r.db.NowMillis()
	if _, err := r.db.Exec(ctx, q, `UPDATE nsauth_refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`, now, userID); err != nil {
		return fmt.Errorf("revoking refresh tokens: %w", err)
	}
	_, err := r.AccessTokens(ctx, q, now, OfUser(userID))
	return err
}

// UserTokensExcept revokes every refresh and access token a user holds
// but those of the grants keep (the grants of the browser session a
// password was changed in, say).
func (r *Revoker) UserTokensExcept(ctx context.Context, q core.Querier, userID string, keep []string) error {
	if len(keep) == 0 {
		return r.UserTokens(ctx, q, userID)
	}
	now := r.db.NowMillis()
	args := []any{now, userID}
	for _, g := range keep {
		args = append(args, g)
	}
	if _, err := r.db.Exec(ctx, q, `UPDATE nsauth_refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL
		AND family_id NOT IN (?`+strings.Repeat(", ?", len(keep)-1)+`)`, args...); err != nil {
		return fmt.Errorf("revoking refresh tokens: %w", err)
	}
	_, err := r.AccessTokens(ctx, q, now, OfUserExceptGrants(userID, keep))
	return err
}

// ClientTokens revokes every refresh and access token issued to a client.
func (r *Revoker) ClientTokens(ctx context.Context, q core.Querier, clientID string) error {
	now := r.db.NowMillis()
	if _, err := r.db.Exec(ctx, q, `UPDATE nsauth_refresh_tokens SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL`, now, clientID); err != nil {
		return fmt.Errorf("revoking refresh tokens: %w", err)
	}
	_, err := r.AccessTokens(ctx, q, now, OfClient(clientID))
	return err
}

// recordRevocations inserts one batch and, on PostgreSQL, notifies it.
func (r *Revoker) record(ctx context.Context, tx *sql.Tx, now int64, batch []Revocation) error {
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
	if _, err := r.db.Exec(ctx, tx, b.String(), args...); err != nil {
		return fmt.Errorf("recording revocations: %w", err)
	}
	if r.db.Dialect.Name != "postgres" {
		return nil
	}
	if _, err := r.db.Exec(ctx, tx, `SELECT pg_notify(?, ?)`, r.channel, encodeRevocations(batch)); err != nil {
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

// Channel is the PostgreSQL notification channel of the
// installation in schema: notifications are database-wide, and several
// installations may share a database in schemas of their own.
func Channel(schema string) string {
	sum := sha256.Sum256([]byte(schema))
	return "nsauth_revocations_" + hex.EncodeToString(sum[:8])
}

// hooks holds what open transactions revoked, to publish to this
// process's followers once they commit (and drop if they roll back), and
// the followers.
type hooks struct {
	mu        sync.Mutex
	pending   map[*sql.Tx][]Revocation
	followers []func([]Revocation)
}

// hold keeps rs until tx, a transaction of db.InTx, ends.
func (h *hooks) hold(db *core.DB, tx *sql.Tx, rs []Revocation) {
	if len(rs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending == nil {
		h.pending = make(map[*sql.Tx][]Revocation)
	}
	if _, ok := h.pending[tx]; !ok {
		db.AfterTx(tx, func(committed bool) { h.finish(tx, committed) })
	}
	h.pending[tx] = append(h.pending[tx], rs...)
}

// finish publishes tx's revocations when it committed, and forgets them.
func (h *hooks) finish(tx *sql.Tx, committed bool) {
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

func (h *hooks) follow(f func([]Revocation)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.followers = append(h.followers, f)
}

// liveAfter is the expiry (Unix ms) after which a revocation is live:
// its token has not expired, or not for longer than [Retention].
func (s *RevocationStore) liveAfter() int64 { return s.db.NowMillis() - Retention.Milliseconds() }

// LiveRevocations returns every live revocation: whose token has not
// expired, or not for longer than [Retention].
// With many of them, [RevocationStore.EachLiveRevocation] takes less
// memory.
func (s *RevocationStore) LiveRevocations(ctx context.Context) ([]Revocation, error) {
	var out []Revocation
	err := s.EachLiveRevocation(ctx, func(rs []Revocation) { out = append(out, rs...) })
	return out, err
}

// readBatch is how many rows a read hands over at a time: a million live
// revocations are read without holding them all (about 100 bytes each)
// at once.
const readBatch = 1000

// EachLiveRevocation calls apply with every live revocation, a batch at a time, as they are read; the slice is apply's to
// keep. On error, apply may have seen some of them.
func (s *RevocationStore) EachLiveRevocation(ctx context.Context, apply func([]Revocation)) error {
	return s.readRevocations(ctx, apply, `SELECT seq, token_id, expires_at FROM nsauth_revocations WHERE expires_at > ?`, s.liveAfter())
}

// CountLiveRevocations returns how many revocations are live: how
// big a set that holds them all must be. It counts the entries of the
// expires_at index.
func (s *RevocationStore) CountLiveRevocations(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRow(ctx, s.db, `SELECT COUNT(*) FROM nsauth_revocations WHERE expires_at > ?`, s.liveAfter()).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting revocations: %w", err)
	}
	return n, nil
}

// IsAccessTokenRevoked reports whether the access token with this id (a
// token's `jti`) was revoked before it expired: whether
// nsauth_revocations, which every follower's set mirrors, holds it. The
// row outlives the token's own record (deleted with its user or client),
// and goes once the token has expired; the answer for an expired token
// does not matter. One probe of the token_id index.
func (s *RevocationStore) IsAccessTokenRevoked(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.db.QueryRow(ctx, s.db, `SELECT 1 FROM nsauth_revocations WHERE token_id = ? LIMIT 1`, id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("looking up a revocation: %w", err)
	}
	return true, nil
}

// RevocationsAfter is a SQLite follower's poll: it calls apply with the
// revocations recorded after seq and returns the highest seq among them
// (seq when there are none); one range of the primary key. Only on SQLite
// do rows become visible in seq order, writers being serialised; on
// PostgreSQL a later seq may commit first (see
// [RevocationStore.RevokedSince]).
func (s *RevocationStore) RevocationsAfter(ctx context.Context, seq int64, apply func([]Revocation)) (int64, error) {
	last := seq
	err := s.readRevocations(ctx, func(rs []Revocation) {
		for _, r := range rs {
			last = max(last, r.seq)
		}
		apply(rs)
	}, `SELECT seq, token_id, expires_at FROM nsauth_revocations WHERE seq > ? ORDER BY seq`, seq)
	if err != nil {
		return seq, err
	}
	return last, nil
}

// RevokedSince is a PostgreSQL follower's periodic read: it calls apply
// with the live revocations whose revoked_at is at or after since (Unix
// milliseconds), a range of the revoked_at index.
func (s *RevocationStore) RevokedSince(ctx context.Context, since int64, apply func([]Revocation)) error {
	return s.readRevocations(ctx, apply, `SELECT seq, token_id, expires_at FROM nsauth_revocations WHERE revoked_at >= ? AND expires_at > ?`,
		since, s.liveAfter())
}

// lastRevocationSeq returns the highest seq recorded, 0 when none.
func (s *RevocationStore) lastRevocationSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.db.QueryRow(ctx, s.db, `SELECT COALESCE(MAX(seq), 0) FROM nsauth_revocations`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("reading revocations: %w", err)
	}
	return seq, nil
}

// readRevocations runs query and calls apply with its rows, readBatch at
// a time; apply is not called with an empty batch.
func (s *RevocationStore) readRevocations(ctx context.Context, apply func([]Revocation), query string, args ...any) error {
	rows, err := s.db.Query(ctx, s.db, query, args...)
	if err != nil {
		return fmt.Errorf("reading revocations: %w", err)
	}
	defer rows.Close()
	batch := make([]Revocation, 0, readBatch)
	for rows.Next() {
		var r Revocation
		var exp int64
		if err := rows.Scan(&r.seq, &r.TokenID, &exp); err != nil {
			return fmt.Errorf("reading revocations: %w", err)
		}
		r.ExpiresAt = time.UnixMilli(exp)
		if batch = append(batch, r); len(batch) == readBatch {
			apply(batch)
			batch = make([]Revocation, 0, readBatch)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading revocations: %w", err)
	}
	if len(batch) > 0 {
		apply(batch)
	}
	return nil
}
