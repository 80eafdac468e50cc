//go:build unix

package tokenstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// openPrivate opens path for reading without following a symbolic link
// (O_NOFOLLOW makes the kernel refuse one atomically) and without blocking
// on a FIFO planted in its place (O_NONBLOCK).
func openPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	case errors.Is(err, syscall.ELOOP):
		return nil, symlinkError(path)
	default:
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
}

// checkPrivate refuses a file or directory that another user owns or that
// group or others may access in any way.
func checkPrivate(path string, fi fs.FileInfo, fix string) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s belongs to another user (uid %d)", ErrInsecureFile, path, st.Uid)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s is accessible by other users (mode %04o); run `%s %s` if you trust its contents, or delete it and log in again", ErrInsecureFile, path, perm, fix, path)
	}
	return nil
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
