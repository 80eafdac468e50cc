package tokens

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
// only a retry from where the rotation came from gets it, the client the
// family belongs to from the same address key (clientaddr.Key: an IPv4
// address, an IPv6 /64); and only while that successor has not been used
// (and was not revoked). Once the successor is used the client evidently
// got the answer, so the old token is plain reuse again and revokes the
// family as before.
//
// The address matters because the client is not always the party holding
// the token: the AuthService's RefreshCli presents every caller's refresh
// token as one client (the broker's). With the client alone, whoever
// presented a rotated token second within the window got the successor
// the first had been given (the owner's retry got a thief's, or a thief
// the owner's), and the two shared the session. Bound to the address, a
// presentation from anywhere else inside the window is reuse: it revokes
// the family, whoever came first. What remains is a thief behind the same
// address key (the same NAT, proxy or IPv6 /64); and a client whose
// address changed between the lost answer and its retry loses the grace
// (its retry revokes the family, and it logs in again), which is what
// every reuse cost before the grace existed.
//
// Answering with the same successor means keeping its value, and tokens are
// never stored in clear: the rotated token's row holds the successor's
// value sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the
// rotated token's value, which the database holds only as a digest, and
// bound (as the cipher's additional data) to the successor's id and to the
// presenter of the rotation: its client and address key. Only whoever
// presents the rotated token, as the same client from the same address
// key, can open it; the database keeps nothing else about the presenter,
// so no address can be read from it either. The sealed value is
// dropped when the successor is rotated in turn, and by
// [TokenStore.DropExpiredGrace] once the window has passed.

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
	"net/netip"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store/internal/core"
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
	// From is the key of the address presenting the token
	// (clientaddr.Key of the client address, proxies resolved): a retry
	// must come from the key the rotation came from. The zero Prefix, an
	// address not known, disables grace, since it would match every other
	// presenter whose address is not known.
	From netip.Prefix
}

// enabled reports whether g allows any retry at all.
func (g Grace) enabled() bool {
	return g.Window > 0 && g.ClientID != "" && g.From.IsValid()
}

// presenter is what a sealed successor is bound to besides its id: who
// rotated. The address key and the id have no NUL; the client id comes
// last, so no two presenters read alike.
func (g Grace) presenter(successorID string) []byte {
	return []byte(successorID + "\x00" + g.From.Masked().String() + "\x00" + g.ClientID)
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
	// Access, when not nil, is the access token answered with the
	// successor, recorded (CreatedAt set) in the rotation's transaction:
	// a reuse revoking the family at the same moment then revokes it too,
	// whichever of the two commits first.
	Access *AccessToken
	// Event, when not nil, is told how the rotation ends (a new successor,
	// or a retry's answered again) and returns the audit event of it, if
	// any, which is stored in the rotation's transaction. It is called
	// inside that transaction: it must not block. A rotation refused as a
	// reuse stores none.
	Event func(Rotated) *audit.Event
}

// event is r.Event's event for rot, or none.
func (r Rotation) event(rot Rotated) *audit.Event {
	if r.Event == nil {
		return nil
	}
	return r.Event(rot)
}

// Rotated is the refresh token a rotation answers with.
type Rotated struct {
	ID    string
	Value string
	// Retried is true when the presented token had already been rotated
	// and this is its successor, handed out again within the grace window.
	Retried bool
}

