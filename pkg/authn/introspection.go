package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
)

// IntrospectorConfig configures an [Introspector].
type IntrospectorConfig struct {
	// URL returns the introspection endpoint (RFC 7662). Required.
	URL func(ctx context.Context) (string, error)
	// ClientID and ClientSecret authenticate the introspection request
	// (HTTP Basic, RFC 7662 §2.1). Leave both empty for endpoints protected
	// by other means (an admin port on a private network).
	ClientID, ClientSecret string
	// Issuer, when set, must equal the `iss` of an active token that carries
	// one.
	Issuer string
	// Audiences, when set, must intersect the `aud` of an active token that
	// carries one.
	Audiences []string
	// HTTPClient makes the requests. Defaults to a client with a 10 s
	// timeout that does not follow redirects, so that a 307 or 308 from the
	// endpoint cannot send the token and the client credentials elsewhere
	// (the answer counts as an unavailable endpoint). A client passed here
	// is used as it is: it MUST NOT follow redirects either (set its
	// CheckRedirect to return [http.ErrUseLastResponse]).
	HTTPClient *http.Client
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// CacheTTL bounds how long a result is reused; an active result is
	// never reused past the token's `exp`. Defaults to 1 min; negative
	// disables caching.
	CacheTTL time.Duration
	// CacheEntries bounds the cache. Defaults to [DefaultCacheEntries].
	CacheEntries int
	// OnCacheLookup, when set, is told of each lookup in the cache: hit is
	// true when a cached answer was reused, false when the provider is
	// asked. As [VerifierConfig.OnCacheLookup]: fast, safe for concurrent
	// use, not told when caching is disabled. Nil tells nothing.
	OnCacheLookup func(hit bool)
	// MaxTokenBytes rejects longer tokens without a request. Defaults to
	// 16 KiB.
	MaxTokenBytes int
}

// Introspector is a [TokenVerifier] for opaque access tokens: it asks the
// provider's introspection endpoint (RFC 7662) and caches the answer by a
// hash of the token. `active: false` is a refusal ([ErrInvalidToken]); an
// endpoint that cannot be reached or answers garbage makes the token
// unjudgeable ([ErrUnavailable]). Safe for concurrent use.
type Introspector struct {
	cfg   IntrospectorConfig
	cache *resultCache
	group singleflight.Group
	audOK map[string]bool
}

// NewIntrospector validates cfg and returns an Introspector.
func NewIntrospector(cfg IntrospectorConfig) (*Introspector, error) {
	if cfg.URL == nil {
		return nil, errors.New("authn: IntrospectorConfig.URL is required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = newHTTPClient()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = time.Minute
	}
	if cfg.CacheEntries <= 0 {
		cfg.CacheEntries = DefaultCacheEntries
	}
	if cfg.MaxTokenBytes <= 0 {
		cfg.MaxTokenBytes = DefaultMaxTokenBytes
	}
	in := &Introspector{cfg: cfg, audOK: make(map[string]bool)}
	for _, a := range cfg.Audiences {
		in.audOK[a] = true
	}
	if cfg.CacheTTL > 0 {
		in.cache = newResultCache(cfg.CacheEntries)
	}
	return in, nil
}

// Verify implements [TokenVerifier]. The Claims are the caller's own copy;
// [Claims.Decode] reads the introspection answer they were taken from.
func (in *Introspector) Verify(ctx context.Context, rawToken string) (*Claims, error) {
	if rawToken == "" || len(rawToken) > in.cfg.MaxTokenBytes {
		return nil, invalid(checkSize, "token is empty or longer than %d bytes", in.cfg.MaxTokenBytes)
	}
	for i := 0; i < len(rawToken); i++ {
		if rawToken[i] < 0x21 || rawToken[i] > 0x7e {
			return nil, invalid(checkEncoding, "token contains characters outside visible ASCII")
		}
	}
	key := tokenKey(rawToken)
	now := in.cfg.Now()
	if in.cache != nil {
		e := in.cache.get(key, now)
		if in.cfg.OnCacheLookup != nil {
			in.cfg.OnCacheLookup(e != nil)
		}
		if e != nil {
			return e.claims.clone(), e.err
		}
	}
	// Concurrent checks of one token share one request. It runs on its own
	// context, so that the caller that started it giving up does not fail
	// the others; each caller still stops waiting when its own ctx ends.
	ch := in.group.DoChan(string(key[:]), func() (any, error) {
		reqCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), introspectionTimeout)
		defer cancel()
		return in.introspect(reqCtx, rawToken)
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
	v, err := res.Val, res.Err
	if err != nil {
		var r *refusal
		if in.cache != nil && errors.As(err, &r) && r.permanent {
			in.cache.put(&cacheEntry{key: key, err: err, expires: now.Add(in.cfg.CacheTTL)}, now)
		}
		return nil, err
	}
	// Every caller that shared the request gets the same result: hand
	// each its own copy.
	claims := v.(*Claims)
	if in.cache != nil {
		expires := now.Add(in.cfg.CacheTTL)
		if !claims.ExpiresAt.IsZero() && claims.ExpiresAt.Before(expires) {
			expires = claims.ExpiresAt
		}
		in.cache.put(&cacheEntry{key: key, claims: claims, expires: expires}, now)
	}
	return claims.clone(), nil
}

// introspectionTimeout bounds one introspection request, whatever the
// HTTP client's own timeout.
const introspectionTimeout = 15 * time.Second

// maxIntrospectionBytes bounds the endpoint's answer.
const maxIntrospectionBytes = 64 << 10

func (in *Introspector) introspect(ctx context.Context, rawToken string) (*Claims, error) {
	endpoint, err := in.cfg.URL(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection endpoint unknown: %v", ErrUnavailable, err)
	}
	form := url.Values{"token": {rawToken}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: building introspection request: %v", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if in.cfg.ClientID != "" {
		req.SetBasicAuth(url.QueryEscape(in.cfg.ClientID), url.QueryEscape(in.cfg.ClientSecret))
	}
	resp, err := in.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: calling the introspection endpoint failed", ErrUnavailable)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxIntrospectionBytes))
		return nil, fmt.Errorf("%w: introspection endpoint answered HTTP %d", ErrUnavailable, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionBytes+1))
	if err != nil || len(body) > maxIntrospectionBytes {
		return nil, fmt.Errorf("%w: introspection answer unreadable or too large", ErrUnavailable)
	}
	members, err := decodeObject(body)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection answer is not a JSON object", ErrUnavailable)
	}
	var active bool
	if raw, ok := members["active"]; !ok || json.Unmarshal(raw, &active) != nil {
		return nil, fmt.Errorf("%w: introspection answer lacks a boolean \"active\"", ErrUnavailable)
	}
	if !active {
		return nil, invalid(checkInactive, "introspection says the token is not active")
	}
	claims, err := parseClaims(body)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection answer: %v", ErrUnavailable, err)
	}
	tokenType, err := stringClaim(members, "token_type")
	if err != nil {
		return nil, fmt.Errorf("%w: introspection answer: %v", ErrUnavailable, err)
	}
	if err := in.checkActive(claims, tokenType); err != nil {
		return nil, err
	}
	return claims, nil
}

