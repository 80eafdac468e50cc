// Package authn verifies OAuth 2.0 bearer access tokens that are JWTs
// (RFC 9068, RFC 8725) or opaque (RFC 7662 introspection), and offers a
// Connect interceptor that guards any Connect service with them.
//
// A [Verifier] checks a token's signature against a [KeySet] (usually a
// [RemoteKeySet] that caches the provider's JWKS), then its issuer, audience
// and validity times. [NewFromIssuer] builds one from the provider's issuer
// URL by discovery ([Discover]). An [Introspector] asks the provider about
// opaque tokens, and a [ChainVerifier] combines both. A JWT is good until
// it expires unless the Verifier is given a [RevocationChecker], such as a
// [RevocationSet] the service keeps current from its provider.
//
// An [Interceptor] reads the `Authorization: Bearer` header, calls a
// [TokenVerifier] and stores the resulting [Claims] in the request context,
// where handlers find them with [ClaimsFromContext]. [Claims.Decode] reads
// the claims this package does not name (roles, email, tenant) into the
// caller's own struct. Every verification returns Claims of the caller's
// own, never a value shared with the cache or with other requests.
// [Claims.Machine] tells a program's own token (client credentials: `sub`
// equals `client_id`, RFC 9068 §2.2) from a person's.
//
// The default HTTP clients do not follow redirects: a redirected discovery
// document, JWKS or introspection answer is an error, so that a token and
// the client's credentials are never posted to another server.
package authn
