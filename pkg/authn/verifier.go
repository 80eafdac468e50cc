package authn

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// ErrInvalidToken is wrapped by every error that means "this token must not
// be accepted". Its detail is for logs; clients should only learn that the
// token was refused.
var ErrInvalidToken = errors.New("invalid token")

// ErrTokenExpired is matched by the error for a token that is well formed
// and correctly signed but expired. Such errors also match
// [ErrInvalidToken].
var ErrTokenExpired = errors.New("token expired")

// ErrUnavailable is matched by errors that mean the token could not be
// judged right now (no keys, introspection endpoint down). Callers should
// answer "unavailable", not "unauthenticated".
var ErrUnavailable = errors.New("authn: token verification is unavailable")

// ErrKeysUnavailable reports that no verification keys could be obtained:
// the JWKS has never been fetched successfully. It matches [ErrUnavailable].
var ErrKeysUnavailable = fmt.Errorf("%w: no verification keys", ErrUnavailable)

// check names the rule that refused a token: a small fixed vocabulary for
// logs and tests, so that a test can tell a token refused for its type from
// one that merely failed another check first. Clients never see it: they
// learn only that the token was refused.
type check string

const (
	checkSize      check = "size"          // empty, or longer than the limit
	checkEncoding  check = "encoding"      // not three canonical base64url segments
	checkHeader    check = "header"        // JOSE header malformed, or with a parameter or kid we refuse
	checkAlgorithm check = "algorithm"     // alg outside the allowlist
	checkType      check = "token type"    // not typed as an access token (RFC 9068), or not the kind of token this verifier takes
	checkKey       check = "key"           // no key for the kid, or a key for another algorithm
	checkSignature check = "signature"     // the signature does not verify
	checkClaims    check = "claims"        // payload malformed: not an object, duplicates, wrong types
	checkIssuer    check = "issuer"        // iss is not the expected issuer
	checkSubject   check = "subject"       // sub missing or empty
	checkAudience  check = "audience"      // no accepted aud
	checkExpiry    check = "expiry"        // exp missing or past
	checkNotYet    check = "not yet valid" // nbf or iat in the future
	checkInactive  check = "inactive"      // the introspection endpoint says so
	checkRevoked   check = "revoked"       // the configured RevocationChecker says so
)

// refusal is a token that must not be accepted.
type refusal struct {
	check  check
	reason string
	// permanent refusals depend only on the token's bytes and the
	// configuration (or, for expiry, on time moving forward), so they may be
	// cached; others (an unknown key, a token not valid yet) may change.
	permanent bool
	expired   bool
}

func (r *refusal) Error() string { return "invalid token: " + r.reason }

func (r *refusal) Is(target error) bool {
	return target == ErrInvalidToken || (r.expired && target == ErrTokenExpired)
}

func invalid(c check, format string, args ...any) error {
	return &refusal{check: c, reason: fmt.Sprintf(format, args...), permanent: true}
}

func invalidForNow(c check, format string, args ...any) error {
	return &refusal{check: c, reason: fmt.Sprintf(format, args...)}
}

// refusedBy returns the check that refused a token, or "" when err is not a
// refusal of this package.
func refusedBy(err error) check {
	var r *refusal
	if errors.As(err, &r) {
		return r.check
	}
	return ""
}

// RefusedCheck names the check that refused a token, for a caller that
// must tell refusals apart (an audit trail's reason, a relying party that
// answers a wrong issuer otherwise than an expired ID token). It returns
// one of "size", "encoding", "header", "algorithm", "token type", "key",
// "signature", "claims", "issuer", "subject", "audience", "expiry",
// "not yet valid", "inactive" and "revoked", or "" when err is not a
// refusal of this package (nil, or an error matching [ErrUnavailable]).
// Checks run in that order, the signature before any claim, so a forged
// token is never reported as having a wrong issuer. The names are for
// programs and logs; what a client is told stays "invalid token".
func RefusedCheck(err error) string { return string(refusedBy(err)) }

