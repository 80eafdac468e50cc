package tokenstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// checkPrivateDir checks a directory of the store (the token directory or
// a server's), as checkDir does.
func checkPrivateDir(dir string, create bool) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return fmt.Errorf("%s: %w", dir, ErrNotFound)
		}
		// MkdirAll applies the umask; chmod the leaf to be sure.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating the token directory: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("creating the token directory: %w", err)
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return fmt.Errorf("checking the token directory: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%w: %s is a symbolic link; remove it and log in again", ErrInsecureFile, dir)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrInsecureFile, dir)
	}
	return checkPrivate(dir, fi, "chmod 700")
}

// readPrivateFile reads a token file after checking that it is a regular
// file (not a symbolic link), owned by the current user and not accessible
// by others. The checks are made on the opened file (see openPrivate), so
// swapping the file between check and read is caught.
func readPrivateFile(path string) ([]byte, error) {
	f, err := openPrivate(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInsecureFile, path)
	}
	if err := checkPrivate(path, fi, "chmod 600"); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEntryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	if len(data) > maxEntryBytes {
		return nil, fmt.Errorf("reading %s: file too large to be a token file", path)
	}
	return data, nil
}

func symlinkError(path string) error {
	return fmt.Errorf("%w: %s is a symbolic link, which nsauth never follows; delete it and log in again", ErrInsecureFile, path)
}

// writeFileAtomic replaces path with data: a new 0600 file in the same
// directory, synced, renamed over path, then the directory synced. A crash
// leaves either the old file or the new one, never a mix.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing tokens: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	// CreateTemp already uses 0600; chmod in case a platform differs.
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("writing tokens: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing tokens: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing tokens: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing tokens: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing tokens: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("writing tokens: %w", err)
	}
	return nil
}
