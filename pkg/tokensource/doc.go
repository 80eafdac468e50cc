// Package tokensource gives Go programs access tokens as
// [oauth2.TokenSource] values: a person's, stored by `nsauth login` ([New]),
// or a program's own, from the provider's token endpoint: a machine
// client's with the client credentials grant ([NewClientCredentials]), or a
// CI job's by exchanging its ID token ([NewTokenExchange]). `nsauth token`
// is built on them. Every source reuses a token until it has less than its
// margin of life left, and is safe for concurrent use.
//
// [New] refreshes the stored token through the server's RefreshCli RPC
// when it is about to expire.
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
//
// The machine sources keep their tokens in memory only. They find the
// token endpoint with [Discover] from an issuer URL (or are given it), and
// report a provider's refusal as a [*TokenEndpointError] whose ErrorCode
// says why; their errors never contain a secret or a token.
package tokensource
