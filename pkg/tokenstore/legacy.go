package tokenstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Stores written before accounts (format 1) kept one entry per server, in
// <dir>/tokens/<stem>.json, with its secrets, if in the keyring, under the
// API URL alone. They read as a server with one account, active, and move
// to the current layout (format 2: <dir>/tokens/<stem>/<account ID>.json
// and index.json, keyring items under "<API URL>#<account ID>") on the
// first write.

// legacyEntryVersion is the format of a store written before accounts.
const legacyEntryVersion = 1

// keyringUser is the keyring item's user name for an account's secrets. A
// normalized API URL has no fragment, so no account's name is a format-1
// entry's, nor another server's.
func keyringUser(apiURL, accountID string) string { return apiURL + "#" + accountID }

// legacyKeyringUser is the keyring item's user name of a format-1 entry.
func legacyKeyringUser(apiURL string) string { return apiURL }

// migrate moves apiURL's format-1 entry, if any, to the current layout.
// Writers call it first, holding the server's lock as writers should.
//
// The account's file and then the index are written before the old file
// is removed: a crash leaves either the old layout or the new one with a
// leftover old file, which is removed next time and never read again (the
// account's file may hold a newer, rotated, refresh token by then).
func (s *Store) migrate(apiURL string) error {
	if !fileExists(s.files.legacyPath(apiURL)) {
		return nil
	}
	_, err := s.readIndex(apiURL)
	switch {
	case err == nil:
		return s.removeLegacy(apiURL)
	case !errors.Is(err, ErrNotFound):
		return err
	}
	e, err := readEntryFile(s.files.legacyPath(apiURL), apiURL, "")
	if err == nil {
		e, err = s.withSecrets(e, legacyKeyringUser(apiURL))
	}
	switch {
	case errors.Is(err, ErrKeyringUnavailable):
		return fmt.Errorf("moving the stored tokens of %s to the accounts layout: %w", apiURL, err)
	case err != nil:
		// Unreadable, untrusted, or its secrets gone: nothing to keep, and
		// a login replaced such a file before accounts too.
		return s.removeLegacy(apiURL)
	case e.Refused() && e.AccessToken == "" && e.RefreshToken == "" && e.IDToken == "":
		// A session the server refused, its tokens deleted: nothing says
		// whose it was, and as an account it would linger, unnamed, beside
		// the login that replaces it.
		return s.removeLegacy(apiURL)
	}
	if err := s.writeAccount(e); err != nil {
		return fmt.Errorf("moving the stored tokens of %s to the accounts layout: %w", apiURL, err)
	}
	if err := s.writeIndex(apiURL, e.Account.ID); err != nil {
		return fmt.Errorf("moving the stored tokens of %s to the accounts layout: %w", apiURL, err)
	}
	return s.removeLegacy(apiURL)
}

// removeLegacy deletes apiURL's format-1 file and its keyring item. A
// keyring item that cannot be deleted stays behind in the user's own
// keyring, unread: that is no reason to fail the write that moved it.
func (s *Store) removeLegacy(apiURL string) error {
	path := s.files.legacyPath(apiURL)
	if e, err := readEntryFile(path, apiURL, ""); err == nil && e.Storage == StorageKeyring {
		_ = s.keyring.Delete(keyringService, legacyKeyringUser(apiURL))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the old token file: %w", err)
	}
	return syncDir(s.files.dir)
}

// deleteLegacy is DeleteAccount for a store written before accounts.
func (s *Store) deleteLegacy(apiURL, account string) (bool, error) {
	if account != "" {
		if _, _, err := s.locateLegacy(apiURL, account); err != nil {
			if errors.Is(err, ErrNotFound) {
				return false, nil
			}
			return false, err
		}
	}
	return s.removeEntry(s.files.legacyPath(apiURL), apiURL, "", legacyKeyringUser(apiURL))
}
