// Package authn verifies OAuth 2.0 bearer access tokens that are JWTs
// (RFC 9068, RFC 8725) and offers a Connect interceptor that guards any
// Connect service with them.
//
// A [Verifier] checks a token's signature against a [KeySet] (usually a
// [RemoteKeySet] that caches the provider's JWKS), then its issuer, audience
// and validity times. An [Interceptor] reads the `Authorization: Bearer`
// header, calls a [TokenVerifier] and stores the resulting [Claims] in the
// request context, where handlers find them with [ClaimsFromContext].
package authn
