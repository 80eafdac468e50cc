// Package tokenstore reads and writes the tokens `nsauth login` stores: one
// entry per API URL, so several servers can be used side by side. It is
// the storage format that `nsauth` and [github.com/nsauth/nsauth/pkg/tokensource]
// share; a program that only needs a token should use tokensource, which
// also refreshes it. Use this package to find out whether the user is
// logged in to an API URL, or to store or forget a login.
//
// Entries live in <dir>/tokens/, a directory only its owner can enter
// (0700). Each is a JSON file written atomically (temporary file, fsync,
// rename, fsync of the directory) with mode 0600. Reading refuses a file
// that is a symbolic link, belongs to another user or is accessible by
// group or others: such a file may have been planted or exposed, and
// silently using (or "fixing") it would hide that.
//
// With [StorageKeyring] the secrets (access, refresh and ID tokens) go to the
// operating system's keyring and the file keeps only non-secret metadata, so
// every command still finds out where an entry's secrets are. A keyring that
// cannot be reached is an error, never a reason to write secrets to a file.
//
// [Store.Lock] takes a cross-process lock per entry, held around a refresh so
// that concurrent processes make one refresh call between them and never
// lose a rotated refresh token.
package tokenstore
