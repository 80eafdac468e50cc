package tokenstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// indexFile records, in a server's directory, which account is active.
const indexFile = "index.json"

// index is the on-disk form of a server's index. The list of accounts is
// not in it but in the directory: saving one account's refreshed tokens
// then never rewrites a file that another account's writer shares.
type index struct {
	Version int    `json:"version"`
	APIURL  string `json:"api_url"`
	// Active is the active account's ID; empty for none.
	Active string `json:"active"`
}

// readIndex returns apiURL's index, or an error wrapping ErrNotFound when
// the server has none (never logged in to, or stored before accounts).
func (s *Store) readIndex(apiURL string) (*index, error) {
	if err := checkPrivateDir(s.files.serverDir(apiURL), false); err != nil {
		return nil, err
	}
	path := s.files.indexPath(apiURL)
	data, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	var idx index
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&idx); err != nil {
		return nil, fmt.Errorf("reading %s: not an nsauth index (%v); delete it and log in again", path, jsonProblem(err))
	}
	if idx.Version != entryVersion {
		return nil, fmt.Errorf("reading %s: unsupported format version %d", path, idx.Version)
	}
	if idx.APIURL != apiURL {
		return nil, fmt.Errorf("reading %s: the file belongs to %s, not %s", path, idx.APIURL, apiURL)
	}
	if idx.Active != "" && !validAccountID(idx.Active) {
		return nil, fmt.Errorf("reading %s: %q is not an account ID", path, idx.Active)
	}
	return &idx, nil
}

// writeIndex records active (an ID, or empty for none) as apiURL's active
// account.
func (s *Store) writeIndex(apiURL, active string) error {
	if err := checkPrivateDir(s.files.serverDir(apiURL), true); err != nil {
		return err
	}
	data, err := json.MarshalIndent(index{Version: entryVersion, APIURL: apiURL, Active: active}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the index: %w", err)
	}
	return writeFileAtomic(s.files.indexPath(apiURL), append(data, '\n'))
}

// Accounts returns the entries of apiURL's accounts as LoadMetadata does
// (without secrets), sorted by name then ID, and the active account's ID
// (empty when none is active). A server with nothing stored has no
// accounts, which is not an error. A store written before accounts lists
// its one entry as the active account; when that entry's secrets are in
// the keyring, the keyring is read to find out whose they are.
func (s *Store) Accounts(apiURL string) (entries []*Entry, active string, err error) {
	if err := s.files.checkDir(false); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, "", nil
		}
		return nil, "", err
	}
	idx, err := s.readIndex(apiURL)
	switch {
	case errors.Is(err, ErrNotFound):
		e, _, err := s.locateLegacy(apiURL, "")
		if errors.Is(err, ErrNotFound) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", err
		}
		if e.Account.ID == "" {
			full, err := s.withSecrets(e, legacyKeyringUser(apiURL))
			if err != nil {
				return nil, "", err
			}
			e.Account = full.Account
		}
		return []*Entry{e}, e.Account.ID, nil
	case err != nil:
		return nil, "", err
	}
	entries, err = s.readAccounts(apiURL)
	if err != nil {
		return nil, "", err
	}
	return entries, idx.Active, nil
}

// SetActive makes account (its ID, or else its name, exactly) apiURL's
// active account, the one that [Store.Load], `nsauth token` and
// [github.com/nsauth/nsauth/pkg/tokensource] use by default. It returns
// an error wrapping [ErrUnknownAccount] or [ErrAmbiguousAccount] when
// account does not select exactly one stored account. Callers should hold
// [Store.Lock].
func (s *Store) SetActive(apiURL, account string) error {
	if account == "" {
		return errors.New("tokenstore: SetActive needs an account")
	}
	if err := s.files.checkDir(true); err != nil {
		return err
	}
	if err := s.migrate(apiURL); err != nil {
		return err
	}
	idx, err := s.readIndex(apiURL)
	active := ""
	switch {
	case err == nil:
		active = idx.Active
	case !errors.Is(err, ErrNotFound):
		return err
	}
	entries, err := s.readAccounts(apiURL)
	if err != nil {
		return err
	}
	e, err := matchAccount(apiURL, entries, account, active)
	if err != nil {
		return err
	}
	return s.writeIndex(apiURL, e.Account.ID)
}
