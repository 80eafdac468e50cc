// Package tokensource gives Go programs the access token `nsauth login`
// stored, as an [oauth2.TokenSource], refreshing it through the server's
// RefreshCli RPC when it is about to expire. `nsauth token` is built on it.
//
// A cached token with more than [Config.Margin] of life left is returned
// without any network call. Otherwise the source takes a cross-process lock
// on the stored entry, reads it again (another process may have refreshed
// meanwhile, and then its token is used), and only then calls RefreshCli and
// writes the result. However many processes and goroutines ask at once, one
// refresh call is made and a rotated refresh token is never lost.
//
// A server may have several accounts stored (`nsauth accounts`). A source
// uses [Config.Account], or by default the account active when it first
// reads the store, and keeps to it: refreshes of different accounts never
// mix their tokens, and each account is refreshed once however many
// processes ask.
//
// When the stored tokens cannot be refreshed (none stored, no refresh
// token, or the server rejected it) the error wraps [ErrLoginRequired]: the
// user must run `nsauth login` again. A rejected refresh token is forgotten,
// so later calls fail at once without asking the server again.
package tokensource
