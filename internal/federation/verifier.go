package federation

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nsauth/nsauth/pkg/authn"
	"github.com/nsauth/nsauth/pkg/noredirect"
	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// ErrNoMatch is wrapped by every refusal of a foreign token: malformed,
// badly signed, expired, of an issuer or audience no policy names, or with
// a subject no policy matches. The wrapped detail is for debug logs (it
// never quotes the token); a client must learn only that it was refused.
var ErrNoMatch = errors.New("the token matches no federation policy")

// refuse returns an error matching ErrNoMatch, with why for the logs.
func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNoMatch, fmt.Sprintf(format, args...))
}

// Defaults for [Config].
const (
	// DefaultClockSkew is the tolerance on `exp`, `nbf` and `iat`.
	DefaultClockSkew = 30 * time.Second
	// MaxClockSkew bounds Config.ClockSkew.
	MaxClockSkew = 5 * time.Minute
	// DefaultMaxTokenAge is how old (since its `iat`) a foreign token may
	// be. Kubernetes renews projected service account tokens at 80 % of
	// their life, one hour by default, so a younger bound would refuse
	// them.
	DefaultMaxTokenAge = time.Hour
	// DefaultMaxTokenBytes bounds a presented token: CI ID tokens are 1 to
	// 3 KiB.
	DefaultMaxTokenBytes = 8 << 10
	// DefaultMaxIssuers bounds the issuers whose keys are held in memory.
	DefaultMaxIssuers = 64
	// DefaultMinRefetchInterval is the least time between two fetches of
	// one issuer's keys caused by unknown key ids.
	DefaultMinRefetchInterval = 30 * time.Second
)

// PolicySource returns the policies whose Issuer is exactly issuer; none
// (and no error) when there are none.
type PolicySource func(ctx context.Context, issuer string) ([]Policy, error)

// Config configures a [Verifier].
type Config struct {
	// Policies finds the policies of an issuer. Required.
	Policies PolicySource
	// OwnIssuer is the built-in provider's issuer URL: its tokens are
	// refused whatever the policies say. Required.
	OwnIssuer string
	// HTTPClient fetches discovery documents and key sets. Defaults to a
	// client with a 10 s timeout that does not follow redirects.
	HTTPClient *http.Client
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// ClockSkew is the tolerance on `exp`, `nbf` and `iat`. Defaults to
	// [DefaultClockSkew]; at most [MaxClockSkew].
	ClockSkew time.Duration
	// MaxTokenAge refuses tokens issued (`iat`) longer ago than this.
	// Defaults to [DefaultMaxTokenAge].
	MaxTokenAge time.Duration
	// MaxTokenBytes refuses longer tokens before parsing them. Defaults to
	// [DefaultMaxTokenBytes].
	MaxTokenBytes int
	// MaxIssuers bounds the issuers whose key sets are cached; the least
	// recently used is dropped first. Defaults to [DefaultMaxIssuers].
	MaxIssuers int
	// MinRefetchInterval is the least time between two key set fetches of
	// one issuer caused by unknown key ids. Defaults to
	// [DefaultMinRefetchInterval].
	MinRefetchInterval time.Duration
	// Logger receives fetch failures. Defaults to discarding them.
	Logger *slog.Logger
}

// Verifier verifies foreign ID tokens against the federation policies. It
// is safe for concurrent use.
//
// Only issuers named by a policy are ever contacted: the token's `iss` is
// read unverified, compared exactly with the policies' issuers, and a
// token of any other issuer is refused without a request. A policy
// issuer's discovery document and key set are fetched through
// [authn.RemoteKeySet] (cached, refetched on an unknown key id at most once
// per MinRefetchInterval, concurrent misses sharing a fetch) and its
// tokens verified by [authn.Verifier] with every asymmetric algorithm
// [authn.SupportedAlgorithms] names and nothing else: `alg: none` and HMAC
// are refused before any key is looked up.
type Verifier struct {
	cfg Config

	mu      sync.Mutex
	issuers map[string]*issuerKeys
}

type issuerKeys struct {
	keys     *authn.RemoteKeySet
	lastUsed time.Time
}

