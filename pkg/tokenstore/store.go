package tokenstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	dir     string
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
	return &Store{dir: filepath.Join(cfg.Dir, "tokens"), keyring: cfg.Keyring, now: cfg.Now}, nil
}

// Dir returns the directory that holds the token files.
func (s *Store) Dir() string { return s.dir }

// Path returns the file that holds apiURL's entry (which must be
// normalized with [NormalizeAPIURL]).
func (s *Store) Path(apiURL string) string {
	return filepath.Join(s.dir, fileStem(apiURL)+".json")
}

func (s *Store) lockPath(apiURL string) string {
	return filepath.Join(s.dir, fileStem(apiURL)+".lock")
}

// fileStem names an entry's files: the host and port, readable by people
// listing the directory, then a digest of the whole URL so that URLs which
// differ only in path or scheme do not collide.
func fileStem(apiURL string) string {
	sum := sha256.Sum256([]byte(apiURL))
	host := apiURL
	if _, rest, ok := strings.Cut(apiURL, "://"); ok {
		host, _, _ = strings.Cut(rest, "/")
	}
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		default:
			return '_'
		}
	}, strings.ToLower(host))
	if len(clean) > 64 {
		clean = clean[:64]
	}
	return clean + "-" + hex.EncodeToString(sum[:6])
}

// Load returns apiURL's entry with its secrets, from the keyring when the
// entry says so. It returns an error wrapping ErrNotFound when there is no
// entry, and ErrInsecureFile when the file must not be trusted.
func (s *Store) Load(apiURL string) (*Entry, error) {
	e, err := s.LoadMetadata(apiURL)
	if err != nil {
		return nil, err
	}
	if e.Storage != StorageKeyring {
		return e, nil
	}
	raw, err := s.keyring.Get(keyringService, apiURL)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("tokens for %s: the keyring holds no secrets for this entry: %w", apiURL, ErrNotFound)
	}
	if err != nil {
		return nil, keyringError("reading tokens from", err)
	}
	var sec secrets
	if err := json.Unmarshal([]byte(raw), &sec); err != nil {
		return nil, fmt.Errorf("reading tokens from the OS keyring: the stored item is not an nsauth entry")
	}
	e.AccessToken, e.RefreshToken, e.IDToken = sec.AccessToken, sec.RefreshToken, sec.IDToken
	return e, nil
}

// LoadMetadata returns apiURL's entry as the file holds it, without
// consulting the keyring: for StorageKeyring entries the token fields are
// empty. It applies the same checks as Load.
func (s *Store) LoadMetadata(apiURL string) (*Entry, error) {
	if err := s.checkDir(false); err != nil {
		return nil, err
	}
	path := s.Path(apiURL)
	data, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	var fe fileEntry
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&fe); err != nil {
		return nil, fmt.Errorf("reading %s: not a token file (%v); log in again to replace it", path, jsonProblem(err))
	}
	if fe.Version != entryVersion {
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

// Save writes e atomically, setting e.UpdatedAt (and e.Storage to
// StorageFile when empty). Secrets go where e.Storage says: the file, or
// the keyring (then the file gets metadata only). A keyring that cannot be
// reached is an error and nothing is written. Callers that read, change and
// write an entry should hold [Store.Lock].
func (s *Store) Save(e *Entry) error {
	if e == nil || e.APIURL == "" {
		return errors.New("tokenstore: an entry with an API URL is required")
	}
	if e.Storage == "" {
		e.Storage = StorageFile
	}
	if err := s.checkDir(true); err != nil {
		return err
	}
	e.UpdatedAt = s.now().UTC().Truncate(time.Second)
	fe := fileEntry{Version: entryVersion, Entry: *e}
	switch e.Storage {
	case StorageKeyring:
		sec, err := json.Marshal(secrets{AccessToken: e.AccessToken, RefreshToken: e.RefreshToken, IDToken: e.IDToken})
		if err != nil {
			return fmt.Errorf("encoding tokens: %w", err)
		}
		if err := s.keyring.Set(keyringService, e.APIURL, string(sec)); err != nil {
			return keyringError("storing tokens in", err)
		}
		fe.AccessToken, fe.RefreshToken, fe.IDToken = "", "", ""
	case StorageFile:
		// Moving from the keyring to a file: the keyring copy is now stale.
		if prev, err := s.LoadMetadata(e.APIURL); err == nil && prev.Storage == StorageKeyring {
			_ = s.keyring.Delete(keyringService, e.APIURL)
		}
	default:
		return fmt.Errorf("tokenstore: unknown storage %q", e.Storage)
	}
	data, err := json.MarshalIndent(fe, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding tokens: %w", err)
	}
	return writeFileAtomic(s.Path(e.APIURL), append(data, '\n'))
}

// Delete removes apiURL's entry, and its keyring item when it has one. It
// reports whether there was an entry; a missing entry is not an error.
func (s *Store) Delete(apiURL string) (bool, error) {
	e, err := s.LoadMetadata(apiURL)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err == nil && e.Storage == StorageKeyring:
		if err := s.keyring.Delete(keyringService, apiURL); err != nil && !errors.Is(err, ErrNotFound) {
			return false, keyringError("deleting tokens from", err)
		}
	}
	// A file we refuse to read (insecure, corrupt) is still ours to remove:
	// os.Remove unlinks a symbolic link itself, not its target.
	if err := os.Remove(s.Path(apiURL)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("deleting tokens: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return true, fmt.Errorf("deleting tokens: %w", err)
	}
	return true, nil
}

// Lock takes the cross-process lock for apiURL's entry, waiting until ctx
// ends. Hold it from reading an entry to writing its replacement. The
// returned function releases it.
func (s *Store) Lock(ctx context.Context, apiURL string) (unlock func(), err error) {
	if err := s.checkDir(true); err != nil {
		return nil, err
	}
	return lockFile(ctx, s.lockPath(apiURL))
}
