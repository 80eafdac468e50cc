// Package tokenstore reads and writes the tokens `nsauth login` stores: one
// entry per account of each API URL, so several servers, and several users
// of one server, can be used side by side. It is the storage format that
// `nsauth` and [github.com/nsauth/nsauth/pkg/tokensource] share; a program that only needs a token should use tokensource, which
// also refreshes it. Use this package to find out whether the user is
// logged in to an API URL, or to store or forget a login.
//
// Each account is keyed by its user's issuer and subject ([Account.ID]) and
// shown by a name from the ID token ([Account.Name]). One account per
// server is active: methods without an account argument ([Store.Load],
// [Store.Save], [Store.Delete]) use it, as does tokensource by default, so
// programs written for one entry per server keep working. `nsauth login`
// makes the account it logs in to active, [Store.SetActive] any other.
//
// Entries live in <dir>/tokens/, a directory only its owner can enter
// (0700): per server, a directory holding one file per account and an
// index naming the active one. Each is a JSON file, with a format version,
// written atomically (temporary file, fsync, rename, fsync of the
// directory) with mode 0600. A store written before accounts, one file per
// server, is read as that server's only, active, account and is moved to
// this layout on the next write. Reading refuses a file that is a symbolic
// link, belongs to another user or is accessible by group or others: such
// a file may have been planted or exposed, and silently using (or
// "fixing") it would hide that.
//
// With [StorageKeyring] the secrets (access, refresh and ID tokens) go to the
// operating system's keyring and the file keeps only non-secret metadata, so
// every command still finds out where an entry's secrets are. A keyring that
// cannot be reached is an error, never a reason to write secrets to a file.
//
// [Store.Lock] takes a cross-process lock per server (for all its
// accounts, as before accounts), held around a refresh so that concurrent
// processes make one refresh call between them and never lose a rotated
// refresh token.
package tokenstore
