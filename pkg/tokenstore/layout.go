package tokenstore

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
)

// layout names the files of a token directory. Each server has a stem
// ([fileStem]); its accounts' files and its index live in <dir>/<stem>/
// (format 2), its one entry before accounts lived in <dir>/<stem>.json
// (format 1), and <dir>/<stem>.lock serializes the writers of both. Only
// names are computed here; reading and writing stay with the Store.
type layout struct {
	// dir is the token directory, <config dir>/tokens.
	dir string
}

// checkDir checks the token directory, creating it (mode 0700, parents
// included) when create is set. A missing directory with create unset is
// ErrNotFound.
func (l layout) checkDir(create bool) error { return checkPrivateDir(l.dir, create) }

// serverDir holds one server's account files and its index.
func (l layout) serverDir(apiURL string) string {
	return filepath.Join(l.dir, fileStem(apiURL))
}

// accountPath is the file of apiURL's account id.
func (l layout) accountPath(apiURL, id string) string {
	return filepath.Join(l.serverDir(apiURL), id+".json")
}

// indexPath is the file that records apiURL's active account.
func (l layout) indexPath(apiURL string) string {
	return filepath.Join(l.serverDir(apiURL), indexFile)
}

// legacyPath is the one entry file of a server in format 1, before
// accounts.
func (l layout) legacyPath(apiURL string) string {
	return filepath.Join(l.dir, fileStem(apiURL)+".json")
}

// lockPath is the server's lock, the same for all its accounts and as it
// was before accounts: an older nsauth refreshing at the same time still
// excludes a newer one.
func (l layout) lockPath(apiURL string) string {
	return filepath.Join(l.dir, fileStem(apiURL)+".lock")
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
