package tokenstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrNotFound is returned when no entry exists for an API URL.
var ErrNotFound = errors.New("no stored tokens")

// ErrInsecureFile is returned (wrapped, with the path and the fix) when a
// token file or the token directory is a symbolic link, belongs to another
// user, or is accessible by group or others.
var ErrInsecureFile = errors.New("insecure token storage")

// maxEntryBytes bounds what Load reads: entries are a few kilobytes.
const maxEntryBytes = 1 << 20

// Config configures a [Store].
type Config struct {
	// Dir is the configuration directory; entries go to Dir/tokens.
	// Required. [DefaultDir] gives the usual one.
	Dir string
	// Keyring is used for entries with StorageKeyring. Defaults to the
	// operating system's keyring ([SystemKeyring]).
	Keyring Keyring
	// Now stamps UpdatedAt. Defaults to time.Now.
	Now func() time.Time
}

// Store reads and writes entries. It keeps no state between calls, so one
// Store may be used from several goroutines, and several processes may use
// the same directory; writers serialize with [Store.Lock]. The API URLs
// given to its methods must be normalized with [NormalizeAPIURL]: two
// spellings of one server would otherwise be two entries.
type Store struct {
	files   layout
	keyring Keyring
	now     func() time.Time
}

// New returns a Store for cfg. It touches nothing on disk.
func New(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("tokenstore: a directory is required")
	}
	if cfg.Keyring == nil {
		cfg.Keyring = SystemKeyring{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{files: layout{dir: filepath.Join(cfg.Dir, "tokens")}, keyring: cfg.Keyring, now: cfg.Now}, nil
}

// Dir returns the directory that holds the token files.
func (s *Store) Dir() string { return s.files.dir }

// Path returns the file that holds apiURL's active account's entry (apiURL
// must be normalized with [NormalizeAPIURL]); when no account is recorded
// active, it is the file that held a server's one entry before accounts
// (where a store written by an older nsauth still has it). See
// [Store.AccountPath] for any account's file.
func (s *Store) Path(apiURL string) string {
	if idx, err := s.readIndex(apiURL); err == nil && idx.Active != "" {
		return s.files.accountPath(apiURL, idx.Active)
	}
	return s.files.legacyPath(apiURL)
}

// AccountPath returns the file that holds the entry of apiURL's account
// with the given ID (an [Account.ID]).
func (s *Store) AccountPath(apiURL, accountID string) string {
	return s.files.accountPath(apiURL, accountID)
}

// Load returns the entry of apiURL's active account with its secrets, from
// the keyring when the entry says so. It is LoadAccount(apiURL, "").
func (s *Store) Load(apiURL string) (*Entry, error) {
	return s.LoadAccount(apiURL, "")
}

// LoadAccount returns the entry of one of apiURL's accounts with its
// secrets, from the keyring when the entry says so. account is the
// account's ID or else its name, both matched exactly; empty means the
// active account. It returns an error wrapping ErrNotFound when there is
// no such entry ([ErrUnknownAccount] and [ErrNoActiveAccount] among them),
// [ErrAmbiguousAccount] when the name is several accounts', and
// ErrInsecureFile when a file must not be trusted.
//
// A store written before accounts existed, with one entry for apiURL, reads
// as a server with that one account, active; the next write through the
// Store moves it to the current layout.
func (s *Store) LoadAccount(apiURL, account string) (*Entry, error) {
	e, user, err := s.locate(apiURL, account)
	if err != nil {
		return nil, err
	}
	return s.withSecrets(e, user)
}

// LoadMetadata returns the entry of apiURL's active account as its file
// holds it, without consulting the keyring: for StorageKeyring entries the
// token fields are empty. It applies the same checks as Load.
func (s *Store) LoadMetadata(apiURL string) (*Entry, error) {
	return s.LoadAccountMetadata(apiURL, "")
}

// LoadAccountMetadata is LoadAccount without the keyring's secrets, as
// LoadMetadata is Load. One case consults the keyring: to find out whose
// is an entry that an older nsauth stored there (its file did not record
// the account), when account is not empty.
func (s *Store) LoadAccountMetadata(apiURL, account string) (*Entry, error) {
	e, _, err := s.locate(apiURL, account)
	return e, err
}

// locate finds the entry that account designates (see LoadAccount), and
// the keyring item that holds its secrets.
func (s *Store) locate(apiURL, account string) (*Entry, string, error) {
	if err := s.files.checkDir(false); err != nil {
		return nil, "", err
	}
	idx, err := s.readIndex(apiURL)
	switch {
	case errors.Is(err, ErrNotFound):
		return s.locateLegacy(apiURL, account)
	case err != nil:
		return nil, "", err
	}
	if account == "" {
		if idx.Active != "" {
			e, err := s.readAccount(apiURL, idx.Active)
			if err == nil || !errors.Is(err, ErrNotFound) {
				return e, keyringUser(apiURL, idx.Active), err
			}
		}
		entries, err := s.readAccounts(apiURL)
		if err != nil {
			return nil, "", err
		}
		if len(entries) == 0 {
			return nil, "", fmt.Errorf("%s: %w", apiURL, ErrNotFound)
		}
		return nil, "", fmt.Errorf("%w on %s; its accounts: %s", ErrNoActiveAccount, apiURL, describeAccounts(entries, ""))
	}
	entries, err := s.readAccounts(apiURL)
	if err != nil {
		return nil, "", err
	}
	e, err := matchAccount(apiURL, entries, account, idx.Active)
	if err != nil {
		return nil, "", err
	}
	return e, keyringUser(apiURL, e.Account.ID), nil
}

// locateLegacy is locate for a server stored before accounts.
func (s *Store) locateLegacy(apiURL, account string) (*Entry, string, error) {
	e, err := readEntryFile(s.files.legacyPath(apiURL), apiURL, "")
	if err != nil {
		return nil, "", err
	}
	if account == "" {
		return e, legacyKeyringUser(apiURL), nil
	}
	if e.Account.ID == "" {
		// In the keyring: the file does not say whose it is.
		full, err := s.withSecrets(e, legacyKeyringUser(apiURL))
		if err != nil {
			return nil, "", err
		}
		e.Account = full.Account
	}
	if _, err := matchAccount(apiURL, []*Entry{e}, account, e.Account.ID); err != nil {
		return nil, "", err
	}
	return e, legacyKeyringUser(apiURL), nil
}

// withSecrets returns e with the tokens from keyring item user when e says
// they are there; otherwise e itself.
func (s *Store) withSecrets(e *Entry, user string) (*Entry, error) {
	if e.Storage != StorageKeyring {
		return e, nil
	}
	raw, err := s.keyring.Get(keyringService, user)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("tokens for %s: the keyring holds no secrets for this entry: %w", e.APIURL, ErrNotFound)
	}
	if err != nil {
		return nil, keyringError("reading tokens from", err)
	}
	var sec secrets
	if err := json.Unmarshal([]byte(raw), &sec); err != nil {
		return nil, fmt.Errorf("reading tokens from the OS keyring: the stored item is not an nsauth entry")
	}
	full := *e
	full.AccessToken, full.RefreshToken, full.IDToken = sec.AccessToken, sec.RefreshToken, sec.IDToken
	if full.Account.ID == "" {
		full.Account = AccountFromTokens(full.IDToken, full.AccessToken)
	}
	return &full, nil
}

