package config

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/seal"
)

// The secret key seals the built-in provider's secrets at rest. The key
// itself is read from the environment or a file, never from argv.
var (
	sSecretKey          = setting{"", []string{"NSAUTH_SECRET_KEY"}, "", ""} // secrets never come from argv
	sSecretKeyFile      = setting{"secret-key-file", []string{"NSAUTH_SECRET_KEY_FILE"}, "", "built-in provider: file holding the key that seals secrets in the database (32 random bytes, base64); with SQLite the default is secret.key in the data directory, made at first start"}
	sOldSecretKey       = setting{"", []string{"NSAUTH_OLD_SECRET_KEY"}, "", ""} // secrets never come from argv
	sOldSecretKeyFile   = setting{"old-secret-key-file", []string{"NSAUTH_OLD_SECRET_KEY_FILE"}, "", "built-in provider: file holding the previous secret key while it is rotated (see nsauth keys rotate-secret-key)"}
	secretKeySettings   = "NSAUTH_SECRET_KEY or NSAUTH_SECRET_KEY_FILE"
	makeSecretKeyAdvice = "32 random bytes in base64, made with `nsauth keys generate-secret-key` or `openssl rand -base64 32`"
)

// secretKeyFlagged are the flags of the secret key settings.
var secretKeyFlagged = []setting{sSecretKeyFile, sOldSecretKeyFile}

// maxKeyFileBytes bounds what is read from a key file: a key is 44 bytes
// of base64 and a newline.
const maxKeyFileBytes = 4 << 10

// DefaultSecretKeyFile is the name, in the SQLite data directory, of the
// secret key file made at first start when no key is configured.
const DefaultSecretKeyFile = "secret.key"

// SecretKeys are the keys that seal the built-in provider's secrets (its
// private signing keys, the broker's client secret, the keys of auth
// requests and device cookies) in the database.
type SecretKeys struct {
	// Current seals, and opens (NSAUTH_SECRET_KEY or
	// NSAUTH_SECRET_KEY_FILE). Nil when neither is set: required with
	// PostgreSQL; with SQLite the server then uses DefaultSecretKeyFile in
	// the data directory, made at first start.
	Current *seal.Key
	// Old opens values sealed before a rotation, and never seals
	// (NSAUTH_OLD_SECRET_KEY or NSAUTH_OLD_SECRET_KEY_FILE). Nil when not
	// rotating.
	Old *seal.Key
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
	var errs []error
	bad := func(s setting, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", s.name(), fmt.Sprintf(format, args...)))
	}
	keys := &SecretKeys{}
	loadSecretKeys(src, keys, bad)
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return keys, nil
}

func loadSecretKeys(src source, keys *SecretKeys, bad func(setting, string, ...any)) {
	keys.Current = loadKey(src, sSecretKey, sSecretKeyFile, bad)
	keys.Old = loadKey(src, sOldSecretKey, sOldSecretKeyFile, bad)
	if keys.Old != nil && keys.Current == nil {
		bad(sOldSecretKey, "is the key being replaced: give the new one too, in %s", secretKeySettings)
	}
}

// loadKey reads a key given as text in one setting or in a file named by
// another.
func loadKey(src source, text, file setting, bad func(setting, string, ...any)) *seal.Key {
	v, vSet := src.get(text)
	path, pathSet := src.get(file)
	switch {
	case vSet && pathSet:
		bad(file, "cannot be combined with %s: give the key one way", text.name())
		return nil
	case vSet:
		k, err := seal.ParseKey(v)
		if err != nil {
			bad(text, "%v", err)
			return nil
		}
		return k
	case pathSet:
		k, err := ReadSecretKeyFile(path)
		if err != nil {
			bad(file, "%v", err)
			return nil
		}
		return k
	}
	return nil
}

// ReadSecretKeyFile reads a key file: the key as NSAUTH_SECRET_KEY holds
// it, optionally followed by a newline. Errors name the file, never the
// key.
func ReadSecretKeyFile(path string) (*seal.Key, error) {
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
		return nil, fmt.Errorf("the key file %s is larger than a key: want %s", path, makeSecretKeyAdvice)
	}
	k, err := seal.ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("the key file %s %v", path, err)
	}
	return k, nil
}

// SecretKeySettings names the settings of the secret key, for messages.
func SecretKeySettings() string { return secretKeySettings }

// OldSecretKeySettings names the settings of the previous secret key, for
// messages.
func OldSecretKeySettings() string { return "NSAUTH_OLD_SECRET_KEY or NSAUTH_OLD_SECRET_KEY_FILE" }