// checkActive applies our own checks to what the endpoint calls active:
// providers differ in what they verify, and some answer for tokens of other
// clients or audiences.
func (in *Introspector) checkActive(c *Claims, tokenType string) error {
	// RFC 7662's token_type is optional; when present it must describe a
	// bearer access token (Hydra says "access_token", others "Bearer"), never
	// a refresh token presented in its place.
	if tokenType != "" && !strings.EqualFold(tokenType, "Bearer") && !strings.EqualFold(tokenType, "access_token") {
		return invalid(checkType, "introspected token is of type %q", tokenType)
	}
	if in.cfg.Issuer != "" && c.Issuer != "" && c.Issuer != in.cfg.Issuer {
		return invalid(checkIssuer, "issuer %q is not the expected issuer", c.Issuer)
	}
	if len(in.audOK) > 0 && len(c.Audience) > 0 && !slices.ContainsFunc(c.Audience, func(a string) bool { return in.audOK[a] }) {
		return invalid(checkAudience, "audience %q is not accepted", c.Audience)
	}
	if c.Subject == "" {
		return invalid(checkSubject, "introspected token has no subject")
	}
	if !c.ExpiresAt.IsZero() && !in.cfg.Now().Before(c.ExpiresAt) {
		return &refusal{check: checkExpiry, reason: "expired", permanent: true, expired: true}
	}
	return nil
}

// ChainVerifier tries JWT verification first and falls back to introspection
// for tokens that are not JWTs at all. A JWT that fails verification is
// refused without introspection, so a forged JWT cannot be laundered
// through the endpoint.
type ChainVerifier struct {
	// JWT checks tokens shaped like a JWT (three dot-separated segments),
	// usually a [Verifier]. When nil, such tokens are refused.
	JWT TokenVerifier
	// Introspection checks all other tokens, usually an [Introspector].
	// When nil, such tokens are refused.
	Introspection TokenVerifier
}

// Verify implements [TokenVerifier]. A token whose verifier is nil is
// refused with [ErrInvalidToken].
func (c ChainVerifier) Verify(ctx context.Context, rawToken string) (*Claims, error) {
	if looksLikeJWT(rawToken) {
		if c.JWT == nil {
			return nil, invalid(checkType, "JWTs are not accepted")
		}
		return c.JWT.Verify(ctx, rawToken)
	}
	if c.Introspection == nil {
		return nil, invalid(checkType, "only JWTs are accepted")
	}
	return c.Introspection.Verify(ctx, rawToken)
}

// looksLikeJWT reports whether s has the shape of a compact JWS: three
// non-empty dot-separated segments.
func looksLikeJWT(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
	}
	return true
}