// readAccount reads the file of apiURL's account id.
func (s *Store) readAccount(apiURL, id string) (*Entry, error) {
	if !validAccountID(id) {
		return nil, fmt.Errorf("%w: %q is not an account ID", ErrUnknownAccount, id)
	}
	return readEntryFile(s.files.accountPath(apiURL, id), apiURL, id)
}

// readAccounts reads the files of all apiURL's accounts, sorted by name.
func (s *Store) readAccounts(apiURL string) ([]*Entry, error) {
	dir := s.files.serverDir(apiURL)
	if err := checkPrivateDir(dir, false); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing accounts: %w", err)
	}
	var entries []*Entry
	for _, de := range des {
		name := de.Name()
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || name == indexFile || strings.HasPrefix(name, ".") {
			continue
		}
		e, err := s.readAccount(apiURL, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	sortEntries(entries)
	return entries, nil
}

// readEntryFile reads an entry file of apiURL: an account's (id set), or
// the one entry of a store written before accounts (id empty).
func readEntryFile(path, apiURL, id string) (*Entry, error) {
	data, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	var fe fileEntry
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&fe); err != nil {
		return nil, fmt.Errorf("reading %s: not a token file (%v); log in again to replace it", path, jsonProblem(err))
	}
	// Format 2 adds the account to format 1; a format-1 entry read from
	// an account's file (one edited, or copied in by hand) is that account's.
	if fe.Version != legacyEntryVersion && (id == "" || fe.Version != entryVersion) {
		return nil, fmt.Errorf("reading %s: unsupported format version %d; log in again to replace it", path, fe.Version)
	}
	if fe.APIURL != apiURL {
		return nil, fmt.Errorf("reading %s: the file belongs to %s, not %s", path, fe.APIURL, apiURL)
	}
	e := fe.Entry
	if e.Storage == "" {
		e.Storage = StorageFile
	}
	if e.Storage != StorageFile && e.Storage != StorageKeyring {
		return nil, fmt.Errorf("reading %s: unknown storage %q", path, e.Storage)
	}
	switch {
	case e.Account.ID == "" && (e.Storage == StorageFile || id != ""):
		// Whose it is, from the tokens; a keyring entry learns it with
		// its secrets (withSecrets).
		e.Account = AccountFromTokens(e.IDToken, e.AccessToken)
		if id != "" {
			e.Account.ID = id
		}
	case id != "" && e.Account.ID != id:
		return nil, fmt.Errorf("reading %s: the file holds account %s, not %s", path, e.Account.ID, id)
	}
	return &e, nil
}