// RefreshTokenByValueWithGrace is [TokenStore.RefreshTokenByValue] for a token
// presented to be rotated under grace g: a token already rotated within
// g.Window, presented by the client and from the address key that rotated
// it, is returned (its UsedAt set) instead of revoking its family. Whether
// it is answered with its successor is then decided by
// [TokenStore.RotateRefreshTokenWithGrace], which checks the successor and
// revokes the family when the rotation cannot be a retry.
func (s *TokenStore) RefreshTokenByValueWithGrace(ctx context.Context, value string, g Grace) (*RefreshToken, error) {
	t, err := scanRefresh(s.db.QueryRow(ctx, s.db, `SELECT `+refreshColumns+` FROM nsauth_refresh_tokens WHERE token_hash = ?`, core.HashSecret(value)))
	if err != nil {
		return nil, core.NotFound(err, "refresh token")
	}
	if !t.UsedAt.IsZero() && t.RevokedAt.IsZero() && g.enabled() {
		st, err := s.readStash(ctx, s.db, t.ID)
		if err != nil {
			return nil, err
		}
		if _, ok := st.open(value, g, s.db.Now()); ok {
			return t, nil
		}
	}
	if err := s.checkRefresh(ctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// stash is what the row of a rotated token keeps for a retry.
type stash struct {
	clientID    string
	usedAt      time.Time
	revoked     bool
	successorID string
	sealed      []byte
}

// readStash reads the stash of the token id; the zero stash, which opens
// for nobody, when there is no such token.
func (s *TokenStore) readStash(ctx context.Context, q core.Querier, id string) (stash, error) {
	var (
		st            stash
		used, revoked sql.NullInt64
		successorID   sql.NullString
	)
	err := s.db.QueryRow(ctx, q, `SELECT client_id, used_at, revoked_at, successor_id, successor_sealed FROM nsauth_refresh_tokens WHERE id = ?`, id).
		Scan(&st.clientID, &used, &revoked, &successorID, &st.sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return stash{}, nil
	}
	if err != nil {
		return stash{}, fmt.Errorf("reading the rotated refresh token: %w", err)
	}
	st.usedAt, st.revoked, st.successorID = core.FromMillis(used), revoked.Valid, successorID.String
	return st, nil
}

// open returns the successor's value when a presentation of oldValue
// under g at now may be answered with it: the token was rotated less than
// g.Window ago, is not revoked, belongs to g's client, still keeps its
// successor sealed, and the seal opens under oldValue for g's presenter
// (the client and the address key that rotated it). It says nothing of
// the successor's own state.
func (st stash) open(oldValue string, g Grace, now time.Time) (string, bool) {
	if !g.enabled() || oldValue == "" || st.usedAt.IsZero() || st.revoked || st.successorID == "" || st.sealed == nil ||
		g.ClientID != st.clientID || !now.Before(st.usedAt.Add(g.Window)) {
		return "", false
	}
	value, err := openSuccessor(oldValue, g.presenter(st.successorID), st.sealed)
	if err != nil {
		return "", false
	}
	return value, true
}

// retryRotation answers a rotation of r.OldID that found the token
// already used: when its stash opens for r (see [stash.open]) and its
// successor is neither used, revoked nor expired, it returns the
// successor. Otherwise it drops the token's sealed successor and returns
// the zero Rotated, and the caller revokes the family. It runs in the
// rotation's transaction; the successor's row is locked, so a concurrent
// rotation of the successor either happened before (and the retry is
// refused) or waits until this transaction ends.
func (s *TokenStore) retryRotation(ctx context.Context, tx *sql.Tx, r Rotation) (Rotated, error) {
	if !r.Grace.enabled() || r.OldValue == "" {
		return Rotated{}, nil
	}
	st, err := s.readStash(ctx, tx, r.OldID)
	if err != nil {
		return Rotated{}, err
	}
	value, ok := st.open(r.OldValue, r.Grace, s.db.Now())
	if !ok {
		return Rotated{}, s.dropStash(ctx, tx, r.OldID)
	}
	var (
		hash                  []byte
		expires               int64
		succUsed, succRevoked sql.NullInt64
	)
	err = s.db.QueryRow(ctx, tx, `SELECT token_hash, expires_at, used_at, revoked_at FROM nsauth_refresh_tokens WHERE id = ?`+s.db.Dialect.LockRows, st.successorID).
		Scan(&hash, &expires, &succUsed, &succRevoked)
	if errors.Is(err, sql.ErrNoRows) {
		return Rotated{}, s.dropStash(ctx, tx, r.OldID)
	}
	if err != nil {
		return Rotated{}, fmt.Errorf("reading the successor refresh token: %w", err)
	}
	if succUsed.Valid || succRevoked.Valid || s.db.NowMillis() >= expires || subtle.ConstantTimeCompare(core.HashSecret(value), hash) != 1 {
		return Rotated{}, s.dropStash(ctx, tx, r.OldID)
	}
	return Rotated{ID: st.successorID, Value: value, Retried: true}, nil
}

func (s *TokenStore) dropStash(ctx context.Context, q core.Querier, id string) error {
	if _, err := s.db.Exec(ctx, q, `UPDATE nsauth_refresh_tokens SET successor_sealed = NULL WHERE id = ? AND successor_sealed IS NOT NULL`, id); err != nil {
		return fmt.Errorf("dropping a sealed refresh token: %w", err)
	}
	return nil
}

// dropPredecessorStash drops the sealed successor of the token rotated
// into usedID, now that usedID is used: its holder evidently got the
// answer, and no retry of the older rotation is allowed any more.
func (s *TokenStore) dropPredecessorStash(ctx context.Context, tx *sql.Tx, family, usedID string) error {
	if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_refresh_tokens SET successor_sealed = NULL
		WHERE family_id = ? AND successor_id = ? AND successor_sealed IS NOT NULL`, family, usedID); err != nil {
		return fmt.Errorf("dropping a sealed refresh token: %w", err)
	}
	return nil
}

// DropExpiredGrace drops every sealed successor whose grace window has
// passed (rotated window ago or earlier; with a window of zero, all of
// them) or whose family was revoked, and returns how many it dropped.
// Run it periodically, with the window rotations use.
func (s *TokenStore) DropExpiredGrace(ctx context.Context, window time.Duration) (int64, error) {
	res, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_refresh_tokens SET successor_sealed = NULL
		WHERE successor_sealed IS NOT NULL AND (used_at <= ? OR revoked_at IS NOT NULL)`, s.db.Now().Add(-max(window, 0)).UnixMilli())
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

// sealSuccessor seals r's successor value, bound to its id and r's
// presenter, under r's old value; nil (stored as NULL) when r's grace is
// disabled.
func sealSuccessor(r Rotation, successorID string) (any, error) {
	if !r.Grace.enabled() || r.OldValue == "" {
		return nil, nil
	}
	aead, err := graceAEAD(r.OldValue)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, []byte(r.NewValue), r.Grace.presenter(successorID)), nil
}

func openSuccessor(oldValue string, presenter, sealed []byte) (string, error) {
	aead, err := graceAEAD(oldValue)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed refresh token too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], presenter)
	if err != nil {
		return "", errors.New("sealed refresh token does not open")
	}
	return string(plain), nil
}
