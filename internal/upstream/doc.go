// Package upstream is the OpenID Connect provider as the broker sees it: its
// discovery document (fetched once, refreshed in the background), and the
// calls the AuthService makes to it: building authorize URLs, exchanging
// codes, refreshing and revoking tokens, and device logins (RFC 8628: one
// device authorization request, then one token request per poll).
//
// Errors are plain Go errors classified by three sentinels: [ErrNotReady]
// (discovery has not succeeded yet), [ErrUnavailable] (the provider could not
// be reached or answered garbage) and [ErrRejected] (the provider refused the
// request; [RejectedError] carries its RFC 6749 error code). No error from
// this package contains a token, code, secret or provider response body.
package upstream
