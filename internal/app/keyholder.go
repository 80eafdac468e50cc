package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nsauth/nsauth/internal/store"
)

const (
	// keyHolderInterval is how often a server renews the record of the
	// keys it holds, and reads its key file again.
	keyHolderInterval = 15 * time.Second
	// keyHolderTTL is how long a record counts without renewal: a server
	// that stopped without removing it (killed) holds back a rotation
	// that long. It leaves room for clocks a little apart.
	keyHolderTTL = time.Minute
)

// keyHolder publishes, in the database, which secret keys this server
// holds, and renews that while it runs (see store.KeyHolder): `nsauth keys
// rotate-secret-key` refuses to seal everything under a key that a
// running server lacks. It also reads the server's key file again from
// time to time, so that a retired key is dropped (and a new one taken
// before it is met).
type keyHolder struct {
	rec    store.KeyHolder
	now    func() time.Time
	logger *slog.Logger

	// st is the store the record is in, once published; done is closed
	// when run returns, once started.
	st   *store.Store
	done chan struct{}
}

// newKeyHolder describes this process.
func newKeyHolder(now func() time.Time, logger *slog.Logger) *keyHolder {
	host, _ := os.Hostname()
	return &keyHolder{now: now, logger: logger, rec: store.KeyHolder{
		ID: store.NewID(), Host: host, PID: os.Getpid(), Started: now(),
	}}
}

// absPath is path made absolute, so that processes started in other
// directories name one file alike.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// publish records, in st, that this process holds kr's keys, and
// removes the records of processes that stopped without removing theirs.
func (h *keyHolder) publish(ctx context.Context, st *store.Store, kr *keyring) error {
	h.st = st
	h.rec.Source, h.rec.KeyFile = "NSAUTH_SECRET_KEY", ""
	if kr.source != nil {
		h.rec.KeyFile = absPath(kr.source.path)
		h.rec.Source = "the key file " + h.rec.KeyFile
	}
	if err := h.renew(ctx); err != nil {
		return err
	}
	_, err := st.KeyHolders(ctx)
	return err
}

// renew records the keys the store holds now.
func (h *keyHolder) renew(ctx context.Context) error {
	rec := h.rec
	rec.KeyIDs = h.st.Keyring().IDs()
	rec.Seen = h.now()
	rec.Expires = rec.Seen.Add(keyHolderTTL)
	return h.st.PublishKeyHolder(ctx, rec)
}

// start renews the record until ctx ends, reading the key file again
// first each time.
func (h *keyHolder) start(ctx context.Context) {
	h.done = make(chan struct{})
	go func() {
		defer close(h.done)
		t := time.NewTicker(keyHolderInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			h.tick(ctx)
		}
	}()
}

func (h *keyHolder) tick(ctx context.Context) {
	before := h.st.Keyring().IDs()
	ring, err := h.st.ReloadKeys(ctx)
	if err != nil && ctx.Err() == nil {
		h.logger.Warn("reading the secret key file again", "error", err, "file", h.rec.KeyFile)
	}
	if ids := ring.IDs(); !slices.Equal(ids, before) {
		h.logger.Info("the secret keys changed", "key_ids", ids, "source", h.rec.Source)
	}
	if err := h.renew(ctx); err != nil && ctx.Err() == nil {
		h.logger.Warn("publishing which secret keys this server holds; a key rotation may refuse to run meanwhile", "error", err)
	}
}

// remove deletes the record, once renewals have stopped (the context
// given to start has ended): a server that stops holds back no rotation.
func (h *keyHolder) remove() error {
	if h.done != nil {
		<-h.done
	}
	if h.st == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return h.st.RemoveKeyHolder(ctx, h.rec.ID)
}