// jsonProblem describes a decoding error without quoting the file, which
// may hold secrets.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	default:
		return "invalid JSON"
	}
}

// Save writes e atomically as the entry of the account e.Account names,
// setting e.UpdatedAt (and e.Storage to StorageFile when empty). Secrets go
// where e.Storage says: the file, or the keyring (then the file gets
// metadata only). A keyring that cannot be reached is an error and nothing
// is written. Callers that read, change and write an entry should hold
// [Store.Lock].
//
// An entry whose Account has no ID is the active account's, as it was the
// server's only entry before accounts; when no account is active it is
// the account its tokens name ([AccountFromTokens]). To add an account, set
// Account ([FromAccessToken] does). The first account saved for a server
// becomes active; Save never changes which account is active otherwise
// (see [Store.SetActive]).
//
// A store written before accounts is moved to the current layout first,
// keeping its entry as an account (whose secrets, if in the keyring, move
// to that account's item).
func (s *Store) Save(e *Entry) error {
	if e == nil || e.APIURL == "" {
		return errors.New("tokenstore: an entry with an API URL is required")
	}
	if e.Storage == "" {
		e.Storage = StorageFile
	}
	if e.Storage != StorageFile && e.Storage != StorageKeyring {
		return fmt.Errorf("tokenstore: unknown storage %q", e.Storage)
	}
	if err := s.files.checkDir(true); err != nil {
		return err
	}
	if err := s.migrate(e.APIURL); err != nil {
		return err
	}
	idx, err := s.readIndex(e.APIURL)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if e.Account.ID == "" {
		e.Account = AccountFromTokens(e.IDToken, e.AccessToken)
		if idx != nil && idx.Active != "" {
			if cur, err := s.readAccount(e.APIURL, idx.Active); err == nil {
				e.Account = cur.Account
			} else {
				e.Account.ID = idx.Active
			}
		}
	}
	if !validAccountID(e.Account.ID) {
		return fmt.Errorf("tokenstore: account ID %q is not lower-case letters, digits and hyphens", e.Account.ID)
	}
	e.UpdatedAt = s.now().UTC().Truncate(time.Second)
	if err := s.writeAccount(e); err != nil {
		return err
	}
	if idx == nil {
		return s.writeIndex(e.APIURL, e.Account.ID)
	}
	return nil
}

