package issuer

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/ratelimit"
	"github.com/nsauth/nsauth/internal/store"
)

// Machine clients (store.MachineClient) obtain access tokens for
// themselves with the client-credentials grant (RFC 6749 §4.4). Their
// tokens are RFC 9068 JWTs like a user's, with `sub` = `client_id` = the
// client id (RFC 9068 §2.2), only scopes the client is allowed, a lifetime
// of at most the client's and the server's, and never a refresh token.
// Each is recorded in the store under a grant of its own, so disabling,
// deleting or rotating the client revokes it through the one revocation
// path (store.revokeAccessTokens) that verifiers follow.

// errMachineClient is the one answer to a client-credentials request whose
// client is unknown, disabled, not a machine client or gave a wrong
// secret: which of these it was is not told.
func errMachineClient() *oidc.Error {
	return oidc.ErrInvalidClient().WithDescription("client authentication failed")
}

// machineClient is the library's view of a machine client: confidential,
// client-credentials only, no redirect URIs, no ID tokens.
type machineClient struct {
	stored *store.MachineClient
}

var _ op.Client = (*machineClient)(nil)

func (c *machineClient) GetID() string                       { return c.stored.ID }
func (c *machineClient) RedirectURIs() []string              { return nil }
func (c *machineClient) PostLogoutRedirectURIs() []string    { return nil }
func (c *machineClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *machineClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *machineClient) ResponseTypes() []oidc.ResponseType  { return nil }
func (c *machineClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials}
}
func (c *machineClient) LoginURL(string) string               { return "" }
func (c *machineClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *machineClient) IDTokenLifetime() time.Duration       { return 0 }
func (c *machineClient) DevMode() bool                        { return false }
func (c *machineClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *machineClient) ClockSkew() time.Duration             { return 0 }
func (c *machineClient) IsScopeAllowed(scope string) bool {
	return slices.Contains(c.stored.Scopes, scope)
}
func (c *machineClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func([]string) []string { return nil }
}
func (c *machineClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func([]string) []string { return nil }
}

// ClientCredentials authenticates a machine client (the library's
// ClientCredentialsStorage, which switches the grant on). The secret is
// compared in constant time; every refusal is [errMachineClient].
func (s *storage) ClientCredentials(ctx context.Context, clientID, secret string) (op.Client, error) {
	if clientID == "" || len(clientID) > maxClientIDLen || secret == "" {
		return nil, s.refuseMachineClient(ctx, "", "invalid_request")
	}
	c, err := s.st().MachineClientByID(ctx, clientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, s.refuseMachineClient(ctx, "", "unknown_client")
	case err != nil:
		return nil, internalError("reading the client", err)
	}
	// The secret is checked before the state, so that a disabled client
	// tells nothing to whoever does not hold its secret.
	if !c.CheckSecret(secret) {
		return nil, s.refuseMachineClient(ctx, c.ID, "bad_secret")
	}
	if c.Disabled() {
		return nil, s.refuseMachineClient(ctx, c.ID, "client_disabled")
	}
	return &machineClient{stored: c}, nil
}

// refuseMachineClient records a client-credentials request whose client
// did not authenticate (a refusal, aggregated), and returns its refusal.
// The client id is recorded only when it names a client: what is typed
// there may be a secret.
func (s *storage) refuseMachineClient(ctx context.Context, clientID, reason string) error {
	if err := s.iss.events.Refusal(ctx, audit.Event{Type: audit.ClientCredentialsGrant, Outcome: audit.Failure, ClientID: clientID, Reason: reason}); err != nil {
		return errAuditUnavailable(err)
	}
	return errMachineClient()
}

// ClientCredentialsTokenRequest completes the library's
// ClientCredentialsStorage; the grant is served by
// [server.ClientCredentialsExchange], which does not call it.
func (s *storage) ClientCredentialsTokenRequest(context.Context, string, []string) (op.TokenRequest, error) {
	return nil, internalError("client credentials", errors.New("served by server.ClientCredentialsExchange"))
}

// ClientCredentialsExchange issues a machine client's access token.
func (s *server) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	mc, ok := r.Client.(*machineClient)
	if !ok {
		return nil, op.NewStatusError(errMachineClient(), http.StatusUnauthorized)
	}
	scopes, err := machineScopes(r.Data.Scope, mc.stored.Scopes)
	if err != nil {
		if rerr := s.iss.events.Record(ctx, audit.Event{Type: audit.ClientCredentialsGrant, Outcome: audit.Failure, ClientID: mc.stored.ID, Reason: "invalid_scope"}); rerr != nil {
			return nil, errAuditUnavailable(rerr)
		}
		return nil, err
	}
	resp, err := s.iss.machineToken(ctx, mc.stored, scopes)
	if err != nil {
		return nil, err
	}
	if err := s.iss.events.Record(ctx, audit.Event{Type: audit.ClientCredentialsGrant, Subject: mc.stored.ID, ClientID: mc.stored.ID,
		Refs: s.iss.events.Refs(audit.RefToken, resp.AccessToken)}); err != nil {
		return nil, errAuditUnavailable(err)
	}
	return op.NewResponse(resp), nil
}

