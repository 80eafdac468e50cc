// Package grants serves the grants that give a machine client a token
// without a browser: client credentials (RFC 6749 §4.4) and token
// exchange for keyless CI (RFC 8693).
//
// A [Handler] holds what both depend on, spelled out in its [Config]: the
// store, the clock, the signer of access tokens, the event recorder and
// the rate limits. Both grants share its one token issuance (a machine
// client's RFC 9068 access token under a grant of its own) and its one
// way to refuse (an RFC 6749 §5.2 answer, its event recorded once).
package grants

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/federation"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/storage"
	"github.com/nsauth/nsauth/internal/ratelimit"
	"github.com/nsauth/nsauth/internal/store"
)

// Signer signs access tokens whose records are stored (storage.Storage).
type Signer interface {
	SignAccessToken(ctx context.Context, req storage.AccessTokenSubject, clientID, jti string, exp time.Time) (string, error)
}

// Config is what a Handler depends on. Every field is required unless it
// says otherwise.
type Config struct {
	Store *store.Store
	// Now is the clock.
	Now func() time.Time
	// Issuer is the issuer URL; subject tokens it issued are refused.
	Issuer string
	// Audience is the `aud` of access tokens.
	Audience string
	// AccessTokenTTL bounds every machine token's lifetime.
	AccessTokenTTL time.Duration
	// TokenPath is the token endpoint's path, where exchanges are sent.
	TokenPath string
	Tokens    Signer
	Events    *events.Recorder
	// Clients finds a request's client address. Nil means the TCP peer.
	Clients *clientaddr.Resolver
	// The per-minute limits (negative disables one) and the bound of the
	// keys each limiter keeps.
	MachineTokensPerMinute, MachineTokensPerAddressPerMinute float64
	ExchangePerMinute, ExchangePerPolicyMinute               float64
	RateLimitKeys                                            int
	// FederationHTTPClient fetches the CI platforms' keys. Nil means
	// federation's default.
	FederationHTTPClient *http.Client
	// Log receives operational messages. Nil discards them.
	Log *slog.Logger
}

// Handler serves the client-credentials and token-exchange grants. Its
// methods are safe for concurrent use.
type Handler struct {
	cfg Config
	log *slog.Logger
	// machineClientLimit and machineAddrLimit limit client-credentials
	// token requests per client id and per client address; nil when
	// disabled.
	machineClientLimit *ratelimit.Keyed[string]
	machineAddrLimit   *ratelimit.Limiter
	// exchangeLimit and exchangePolicyLimit limit token exchanges per
	// client address and per federation policy; nil when disabled.
	exchangeLimit       *ratelimit.Limiter
	exchangePolicyLimit *ratelimit.Keyed[string]
	// federation verifies the subject tokens of token exchanges.
	federation *federation.Verifier
}

// New returns the Handler of cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, log: cfg.Log,
		machineClientLimit:  ratelimit.NewKeyed[string](ratelimit.Config{PerMinute: cfg.MachineTokensPerMinute, MaxClients: cfg.RateLimitKeys, Now: cfg.Now}),
		machineAddrLimit:    ratelimit.New(ratelimit.Config{PerMinute: cfg.MachineTokensPerAddressPerMinute, MaxClients: cfg.RateLimitKeys, Now: cfg.Now}),
		exchangeLimit:       ratelimit.New(ratelimit.Config{PerMinute: cfg.ExchangePerMinute, MaxClients: cfg.RateLimitKeys, Now: cfg.Now}),
		exchangePolicyLimit: ratelimit.NewKeyed[string](ratelimit.Config{PerMinute: cfg.ExchangePerPolicyMinute, MaxClients: cfg.RateLimitKeys, Now: cfg.Now}),
	}
	var err error
	if h.federation, err = federation.NewVerifier(federation.Config{
		Policies:   federationPolicies(cfg.Store),
		OwnIssuer:  cfg.Issuer,
		HTTPClient: cfg.FederationHTTPClient,
		Now:        cfg.Now,
		Logger:     cfg.Log,
	}); err != nil {
		return nil, err
	}
	return h, nil
}

func tooMany(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(ratelimit.RetryAfterSeconds(wait)))
	writeTokenError(w, &oidc.Error{ErrorType: "temporarily_unavailable", Description: "too many token requests; retry later"}, http.StatusTooManyRequests)
}

// writeTokenError writes an RFC 6749 §5.2 error answer.
func writeTokenError(w http.ResponseWriter, e *oidc.Error, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{string(e.ErrorType), e.Description})
}
