package tokenstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gofrs/flock"
)

// lockRetry is how often a waiting process retries a held lock.
const lockRetry = 10 * time.Millisecond

// lockFile takes an exclusive advisory lock (flock(2) on Unix) on path,
// creating it with mode 0600. Lock files are never deleted: removing one
// while another process waits on it would let two processes hold "the"
// lock at once.
func lockFile(ctx context.Context, path string) (func(), error) {
	fl := flock.New(path, flock.SetPermissions(0o600))
	ok, err := fl.TryLockContext(ctx, lockRetry)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("waiting for another nsauth process to finish refreshing: %w", ctxErr)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if !ok {
		return nil, errors.New("waiting for another nsauth process to finish refreshing: lock not acquired")
	}
	return func() { _ = fl.Unlock() }, nil
}
