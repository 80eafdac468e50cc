package store

// Rotation grace: a client that refreshed, but lost the answer (the
// connection dropped after the server rotated), retries with the token it
// still holds. Without grace that retry is reuse, and reuse revokes the
// family: the user is logged out for a network blip.
//
// Ory Hydra (oauth2.refresh_token_rotation.grace_period) and Auth0 (the
// rotation's reuse interval, or leeway) both let the rotated token be used
// again for a while, and both answer each use with a new refresh token: the
// family branches, every branch stays alive, and breach detection is off
// for the window (Hydra bounds the window to 5 minutes unless the number of
// reuses is also bounded; Auth0 accepts only the previous token). We follow
// the narrower answer FusionAuth and Cognito give instead: a retry gets the
// same successor the first answer carried, so the family never branches;
// only the client the family belongs to gets it; and only while that
// successor has not been used (and was not revoked). Once the successor is
// used the client evidently got the answer, so the old token is plain
// reuse again and revokes the family as before. A thief holding the old
// token can thus obtain nothing the legitimate client does not already
// hold, and as soon as the two diverge, reuse detection fires.
//
// Answering with the same successor means keeping its value, and tokens are
// never stored in clear: the rotated token's row holds the successor's
// value sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the
// rotated token's value, which the database holds only as a digest. Only
// whoever presents the rotated token can open it. The sealed value is
// dropped when the successor is rotated in turn, and by
// [Store.DropExpiredGrace] once the window has passed.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Grace configures the rotation grace of one refresh: whether a token
// already rotated may be presented again and answered with its successor.
// The zero Grace disables it: every reuse revokes the family.
type Grace struct {
	// Window is how long after a rotation the rotated token may be
	// presented again. Zero or negative disables grace.
	Window time.Duration
	// ClientID is the authenticated client presenting the token. A rotated
	// token presented by any client but the family's revokes the family.
	ClientID string
}

// Rotation is one use of a refresh token.
type Rotation struct {
	// OldID is the presented token's id.
	OldID string
	// OldValue is the presented token's value: the key to the successor it
	// keeps sealed. Required when Grace is enabled.
	OldValue string
	// NewValue is the successor's value.
	NewValue string
	// Scopes, when not nil, narrow the successor's grant.
	Scopes []string
	// ExpiresAt is the successor's expiry.
	ExpiresAt time.Time
	// Grace allows a retry of a rotation whose answer was lost.
	Grace Grace
}

// Rotated is the refresh token a rotation answers with.
type Rotated struct {
	ID    string
	Value string
	// Retried is true when the presented token had already been rotated
	// and this is its successor, handed out again within the grace window.
	Retried bool
}

