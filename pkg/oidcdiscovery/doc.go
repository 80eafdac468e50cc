// Package oidcdiscovery reads an OpenID provider's discovery document
// (OpenID Connect Discovery 1.0 §4, RFC 8414 §3) and checks it can be
// trusted: the one place nsauth, its verifier and its token sources learn
// where a provider's endpoints are.
//
// [Discover] fetches issuer + "/.well-known/openid-configuration" with a
// client that follows no redirects, reads at most 1 MiB as one JSON object
// with no repeated member, and refuses a document that names another
// issuer ([*IssuerMismatchError]) or, for an https issuer, an endpoint
// that is not https ([ErrInsecureEndpoint]): either would let a document
// send tokens and credentials somewhere the issuer did not vouch for.
//
// Errors follow one contract. Those matching [ErrUnavailable] mean the
// provider could not answer now (unreachable, HTTP 5xx or 429, a broken
// answer); retrying may help. All others mean the issuer URL or the
// provider's configuration is wrong, and retrying does not. No error
// quotes the body of an answer: it is the provider's text, perhaps a web
// page, and not ours to repeat.
package oidcdiscovery