// TokenVerifier checks a raw bearer token and returns its claims. The
// verifiers of this package ([Verifier], [Introspector], [ChainVerifier])
// return Claims that belong to the caller: never a value shared with the
// cache or with other calls.
type TokenVerifier interface {
	Verify(ctx context.Context, rawToken string) (*Claims, error)
}

// Defaults for [VerifierConfig].
const (
	// DefaultClockSkew is the tolerance applied to `exp`, `nbf` and `iat`
	// when VerifierConfig.ClockSkew is zero.
	DefaultClockSkew = 60 * time.Second
	// DefaultMaxTokenBytes is the longest token accepted when
	// VerifierConfig.MaxTokenBytes (or IntrospectorConfig.MaxTokenBytes) is
	// zero: 16 KiB.
	DefaultMaxTokenBytes = 16 << 10
	// DefaultAlgorithm is the one signature algorithm accepted when
	// VerifierConfig.Algorithms is empty (and, with [NewFromIssuer], the
	// discovery document names none that a verifier accepts).
	DefaultAlgorithm = "RS256"
)

// asymmetricAlgorithms are the only algorithms a verifier may be configured
// with. "none" and the HMAC family are absent on purpose: an access token is
// signed by the provider's private key and nothing else (RFC 8725 §3.1).
var asymmetricAlgorithms = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// SupportedAlgorithms returns the signature algorithms a verifier accepts in
// its allowlist.
func SupportedAlgorithms() []string { return slices.Clone(asymmetricAlgorithms) }

// allowedHeaders are the JOSE header parameters a token may carry. Anything
// else is refused: `jku`, `x5u`, `jwk` and `x5c` would let the token choose
// its own key, `crit` demands extensions we do not implement, `zip`, `enc`
// and `cty` mean compressed, encrypted or nested tokens.
var allowedHeaders = map[string]bool{"alg": true, "kid": true, "typ": true, "x5t": true, "x5t#S256": true}

// VerifierConfig configures a [Verifier] built by [NewVerifier] or
// [NewFromIssuer], which read its fields differently (Issuer, KeySet,
// HTTPClient).
//
// Deprecated: use [Config] with [Provider.Verifier]: the issuer and the
// key set are the [Provider]'s, and the HTTP client is [ProviderConfig]'s.
type VerifierConfig struct {
	// Issuer is the exact `iss` tokens must carry. Required, except with
	// [NewFromIssuer], which sets it.
	Issuer string
	// Audiences are the accepted `aud` values; a token must name at least one
	// of them. Required.
	Audiences []string
	// Algorithms is the allowlist of signature algorithms. Defaults to RS256.
	// Only asymmetric algorithms are allowed (see [SupportedAlgorithms]).
	Algorithms []string
	// KeySet supplies verification keys. Required, except with
	// [NewFromIssuer], which builds it and wants it nil.
	KeySet KeySet
	// ClockSkew is the tolerance applied to `exp`, `nbf` and `iat`.
	// Defaults to 60 s; negative values mean none.
	ClockSkew time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// MaxTokenBytes rejects longer tokens before any parsing. Defaults to
	// 16 KiB.
	MaxTokenBytes int
	// RequireAccessTokenType accepts only tokens whose `typ` header is
	// `at+jwt` (RFC 9068), which tells access tokens from ID tokens. Leave it
	// off for providers that do not set it.
	RequireAccessTokenType bool
	// IDTokens makes the verifier one of OpenID Connect ID tokens, for a
	// relying party: see [Config].IDTokens.
	IDTokens bool
	// CacheEntries bounds the cache of verification results, keyed by a
	// SHA-256 of the token. A cached acceptance lasts until the token expires
	// or the key set changes; a cached refusal is kept only when it cannot
	// change (bad signature, malformed, expired). Entries that expired are
	// dropped as new ones come, so the cache holds about as many as there
	// are live tokens, never more than CacheEntries. Defaults to
	// [DefaultCacheEntries]; negative disables caching. Caching needs a
	// KeySet with a Generation method, such as [RemoteKeySet].
	CacheEntries int
	// OnCacheLookup, when set, is told of each lookup in the result cache:
	// hit is true when a cached result answered without verifying, false
	// when the token was verified (and perhaps cached). It is called on
	// the verifying goroutine and must be fast and safe for concurrent
	// use: a counter for metrics. Lookups that bypass the cache (caching
	// disabled, an oversized token) are not told. Nil tells nothing.
	OnCacheLookup func(hit bool)
	// Revocations, when set, is asked about every token the verifier would
	// accept, cached results included (see [RevocationChecker]); a token it
	// reports revoked is refused with an error matching [ErrInvalidToken].
	// Nil means tokens are good until they expire.
	Revocations RevocationChecker
	// HTTPClient is used by [NewFromIssuer] for the discovery document and
	// the JWKS of the key set it builds. [NewVerifier] makes no request and
	// ignores it: a KeySet makes its own. Defaults to a client with a 10 s
	// timeout that does not follow redirects.
	HTTPClient *http.Client
}

