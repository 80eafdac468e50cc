package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/store"
)

// newAuditor makes the built-in provider's audit recorder: events go to
// the store and, when NSAUTH_AUDIT_LOG names one, to a JSON-lines stream.
// Its HMAC key is an instance secret, sealed like the others and shared by
// replicas, so one ref finds a token's events whichever replica recorded
// them. Its events are stored with group commit (audit.Config.GroupCommit):
// a token's event shares a write transaction with the events of the
// requests beside it instead of taking one of its own. The returned
// function writes the events still queued, streams the aggregated rows of
// refusals it still holds (the issuer's maintenance streams those of
// ended minutes) and closes the stream's file: call it before the store
// closes.
func newAuditor(ctx context.Context, st *store.Store, b config.Builtin, deps Deps, logger *slog.Logger) (*audit.Auditor, func() error, error) {
	noClose := func() error { return nil }
	key, err := AuditKey(ctx, st)
	if err != nil {
		return nil, noClose, err
	}
	stream, err := audit.OpenStream(b.AuditLog, deps.Stdout, deps.Stderr)
	if err != nil {
		return nil, noClose, err
	}
	replica, _ := os.Hostname()
	a, err := audit.New(audit.Config{
		Key:      key,
		Sink:     st,
		Stream:   stream,
		Required: b.AuditRequired,
		Replica:  replica,
		Now:      deps.Now,
		Logger:   logger.With("component", "audit"),

		RefusalRowsPerMinute: b.AuditRefusalRowsPerMinute,
		GroupCommit:          true,
	})
	if err != nil {
		_ = stream.Close()
		return nil, noClose, err
	}
	return a, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), auditCloseTimeout)
		defer cancel()
		err := a.Close(ctx)
		a.FlushRefusals(ctx, true)
		return errors.Join(err, stream.Close())
	}, nil
}

// The store takes the audit events of group commit in batches: without
// this, GroupCommit would quietly write one event per transaction.
var _ audit.BatchSink = (*store.Store)(nil)

// And a failed batch reaches its requests' store.WatchOutage, so that
// they answer 503 when the database is unavailable, as before.
var _ interface {
	NoteBatchFailure(ctx context.Context, err error)
} = (*store.Store)(nil)

// auditCloseTimeout bounds how long closing the server waits for the
// audit events still queued to be written: the queue is at most
// audit.DefaultQueueLength events, written audit.MaxBatch at a time.
const auditCloseTimeout = 30 * time.Second

// AuditKey returns the audit trail's HMAC key from st, made at first use:
// st must hold the secret key (see [OpenSealedStore]).
func AuditKey(ctx context.Context, st *store.Store) ([]byte, error) {
	v, err := st.EnsureSecret(ctx, audit.KeyName, store.RandomToken(32))
	if err != nil {
		return nil, fmt.Errorf("reading the audit key: %w", err)
	}
	return []byte(v), nil
}

// ErrNoAuditKey means the store holds no audit key yet: no server has
// started on it since audit events exist, so no event carries a ref.
var ErrNoAuditKey = errors.New("the database holds no audit key yet: start nsauth serve once")

// ReadAuditKey opens the store loc points at with the secret keys (or,
// for SQLite without one, the data directory's key file, which it never
// makes), and returns the audit trail's HMAC key, for `nsauth audit hash`.
// It changes nothing in the store.
func ReadAuditKey(ctx context.Context, loc config.Store, keys config.SecretKeys, now func() time.Time) ([]byte, error) {
	ring, err := givenKeyring(loc, keys, "no secret key")
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, loc, store.Options{Now: now, Keyring: ring.ring})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	v, err := st.Secret(ctx, audit.KeyName)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoAuditKey
	}
	if err != nil {
		return nil, secretKeyError(err, ring)
	}
	return []byte(v), nil
}

// StoreAuditor records events in st for a command that administers the
// store (nsauth users, clients, federation): without refs, since such a
// command opens the store without the secret key, and without a stream.
// With required (NSAUTH_AUDIT_REQUIRED), Record fails when st cannot be
// written, and the command must then fail too.
func StoreAuditor(st *store.Store, required bool, now func() time.Time) (*audit.Auditor, error) {
	replica, _ := os.Hostname()
	return audit.New(audit.Config{Sink: st, Required: required, Replica: replica, Now: now})
}