// machineScopes is what a machine token grants: the requested scopes, each
// of which the client must be allowed, or all allowed ones when none is
// requested.
func machineScopes(requested, allowed []string) ([]string, error) {
	if len(requested) > maxScopes {
		return nil, oidc.ErrInvalidScope().WithDescription("too many scopes")
	}
	if len(requested) == 0 {
		return slices.Clone(allowed), nil
	}
	var out []string
	for _, sc := range requested {
		if !slices.Contains(allowed, sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("a requested scope is not allowed for this client")
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// MachineTokenTTL is the lifetime of a token issued to a machine client
// whose own lifetime is ttl (zero: none set): ttl, capped by the server's
// access token lifetime, which is also the default. The signing keys are
// kept published for that long, so no longer lifetime can be honoured.
func (i *Issuer) MachineTokenTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 || ttl > i.cfg.AccessTokenTTL {
		return i.cfg.AccessTokenTTL
	}
	return ttl
}

// machineSubject is what signAccessToken needs of a machine token.
type machineSubject struct {
	clientID string
	scopes   []string
}

func (m machineSubject) GetSubject() string     { return m.clientID }
func (m machineSubject) GetScopes() []string    { return m.scopes }
func (m machineSubject) GetAuthTime() time.Time { return time.Time{} }

// machineToken records and signs an access token for c, under a grant of
// its own. There is no refresh token: the client holds its secret and
// asks again.
func (i *Issuer) machineToken(ctx context.Context, c *store.MachineClient, scopes []string) (*oidc.AccessTokenResponse, error) {
	at := store.AccessToken{ID: store.NewID(), GrantID: store.NewID(), ClientID: c.ID, Scopes: scopes,
		ExpiresAt: i.cfg.Now().Add(i.MachineTokenTTL(c.TokenTTL))}
	if err := i.st.RecordAccessToken(ctx, &at); err != nil {
		return nil, internalError("recording the access token", err)
	}
	access, err := i.signAccessToken(ctx, machineSubject{clientID: c.ID, scopes: scopes}, c.ID, at.ID, at.ExpiresAt)
	if err != nil {
		return nil, err
	}
	return &oidc.AccessTokenResponse{
		AccessToken: access,
		TokenType:   oidc.BearerToken,
		ExpiresIn:   uint64(max(0, at.ExpiresAt.Sub(i.cfg.Now()).Seconds())),
		Scope:       scopes,
	}, nil
}

// machineGrants are the grant types whose token requests are rate-limited
// per client and per address before anything else is done: they are what
// programs call in loops, and what a secret guesser would call.
var machineGrants = map[string]bool{string(oidc.GrantTypeClientCredentials): true}

// limitMachineTokens answers 429 (with Retry-After) to a token request of
// a machine grant over its client's or its address's budget. The form is
// parsed here (the token endpoint only takes POSTed forms; postOnly runs
// first), which the library then reuses.
func (i *Issuer) limitMachineTokens(next http.Handler) http.Handler {
	if i.machineClientLimit == nil && i.machineAddrLimit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.ParseForm() != nil || !machineGrants[r.PostForm.Get("grant_type")] {
			next.ServeHTTP(w, r)
			return
		}
		ok, wait := i.machineAddrLimit.Allow(clientaddr.Key(i.cfg.Clients.FromRequest(r)))
		if ok {
			if id := requestClientID(r); id != "" && len(id) <= maxClientIDLen {
				ok, wait = i.machineClientLimit.Allow(id)
			}
		}
		if !ok {
			w.Header().Set("Retry-After", strconv.Itoa(ratelimit.RetryAfterSeconds(wait)))
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"too many token requests; retry later"}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requestClientID is the client id a token request names, from HTTP Basic
// authentication or the form, unverified: it only picks a rate-limit
// bucket.
func requestClientID(r *http.Request) string {
	if id, _, ok := r.BasicAuth(); ok {
		// RFC 6749 §2.3.1 form-encodes it, as the library decodes it: each
		// spelling of one id must land in the same bucket.
		if dec, err := url.QueryUnescape(id); err == nil {
			return dec
		}
		return id
	}
	return r.PostForm.Get("client_id")
}

// machineIntrospection describes an active machine token to the broker's
// client, while its machine client exists and is enabled.
func (s *storage) machineIntrospection(ctx context.Context, resp *oidc.IntrospectionResponse, at *store.AccessToken, subject, clientID string) error {
	if subject != at.ClientID || clientID != s.cfg().ClientID {
		return errors.New("token not active for this client")
	}
	c, err := s.st().MachineClientByID(ctx, at.ClientID)
	if err != nil || c.Disabled() {
		return errors.New("client not active")
	}
	s.describeActive(resp, at, at.ClientID)
	return nil
}