// Verifier verifies JWT access tokens. It is safe for concurrent use.
type Verifier struct {
	cfg   VerifierConfig
	audOK map[string]bool
	cache *resultCache    // nil when disabled
	keys  cacheableKeySet // the key set, when results may be cached
	// rsaKeys holds the key set's RSA keys prepared for verification.
	rsaKeys rsaKeys
}

// NewVerifier validates cfg and returns a Verifier.
//
// Deprecated: use [NewProviderWithKeys] (or [NewProvider]) and
// [Provider.Verifier], whose [Config] holds policy only.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) { return newVerifier(cfg) }

func newVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("authn: an issuer is required")
	}
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("authn: at least one audience is required")
	}
	if cfg.KeySet == nil {
		return nil, errors.New("authn: a key set is required")
	}
	if cfg.IDTokens && cfg.RequireAccessTokenType {
		return nil, errors.New("authn: a verifier of ID tokens cannot require the access token type")
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{DefaultAlgorithm}
	}
	if err := checkAlgorithms(cfg.Algorithms); err != nil {
		return nil, err
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = DefaultClockSkew
	} else if cfg.ClockSkew < 0 {
		cfg.ClockSkew = 0
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxTokenBytes <= 0 {
		cfg.MaxTokenBytes = DefaultMaxTokenBytes
	}
	audOK := make(map[string]bool, len(cfg.Audiences))
	for _, a := range cfg.Audiences {
		audOK[a] = true
	}
	v := &Verifier{cfg: cfg, audOK: audOK}
	if ks, ok := cfg.KeySet.(cacheableKeySet); ok && cfg.CacheEntries >= 0 {
		if cfg.CacheEntries == 0 {
			cfg.CacheEntries = DefaultCacheEntries
		}
		v.keys, v.cache = ks, newResultCache(cfg.CacheEntries)
	}
	return v, nil
}

// checkAlgorithms checks names against the allowlist.
func checkAlgorithms(names []string) error {
	for _, a := range names {
		if !slices.Contains(asymmetricAlgorithms, a) {
			return fmt.Errorf("authn: signature algorithm %q is not allowed (allowed: %s)", a, strings.Join(asymmetricAlgorithms, ", "))
		}
	}
	return nil
}

// Verify checks rawToken and returns its claims. The Claims are the
// caller's own (a cached result is copied), so they may be changed without
// affecting other calls. Errors match
// [ErrInvalidToken] (and [ErrTokenExpired] for expiry) when the token is
// refused, or [ErrUnavailable] when no keys can be had to judge it. The
// signature is checked before any claim, so a forged token is never
// reported as merely expired. A token that passes every check is still
// refused when VerifierConfig.Revocations reports it revoked.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (*Claims, error) {
	claims, err := v.verifyCached(ctx, rawToken)
	if err == nil && v.cfg.Revocations != nil && v.cfg.Revocations.Revoked(ctx, claims) {
		return nil, errRevoked
	}
	return claims, err
}