// writeAccount writes e, whose Account is set, to its account's file and
// keyring item.
func (s *Store) writeAccount(e *Entry) error {
	if err := checkPrivateDir(s.files.serverDir(e.APIURL), true); err != nil {
		return err
	}
	user := keyringUser(e.APIURL, e.Account.ID)
	path := s.files.accountPath(e.APIURL, e.Account.ID)
	fe := fileEntry{Version: entryVersion, Entry: *e}
	switch e.Storage {
	case StorageKeyring:
		sec, err := json.Marshal(secrets{AccessToken: e.AccessToken, RefreshToken: e.RefreshToken, IDToken: e.IDToken})
		if err != nil {
			return fmt.Errorf("encoding tokens: %w", err)
		}
		if err := s.keyring.Set(keyringService, user, string(sec)); err != nil {
			return keyringError("storing tokens in", err)
		}
		fe.AccessToken, fe.RefreshToken, fe.IDToken = "", "", ""
	case StorageFile:
		// Moving from the keyring to a file: the keyring copy is now stale.
		if prev, err := readEntryFile(path, e.APIURL, e.Account.ID); err == nil && prev.Storage == StorageKeyring {
			_ = s.keyring.Delete(keyringService, user)
		}
	}
	data, err := json.MarshalIndent(fe, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding tokens: %w", err)
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// Delete removes the entry of apiURL's active account. It is
// DeleteAccount(apiURL, "").
func (s *Store) Delete(apiURL string) (bool, error) {
	return s.DeleteAccount(apiURL, "")
}

// DeleteAccount removes the entry of one of apiURL's accounts (account as
// for [Store.LoadAccount]; empty means the active one), and its keyring
// item when it has one. It reports whether there was an entry; a missing
// entry or account is not an error, an ambiguous name is. Deleting the
// active account leaves none active: the others stay stored, and nsauth
// never switches users by itself. Callers should hold [Store.Lock].
//
// A file that cannot be read (insecure, corrupt) is still deleted when
// account is empty or the file's ID, so that a bad entry can be removed.
func (s *Store) DeleteAccount(apiURL, account string) (bool, error) {
	if err := s.files.checkDir(false); err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	idx, err := s.readIndex(apiURL)
	switch {
	case errors.Is(err, ErrNotFound):
		return s.deleteLegacy(apiURL, account)
	case err != nil:
		return false, err
	}
	if err := s.migrate(apiURL); err != nil {
		return false, err
	}
	id := account
	switch {
	case account == "":
		id = idx.Active
	case validAccountID(account) && fileExists(s.files.accountPath(apiURL, account)):
	default:
		entries, err := s.readAccounts(apiURL)
		if err != nil {
			return false, err
		}
		e, err := matchAccount(apiURL, entries, account, idx.Active)
		if errors.Is(err, ErrUnknownAccount) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		id = e.Account.ID
	}
	if id == "" {
		return false, nil
	}
	existed, err := s.removeEntry(s.files.accountPath(apiURL, id), apiURL, id, keyringUser(apiURL, id))
	if err != nil {
		return existed, err
	}
	rest, err := s.readAccounts(apiURL)
	switch {
	case err != nil:
		return existed, err
	case len(rest) == 0:
		// Nothing left: the next account saved becomes active, as on a
		// server never logged in to.
		if err := os.Remove(s.files.indexPath(apiURL)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return existed, fmt.Errorf("deleting tokens: %w", err)
		}
		return existed, syncDir(s.files.serverDir(apiURL))
	case id == idx.Active:
		return existed, s.writeIndex(apiURL, "")
	}
	return existed, nil
}

// removeEntry deletes an entry file and, when it says so, its keyring item.
func (s *Store) removeEntry(path, apiURL, id, user string) (bool, error) {
	if e, err := readEntryFile(path, apiURL, id); err == nil && e.Storage == StorageKeyring {
		if err := s.keyring.Delete(keyringService, user); err != nil && !errors.Is(err, ErrNotFound) {
			return false, keyringError("deleting tokens from", err)
		}
	}
	// A file we refuse to read (insecure, corrupt) is still ours to remove:
	// os.Remove unlinks a symbolic link itself, not its target.
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("deleting tokens: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return true, fmt.Errorf("deleting tokens: %w", err)
	}
	return true, nil
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Lock takes the cross-process lock for apiURL's entries (all its
// accounts), waiting until ctx ends. Hold it from reading an entry to
// writing its replacement. The returned function releases it.
func (s *Store) Lock(ctx context.Context, apiURL string) (unlock func(), err error) {
	if err := s.files.checkDir(true); err != nil {
		return nil, err
	}
	return lockFile(ctx, s.files.lockPath(apiURL))
}