// RefreshTokenByValueWithGrace is [Store.RefreshTokenByValue] for a token
// presented to be rotated under grace g: a token already rotated within
// g.Window, presented by its own client, is returned (its UsedAt set)
// instead of revoking its family. Whether it is answered with its
// successor is then decided by [Store.RotateRefreshTokenWithGrace], which
// checks the successor and revokes the family when the rotation cannot be
// a retry.
func (s *Store) RefreshTokenByValueWithGrace(ctx context.Context, value string, g Grace) (*RefreshToken, error) {
	t, err := scanRefresh(s.queryRow(ctx, s.db, `SELECT `+refreshColumns+` FROM nsauth_refresh_tokens WHERE token_hash = ?`, HashSecret(value)))
	if err != nil {
		return nil, notFound(err, "refresh token")
	}
	if !t.UsedAt.IsZero() && t.RevokedAt.IsZero() && g.allows(t.ClientID, t.UsedAt, s.now()) {
		return t, nil
	}
	if err := s.checkRefresh(ctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// allows reports whether a token of clientID rotated at rotatedAt may be
// presented again at now.
func (g Grace) allows(clientID string, rotatedAt, now time.Time) bool {
	return g.Window > 0 && g.ClientID != "" && g.ClientID == clientID && now.Before(rotatedAt.Add(g.Window))
}

// retryRotation answers a rotation of r.OldID that found the token
// already used: when that use is within r.Grace of now, by the family's
// client, and its successor is neither used, revoked nor expired, it opens
// and returns the successor. Otherwise it drops the token's sealed
// successor and returns the zero Rotated, and the caller revokes the
// family. It runs in the rotation's transaction; the successor's row is
// locked, so a concurrent rotation of the successor either happened before
// (and the retry is refused) or waits until this transaction ends.
func (s *Store) retryRotation(ctx context.Context, tx *sql.Tx, r Rotation) (Rotated, error) {
	if r.Grace.Window <= 0 || r.OldValue == "" {
		return Rotated{}, nil
	}
	var (
		clientID      string
		used, revoked sql.NullInt64
		successorID   sql.NullString
		sealed        []byte
	)
	err := s.queryRow(ctx, tx, `SELECT client_id, used_at, revoked_at, successor_id, successor_sealed FROM nsauth_refresh_tokens WHERE id = ?`, r.OldID).
		Scan(&clientID, &used, &revoked, &successorID, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return Rotated{}, nil
	}
	if err != nil {
		return Rotated{}, fmt.Errorf("reading the rotated refresh token: %w", err)
	}
	if !used.Valid || revoked.Valid || !successorID.Valid || sealed == nil || !r.Grace.allows(clientID, fromMillis(used), s.now()) {
		return Rotated{}, s.dropStash(ctx, tx, r.OldID)
	}
	var (
		hash                  []byte
		expires               int64
		succUsed, succRevoked sql.NullInt64
	)
	err = s.queryRow(ctx, tx, `SELECT token_hash, expires_at, used_at, revoked_at FROM nsauth_refresh_tokens WHERE id = ?`+s.d.lockRows, successorID.String).
		Scan(&hash, &expires, &succUsed, &succRevoked)
	if errors.Is(err, sql.ErrNoRows) {
		return Rotated{}, s.dropStash(ctx, tx, r.OldID)
	}
	if err != nil {
		return Rotated{}, fmt.Errorf("reading the successor refresh token: %w", err)
	}
	if succUsed.Valid || succRevoked.Valid || s.nowMillis() >= expires {
		return Rotated{}, s.dropStash(ctx, tx, r.OldID)
	}
	value, err := openSuccessor(r.OldValue, successorID.String, sealed)
	if err != nil || subtle.ConstantTimeCompare(HashSecret(value), hash) != 1 {
		// Not the key this stash was sealed with: the presented value is
		// not the rotated token's, so this is no retry.
		return Rotated{}, s.dropStash(ctx, tx, r.OldID)
	}
	return Rotated{ID: successorID.String, Value: value, Retried: true}, nil
}

func (s *Store) dropStash(ctx context.Context, q querier, id string) error {
	if _, err := s.exec(ctx, q, `UPDATE nsauth_refresh_tokens SET successor_sealed = NULL WHERE id = ? AND successor_sealed IS NOT NULL`, id); err != nil {
		return fmt.Errorf("dropping a sealed refresh token: %w", err)
	}
	return nil
}

// dropPredecessorStash drops the sealed successor of the token rotated
// into usedID, now that usedID is used: its holder evidently got the
// answer, and no retry of the older rotation is allowed any more.
func (s *Store) dropPredecessorStash(ctx context.Context, tx *sql.Tx, family, usedID string) error {
	if _, err := s.exec(ctx, tx, `UPDATE nsauth_refresh_tokens SET successor_sealed = NULL
		WHERE family_id = ? AND successor_id = ? AND successor_sealed IS NOT NULL`, family, usedID); err != nil {
		return fmt.Errorf("dropping a sealed refresh token: %w", err)
	}
	return nil
}

// DropExpiredGrace drops every sealed successor whose grace window has
// passed (rotated window ago or earlier; with a window of zero, all of
// them) or whose family was revoked, and returns how many it dropped.
// Run it periodically, with the window rotations use.
func (s *Store) DropExpiredGrace(ctx context.Context, window time.Duration) (int64, error) {
	res, err := s.exec(ctx, s.db, `UPDATE nsauth_refresh_tokens SET successor_sealed = NULL
		WHERE successor_sealed IS NOT NULL AND (used_at <= ? OR revoked_at IS NOT NULL)`, s.now().Add(-max(window, 0)).UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("dropping expired sealed refresh tokens: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// graceKeyInfo separates the grace key from anything else ever derived
// from a refresh token.
const graceKeyInfo = "nsauth refresh rotation grace v1"

// graceAEAD is AES-256-GCM under a key derived from a refresh token's
// value. Refresh tokens are 256 random bits, so the key is as strong as
// the token, and each key seals one value only.
func graceAEAD(oldValue string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(oldValue), nil, graceKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the grace key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("preparing the grace cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// sealSuccessor seals r's successor value, bound to its id, under r's old
// value; nil (stored as NULL) when r's grace is disabled.
func sealSuccessor(r Rotation, successorID string) (any, error) {
	if r.Grace.Window <= 0 || r.OldValue == "" {
		return nil, nil
	}
	aead, err := graceAEAD(r.OldValue)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, []byte(r.NewValue), []byte(successorID)), nil
}

func openSuccessor(oldValue, successorID string, sealed []byte) (string, error) {
	aead, err := graceAEAD(oldValue)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed refresh token too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(successorID))
	if err != nil {
		return "", errors.New("sealed refresh token does not open")
	}
	return string(plain), nil
}
