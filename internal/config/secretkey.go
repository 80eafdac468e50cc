package config

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/seal"
)

// The secret key seals the built-in provider's secrets at rest. The key
// itself is read from the environment or a file, never from argv. Either
// may list several keys, newest first, separated by commas (a key file:
// by commas or lines): a server holds them all, so that a rotation can
// give it the new key before the database is sealed again under it.
// The settings themselves are in the table (settings.go).
var (
	secretKeySettings   = sSecretKey.Env[0] + " or " + sSecretKeyFile.Env[0]
	makeSecretKeyAdvice = "32 random bytes in base64, made with `nsauth keys generate-secret-key` or `openssl rand -base64 32`"
)

// secretKeyFlagged are the flags of the secret key settings.
var secretKeyFlagged = []*Setting{sSecretKeyFile, sOldSecretKeyFile}

// maxKeyFileBytes bounds what is read from a key file: a key is 44 bytes
// of base64 and a newline, and a file lists a few.
const maxKeyFileBytes = 4 << 10

// DefaultSecretKeyFile is the name, in the SQLite data directory, of the
// secret key file made at first start when no key is configured.
const DefaultSecretKeyFile = "secret.key"

// SecretKeys are the keys that seal the built-in provider's secrets (its
// private signing keys, the broker's client secret, the keys of auth
// requests and device cookies) in the database.
type SecretKeys struct {
	// Listed are the keys of NSAUTH_SECRET_KEY, or of the file
	// NSAUTH_SECRET_KEY_FILE names, newest first. All open; the first is
	// the one `nsauth keys rotate-secret-key` moves the database to, and
	// the database says which one seals. Empty when neither is set:
	// required with PostgreSQL; with SQLite the server then uses
	// DefaultSecretKeyFile in the data directory, made at first start.
	Listed []*seal.Key
	// File is NSAUTH_SECRET_KEY_FILE when Listed came from it: a server
	// reads it again when it changes, so a rotation reaches servers that
	// run without restarting them.
	File string
	// Old open values sealed before a rotation, and never seal
	// (NSAUTH_OLD_SECRET_KEY or NSAUTH_OLD_SECRET_KEY_FILE, which may list
	// several too). Listing them after the new key in NSAUTH_SECRET_KEY
	// does the same.
	Old []*seal.Key
}

// Current is the first key listed, or nil when none is.
func (k SecretKeys) Current() *seal.Key {
	if len(k.Listed) == 0 {
		return nil
	}
	return k.Listed[0]
}

// RegisterSecretKeyFlags adds --secret-key-file and --old-secret-key-file
// to fs.
func RegisterSecretKeyFlags(fs *pflag.FlagSet) {
	registerFlags(fs, secretKeyFlagged)
}

// LoadSecretKeys reads the secret key settings; fs holds flags added by
// [RegisterSecretKeyFlags] and may be nil. Errors name the setting and
// never contain a key.
func LoadSecretKeys(fs *pflag.FlagSet, getenv func(string) (string, bool)) (*SecretKeys, error) {
	src := source{fs: fs, getenv: getenv}
	bad, result := collect()
	keys := &SecretKeys{}
	loadSecretKeys(src, keys, bad)
	if err := result(); err != nil {
		return nil, err
	}
	return keys, nil
}

func loadSecretKeys(src source, keys *SecretKeys, bad badFunc) {
	keys.Listed, keys.File = loadKeys(src, sSecretKey, sSecretKeyFile, bad)
	keys.Old, _ = loadKeys(src, sOldSecretKey, sOldSecretKeyFile, bad)
	if len(keys.Old) > 0 && len(keys.Listed) == 0 {
		bad(sOldSecretKey, "is the key being replaced: give the new one too, in %s", secretKeySettings)
	}
}

// loadKeys reads keys given as text in one setting or in a file named by
// another, and the file's path when they came from one.
func loadKeys(src source, text, file *Setting, bad badFunc) ([]*seal.Key, string) {
	v, vSet := src.get(text)
	path, pathSet := src.get(file)
	switch {
	case vSet && pathSet:
		bad(file, "cannot be combined with %s: give the keys one way", text.Name())
	case vSet:
		keys, err := seal.ParseKeys(v)
		if err != nil {
			bad(text, "%v", err)
			return nil, ""
		}
		return keys, ""
	case pathSet:
		keys, err := ReadSecretKeyFile(path)
		if err != nil {
			bad(file, "%v", err)
			return nil, ""
		}
		return keys, path
	}
	return nil, ""
}

// ReadSecretKeyFile reads a key file: the keys as NSAUTH_SECRET_KEY holds
// them, or one per line, newest first. Errors name the file, never a key.
func ReadSecretKeyFile(path string) ([]*seal.Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the key file %s: %w", path, err)
	}
	if len(b) > maxKeyFileBytes {
		return nil, fmt.Errorf("the key file %s is larger than a few keys: want %s, one per line", path, makeSecretKeyAdvice)
	}
	keys, err := seal.ParseKeys(string(b))
	if err != nil {
		return nil, fmt.Errorf("the key file %s: %v", path, err)
	}
	return keys, nil
}

// SecretKeySettings names the settings of the secret key, for messages.
func SecretKeySettings() string { return secretKeySettings }

// OldSecretKeySettings names the settings of the previous secret key, for
// messages.
func OldSecretKeySettings() string { return sOldSecretKey.Env[0] + " or " + sOldSecretKeyFile.Env[0] }
