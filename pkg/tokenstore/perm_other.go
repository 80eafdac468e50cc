//go:build !unix

package tokenstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// openPrivate opens path for reading, refusing a symbolic link. Without
// O_NOFOLLOW the check is Lstat then open then SameFile, which also catches
// a file replaced in between.
func openPrivate(path string) (*os.File, error) {
	before, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	if before.Mode()&fs.ModeSymlink != 0 {
		return nil, symlinkError(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	if after, err := f.Stat(); err != nil || !os.SameFile(before, after) {
		_ = f.Close()
		return nil, fmt.Errorf("reading tokens: %s changed while being opened; try again", path)
	}
	return f, nil
}

// checkPrivate is a no-op where Unix permission bits do not exist; the
// user's profile directory is private by default there.
func checkPrivate(string, fs.FileInfo, string) error { return nil }

// syncDir is a no-op where directories cannot be synced.
func syncDir(string) error { return nil }