// NewVerifier validates cfg and returns a Verifier.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Policies == nil {
		return nil, errors.New("federation: a policy source is required")
	}
	if cfg.OwnIssuer == "" {
		return nil, errors.New("federation: the own issuer is required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = noredirect.NewClient(nil, 10*time.Second)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.ClockSkew == 0:
		cfg.ClockSkew = DefaultClockSkew
	case cfg.ClockSkew < 0:
		cfg.ClockSkew = 0
	case cfg.ClockSkew > MaxClockSkew:
		return nil, fmt.Errorf("federation: the clock skew %s is more than %s", cfg.ClockSkew, MaxClockSkew)
	}
	if cfg.MaxTokenAge <= 0 {
		cfg.MaxTokenAge = DefaultMaxTokenAge
	}
	if cfg.MaxTokenBytes <= 0 {
		cfg.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if cfg.MaxIssuers <= 0 {
		cfg.MaxIssuers = DefaultMaxIssuers
	}
	if cfg.MinRefetchInterval <= 0 {
		cfg.MinRefetchInterval = DefaultMinRefetchInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Verifier{cfg: cfg, issuers: make(map[string]*issuerKeys)}, nil
}

// Match is a verified foreign token and the policy it matched.
type Match struct {
	Policy Policy
	// Subject is the foreign token's `sub`.
	Subject string
	// ExpiresAt is the foreign token's `exp`.
	ExpiresAt time.Time
}

// Verify checks a foreign token fully and returns the policy it matches.
// Errors match [ErrNoMatch] when the token is refused, for whatever
// reason (a token matching policies of two different clients is refused
// too: the patterns must not overlap); other errors are the policy
// source's. When several policies of one client match, the one with the
// smallest MaxTTL is chosen.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Match, error) {
	if raw == "" || len(raw) > v.cfg.MaxTokenBytes {
		return nil, refuse("the token is empty or longer than %d bytes", v.cfg.MaxTokenBytes)
	}
	alg, iss, err := peek(raw)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(authn.SupportedAlgorithms(), alg) {
		return nil, refuse("the algorithm %q is not an accepted asymmetric one", alg)
	}
	if iss == "" || sameIssuer(iss, v.cfg.OwnIssuer) {
		return nil, refuse("the issuer is missing or this server's own")
	}
	policies, err := v.cfg.Policies(ctx, iss)
	if err != nil {
		return nil, fmt.Errorf("reading the federation policies: %w", err)
	}
	// The source is asked for iss exactly; check again, so that a source
	// comparing loosely (case, collation) cannot send us to another issuer.
	policies = slices.DeleteFunc(policies, func(p Policy) bool { return p.Issuer != iss })
	if len(policies) == 0 {
		return nil, refuse("no policy names the token's issuer")
	}
	audiences := make([]string, 0, len(policies))
	for _, p := range policies {
		audiences = append(audiences, p.Audience)
	}
	provider, err := authn.NewProviderWithKeys(iss, v.keySet(iss))
	if err != nil {
		return nil, fmt.Errorf("federation: building the verifier: %w", err)
	}
	verifier, err := provider.Verifier(authn.Config{
		Audiences:     audiences,
		Algorithms:    authn.SupportedAlgorithms(),
		ClockSkew:     v.cfg.ClockSkew,
		Now:           v.cfg.Now,
		MaxTokenBytes: v.cfg.MaxTokenBytes,
		CacheEntries:  -1,
	})
	if err != nil {
		return nil, fmt.Errorf("federation: building the verifier: %w", err)
	}
	claims, err := verifier.Verify(ctx, raw)
	if err != nil {
		if errors.Is(err, authn.ErrUnavailable) {
			v.cfg.Logger.Warn("the keys of a federation issuer cannot be had", "issuer", iss, "error", err)
		}
		return nil, refuse("%v", err)
	}
	now := v.cfg.Now()
	if claims.IssuedAt.IsZero() {
		return nil, refuse("the token has no iat")
	}
	if now.Sub(claims.IssuedAt) > v.cfg.MaxTokenAge+v.cfg.ClockSkew {
		return nil, refuse("the token was issued more than %s ago", v.cfg.MaxTokenAge)
	}
	var match *Policy
	for i := range policies {
		p := &policies[i]
		if !slices.Contains(claims.Audience, p.Audience) || !MatchSubject(p.Subject, claims.Subject) {
			continue
		}
		switch {
		case match == nil:
			match = p
		case match.ClientID != p.ClientID:
			return nil, refuse("the token matches the policies %q and %q, of different clients", match.Name, p.Name)
		case ttlBelow(p.MaxTTL, match.MaxTTL):
			match = p
		}
	}
	if match == nil {
		return nil, refuse("no policy of the issuer matches the token's audience and subject")
	}
	return &Match{Policy: *match, Subject: claims.Subject, ExpiresAt: claims.ExpiresAt}, nil
}

// ttlBelow reports whether a is a stricter cap than b (zero is no cap).
func ttlBelow(a, b time.Duration) bool {
	return a > 0 && (b == 0 || a < b)
}

// peek reads a compact JWS's `alg` and `iss` without verifying anything,
// to choose the policies (and so the keys) it must be verified with.
func peek(raw string) (alg, iss string, err error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", "", refuse("the token is not a compact JWS")
	}
	var header struct {
		Alg string `json:"alg"`
	}
	var payload struct {
		Iss string `json:"iss"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return "", "", refuse("the header is malformed")
	}
	if err := decodeSegment(parts[1], &payload); err != nil {
		return "", "", refuse("the payload is malformed")
	}
	return header.Alg, payload.Iss, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// keySet returns the cached key set of a policy issuer, creating it (and
// dropping the least recently used one when MaxIssuers are held).
func (v *Verifier) keySet(iss string) *authn.RemoteKeySet {
	now := v.cfg.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.issuers[iss]; ok {
		e.lastUsed = now
		return e.keys
	}
	if len(v.issuers) >= v.cfg.MaxIssuers {
		var oldest string
		for name, e := range v.issuers {
			if oldest == "" || e.lastUsed.Before(v.issuers[oldest].lastUsed) {
				oldest = name
			}
		}
		delete(v.issuers, oldest)
	}
	client := v.cfg.HTTPClient
	keys, _ := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{
		// Discovery is read again before every key fetch, so a provider
		// that moves its keys is followed; fetches are rate-limited, so
		// this costs at most one discovery request per key fetch.
		URL: func(ctx context.Context) (string, error) {
			md, err := oidcdiscovery.Discover(ctx, iss, oidcdiscovery.Options{HTTPClient: client, Require: []string{oidcdiscovery.JWKSURI}})
			if err != nil {
				return "", err
			}
			return md.JWKSURI, nil
		},
		HTTPClient:         client,
		Now:                v.cfg.Now,
		MinRefetchInterval: v.cfg.MinRefetchInterval,
		Logger:             v.cfg.Logger,
	})
	v.issuers[iss] = &issuerKeys{keys: keys, lastUsed: now}
	return keys
}
