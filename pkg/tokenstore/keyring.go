package tokenstore

import (
	"errors"
	"fmt"

	"github.com/zalando/go-keyring"
)

// keyringService is the service name under which entries are stored in the
// OS keyring; see keyringUser for the item's user name.
const keyringService = "nsauth"

// Keyring is the part of an OS keyring the store uses. Get and Delete
// return an error wrapping ErrNotFound for a missing item. The store keeps
// each entry's secrets under the service "nsauth", with "<normalized API
// URL>#<account ID>" as the user (the API URL alone in a store written
// before accounts). Tests pass an in-memory implementation; programs
// normally leave it to [SystemKeyring].
type Keyring interface {
	Get(service, user string) (string, error)
	Set(service, user, secret string) error
	Delete(service, user string) error
}

// SystemKeyring is the operating system's keyring: the Secret Service
// (GNOME Keyring, KWallet) over D-Bus on Linux and BSD, the Keychain on
// macOS, the Credential Manager on Windows.
type SystemKeyring struct{}

// Get implements Keyring.
func (SystemKeyring) Get(service, user string) (string, error) {
	s, err := keyring.Get(service, user)
	return s, mapKeyringError(err)
}

// Set implements Keyring.
func (SystemKeyring) Set(service, user, secret string) error {
	return mapKeyringError(keyring.Set(service, user, secret))
}

// Delete implements Keyring.
func (SystemKeyring) Delete(service, user string) error {
	return mapKeyringError(keyring.Delete(service, user))
}

func mapKeyringError(err error) error {
	if errors.Is(err, keyring.ErrNotFound) {
		return fmt.Errorf("keyring item: %w", ErrNotFound)
	}
	return err
}

// ErrKeyringUnavailable wraps every failure to use the OS keyring other
// than a missing item.
var ErrKeyringUnavailable = errors.New("the OS keyring is not available")

func keyringError(action string, err error) error {
	return fmt.Errorf("%s the OS keyring: %w (%v); on Linux a Secret Service such as GNOME Keyring or KWallet must be running and unlocked; to store tokens in a 0600 file instead, log in without --keyring", action, ErrKeyringUnavailable, err)
}

// CheckKeyring reports whether the OS keyring can be used, by looking up
// apiURL's item: a missing item is fine, any other failure is returned
// wrapping ErrKeyringUnavailable. `nsauth login --keyring` calls it before
// sending anyone to a browser.
func (s *Store) CheckKeyring(apiURL string) error {
	if _, err := s.keyring.Get(keyringService, apiURL); err != nil && !errors.Is(err, ErrNotFound) {
		return keyringError("using", err)
	}
	return nil
}