// errRevoked refuses a revoked token. It is never cached: the positive
// result stays in the cache, and the checker is asked again on every call.
var errRevoked error = &refusal{check: checkRevoked, reason: "token was revoked"}

func (v *Verifier) verifyCached(ctx context.Context, rawToken string) (*Claims, error) {
	if v.cache == nil || len(rawToken) > v.cfg.MaxTokenBytes {
		return v.verify(ctx, rawToken)
	}
	key := tokenKey(rawToken)
	now := v.cfg.Now()
	gen := v.keys.Generation()
	if e := v.cache.get(key, now); e != nil {
		if e.claims == nil {
			v.lookedUp(true)
			return nil, e.err
		}
		if e.generation == gen {
			v.lookedUp(true)
			return e.claims.clone(), nil
		}
		// The key set changed since: the signing key may be gone.
	}
	v.lookedUp(false)
	claims, err := v.verify(ctx, rawToken)
	var r *refusal
	switch {
	case err == nil:
		// Record the generation seen before verifying: if the set changed
		// meanwhile, the entry is simply checked again next time. The entry
		// lives no longer than the token, nor than the key set may be
		// trusted without a refetch, so a removed key is noticed.
		expires := claims.ExpiresAt.Add(v.cfg.ClockSkew)
		if fresh := v.keys.FreshUntil(); fresh.Before(expires) {
			expires = fresh
		}
		v.cache.put(&cacheEntry{key: key, claims: claims, expires: expires, generation: gen}, now)
		return claims.clone(), nil
	case errors.As(err, &r) && r.permanent:
		v.cache.put(&cacheEntry{key: key, err: err, expires: now.Add(negativeCacheTTL)}, now)
	}
	return claims, err
}

func (v *Verifier) lookedUp(hit bool) {
	if v.cfg.OnCacheLookup != nil {
		v.cfg.OnCacheLookup(hit)
	}
}

// negativeCacheTTL is how long a permanent refusal is remembered.
const negativeCacheTTL = 10 * time.Minute

func (v *Verifier) verify(ctx context.Context, rawToken string) (*Claims, error) {
	tok, err := v.checkShape(rawToken)
	if err != nil {
		return nil, err
	}
	key, err := v.cfg.KeySet.Lookup(ctx, tok.header.kid)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		return nil, invalidForNow(checkKey, "key lookup: %v", err)
	}
	if key.Algorithm != "" && key.Algorithm != tok.header.alg {
		return nil, invalid(checkKey, "key is for %s, token uses %s", key.Algorithm, tok.header.alg)
	}
	if err := verifySignature(&v.rsaKeys, key.Key, tok.header.alg, tok.signingInput, tok.signature); err != nil {
		return nil, invalid(checkSignature, "signature: %v", err)
	}
	claims, err := parseClaims(tok.payload)
	if err != nil {
		return nil, invalid(checkClaims, "%v", err)
	}
	if err := v.checkClaims(claims); err != nil {
		return nil, err
	}
	return claims, nil
}

type joseHeader struct {
	alg, kid, typ string
}

