package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/seal"
)

// keyFile is a file of secret keys that a server reads again when it
// changes: a rotation writes the new key into it, above the old one, and
// the servers that read it take the new key without a restart.
type keyFile struct {
	path string
	// old are keys given apart (NSAUTH_OLD_SECRET_KEY), held after the
	// file's.
	old []*seal.Key

	mu sync.Mutex
	// read is the file as last read, and keys what it held.
	read fs.FileInfo
	keys []*seal.Key
}

// load returns the file's keys, newest first, then the old ones, reading
// the file only when it is another file than last time (a rotation
// replaces it whole), or was written since.
func (f *keyFile) load() ([]*seal.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Stat before reading: a change between the two is read next time.
	info, err := os.Stat(f.path)
	if err != nil {
		return nil, fmt.Errorf("reading the key file: %w", err)
	}
	if f.read != nil && os.SameFile(f.read, info) && info.ModTime().Equal(f.read.ModTime()) && info.Size() == f.read.Size() {
		return f.keys, nil
	}
	keys, err := config.ReadSecretKeyFile(f.path)
	if err != nil {
		return nil, err
	}
	f.read, f.keys = info, append(keys, f.old...)
	return f.keys, nil
}

// createKeyFile writes a new key file, mode 0600, that appears whole or
// not at all: it is written under a temporary name and linked into place,
// which fails when the file exists (another process made it first:
// created is then false and the file is left as it is).
func createKeyFile(path, text string) (created bool, err error) {
	tmp, err := writeKeyFileTemp(path, text, nil)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("creating the secret key file: %w", err)
	}
	syncDir(filepath.Dir(path))
	return true, nil
}

// replaceKeyFile replaces the key file at path with one holding text,
// whole or not at all (a rename), with the mode and, where it can, the
// owner of the file it replaces: the server that reads it must still
// can.
func replaceKeyFile(path, text string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("replacing the secret key file: %w", err)
	}
	tmp, err := writeKeyFileTemp(path, text, info)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing the secret key file: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// writeKeyFileTemp writes text and a newline to a new file beside path,
// mode 0600 (or like's mode and owner), synced, and returns its name; the
// caller moves it into place and removes the name.
func writeKeyFileTemp(path, text string, like fs.FileInfo) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret.key-*")
	if err != nil {
		return "", fmt.Errorf("writing the secret key file: %w", err)
	}
	mode := fs.FileMode(0o600)
	if like != nil {
		mode = like.Mode().Perm() & 0o640 // never wider than it was, nor than owner read-write and group read
	}
	err = tmp.Chmod(mode)
	if err == nil && like != nil {
		err = sameOwner(tmp, like)
	}
	if err == nil {
		_, err = tmp.WriteString(text + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", fmt.Errorf("writing the secret key file: %w", err)
	}
	return tmp.Name(), nil
}

// syncDir makes a link or rename in dir durable, where the system allows.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
