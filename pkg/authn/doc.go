// Package authn verifies OAuth 2.0 bearer access tokens that are JWTs
// (RFC 9068, RFC 8725) or opaque (RFC 7662 introspection), and offers a
// Connect interceptor that guards any Connect service with them.
//
// [NewProvider] reads a provider's discovery document from its issuer URL
// (with package oidcdiscovery) and returns a [Provider]: the issuer and a
// [RemoteKeySet] that caches its JWKS. [Provider.Verifier] returns a
// [Verifier] for a [Config] that holds policy only (audiences, algorithms,
// clock); the Verifier checks a token's signature against the provider's
// keys, then its issuer, audience and validity times.
// [NewProviderWithKeys] is for keys found without discovery. An
// [Introspector] asks the provider about
// opaque tokens, and a [ChainVerifier] combines both. A JWT is good until
// it expires unless the Verifier is given a [RevocationChecker], such as a
// [RevocationSet] the service keeps current from its provider.
//
// An [Interceptor], built by [NewInterceptorFromConfig] from an
// [InterceptorConfig], reads the `Authorization: Bearer` header, calls a
// [TokenVerifier] and stores the resulting [Claims] in the request context,
// where handlers find them with [ClaimsFromContext]. [Claims.Decode] reads
// the claims this package does not name (roles, email, tenant) into the
// caller's own struct. Every verification returns Claims of the caller's
// own, never a value shared with the cache or with other requests.
// [Claims.Machine] tells a program's own token (client credentials: `sub`
// equals `client_id`, RFC 9068 §2.2) from a person's.
//
// The default HTTP clients (package noredirect) do not follow redirects: a
// redirected discovery document, JWKS or introspection answer is an error,
// so that a token and the client's credentials are never posted to another
// server.
//
// [NewFromIssuer], [NewVerifier] with [VerifierConfig], [Discover] with its
// [ProviderMetadata], and [NewInterceptor] with its options are deprecated
// and kept for one release: they are wrappers over the names above.
package authn