// checkShape refuses, before any cryptography, what no honest access token
// looks like: oversize input, anything but three canonical base64url
// segments (so JSON serialization, JWE, padding and whitespace all fail
// here), and headers outside the allowlist. What it decodes is all the
// rest of the check reads: the token is decoded once.
func (v *Verifier) checkShape(raw string) (compactJWS, error) {
	var t compactJWS
	if len(raw) > v.cfg.MaxTokenBytes {
		return t, invalid(checkSize, "token is longer than %d bytes", v.cfg.MaxTokenBytes)
	}
	// base64 decoders skip \r and \n, so check the alphabet first, and
	// find the two dots on the way.
	dots, last := 0, 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '.' {
			dots++
			last = i
			continue
		}
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return t, invalid(checkEncoding, "token contains a character outside base64url")
		}
	}
	if dots != 2 {
		return t, invalid(checkEncoding, "token has %d segments, want 3", dots+1)
	}
	first := strings.IndexByte(raw, '.')
	segments := [3]string{raw[:first], raw[first+1 : last], raw[last+1:]}
	// One buffer holds the three decoded segments.
	buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(raw)))
	var decoded [3][]byte
	for i, seg := range segments {
		if seg == "" {
			return t, invalid(checkEncoding, "segment %d is empty", i)
		}
		n, err := base64.RawURLEncoding.Strict().Decode(buf, []byte(seg))
		if err != nil {
			return t, invalid(checkEncoding, "segment %d is not canonical base64url", i)
		}
		decoded[i], buf = buf[:n:n], buf[n:]
	}
	t.signingInput, t.payload, t.signature = raw[:last], decoded[1], decoded[2]
	members, err := decodeObject(decoded[0])
	if err != nil {
		return t, invalid(checkHeader, "header: %v", err)
	}
	for name := range members {
		if !allowedHeaders[name] {
			return t, invalid(checkHeader, "header parameter %q is not accepted", name)
		}
	}
	h := &t.header
	if h.alg, err = stringClaim(members, "alg"); err != nil {
		return t, invalid(checkHeader, "header: %v", err)
	}
	if h.kid, err = stringClaim(members, "kid"); err != nil {
		return t, invalid(checkHeader, "header: %v", err)
	}
	if !validKeyID(h.kid) {
		return t, invalid(checkHeader, "header has an unacceptable key id")
	}
	if h.typ, err = stringClaim(members, "typ"); err != nil {
		return t, invalid(checkHeader, "header: %v", err)
	}
	if !slices.Contains(v.cfg.Algorithms, h.alg) {
		return t, invalid(checkAlgorithm, "algorithm %q is not allowed", h.alg)
	}
	switch strings.ToLower(h.typ) {
	case "at+jwt", "application/at+jwt":
		if v.cfg.IDTokens {
			return t, invalid(checkType, "token type %q is an access token, not an ID token", h.typ)
		}
	case "", "jwt":
		if v.cfg.RequireAccessTokenType {
			return t, invalid(checkType, "token type %q is not an access token", h.typ)
		}
	default:
		if v.cfg.IDTokens {
			return t, invalid(checkType, "token type %q is not an ID token", h.typ)
		}
		return t, invalid(checkType, "token type %q is not an access token", h.typ)
	}
	return t, nil
}

// validKeyID accepts the key ids providers use (printable ASCII, bounded)
// and nothing that could be a lookup-storm or injection vehicle.
func validKeyID(kid string) bool {
	if len(kid) > 128 {
		return false
	}
	for i := 0; i < len(kid); i++ {
		if kid[i] < 0x21 || kid[i] > 0x7e {
			return false
		}
	}
	return true
}

func (v *Verifier) checkClaims(c *Claims) error {
	if c.Issuer != v.cfg.Issuer {
		return invalid(checkIssuer, "issuer %q is not the expected issuer", c.Issuer)
	}
	if c.Subject == "" {
		return invalid(checkSubject, "subject is missing")
	}
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return v.audOK[a] }) {
		return invalid(checkAudience, "audience %q is not accepted", c.Audience)
	}
	now := v.cfg.Now()
	skew := v.cfg.ClockSkew
	if c.ExpiresAt.IsZero() {
		return invalid(checkExpiry, "expiry is missing")
	}
	if now.After(c.ExpiresAt.Add(skew)) {
		return &refusal{check: checkExpiry, reason: "expired at " + c.ExpiresAt.Format(time.RFC3339), permanent: true, expired: true}
	}
	if !c.NotBefore.IsZero() && now.Add(skew).Before(c.NotBefore) {
		return invalidForNow(checkNotYet, "token is not valid before %s", c.NotBefore.Format(time.RFC3339))
	}
	if !c.IssuedAt.IsZero() && now.Add(skew).Before(c.IssuedAt) {
		return invalidForNow(checkNotYet, "token was issued in the future (%s)", c.IssuedAt.Format(time.RFC3339))
	}
	return nil
}
