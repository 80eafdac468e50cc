package storage

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
)

// The storage of the client-credentials grant (package grants serves the
// grant): machine clients as the library sees them, their authentication
// and the introspection of their tokens.

// ErrMachineClient is the one answer to a client-credentials request whose
// client is unknown, disabled, not a machine client or gave a wrong
// secret: which of these it was is not told.
func ErrMachineClient() *oidc.Error {
	return oidc.ErrInvalidClient().WithDescription("client authentication failed")
}

// MachineClient is the library's view of a machine client: confidential,
// client-credentials only, no redirect URIs, no ID tokens.
type MachineClient struct {
	stored *store.MachineClient
}

// Stored is the machine client as stored.
func (c *MachineClient) Stored() *store.MachineClient { return c.stored }

var _ op.Client = (*MachineClient)(nil)

func (c *MachineClient) GetID() string                       { return c.stored.ID }
func (c *MachineClient) RedirectURIs() []string              { return nil }
func (c *MachineClient) PostLogoutRedirectURIs() []string    { return nil }
func (c *MachineClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *MachineClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *MachineClient) ResponseTypes() []oidc.ResponseType  { return nil }
func (c *MachineClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials}
}
func (c *MachineClient) LoginURL(string) string               { return "" }
func (c *MachineClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *MachineClient) IDTokenLifetime() time.Duration       { return 0 }
func (c *MachineClient) DevMode() bool                        { return false }
func (c *MachineClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *MachineClient) ClockSkew() time.Duration             { return 0 }
func (c *MachineClient) IsScopeAllowed(scope string) bool {
	return slices.Contains(c.stored.Scopes, scope)
}
func (c *MachineClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func([]string) []string { return nil }
}
func (c *MachineClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func([]string) []string { return nil }
}

// ClientCredentials authenticates a machine client (the library's
// ClientCredentialsStorage, which switches the grant on). The secret is
// compared in constant time; every refusal is [ErrMachineClient].
func (s *clients) ClientCredentials(ctx context.Context, clientID, secret string) (op.Client, error) {
	if clientID == "" || len(clientID) > MaxClientIDLen || secret == "" {
		return nil, s.refuseMachineClient(ctx, "", "invalid_request")
	}
	c, err := s.store.MachineClientByID(ctx, clientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, s.refuseMachineClient(ctx, "", "unknown_client")
	case err != nil:
		return nil, InternalError("reading the client", err)
	}
	// The secret is checked before the state, so that a disabled client
	// tells nothing to whoever does not hold its secret.
	if !c.CheckSecret(secret) {
		return nil, s.refuseMachineClient(ctx, c.ID, "bad_secret")
	}
	if c.Disabled() {
		return nil, s.refuseMachineClient(ctx, c.ID, "client_disabled")
	}
	return &MachineClient{stored: c}, nil
}

// refuseMachineClient records a client-credentials request whose client
// did not authenticate (a refusal, aggregated), and returns its refusal.
// The client id is recorded only when it names a client: what is typed
// there may be a secret.
func (s *clients) refuseMachineClient(ctx context.Context, clientID, reason string) error {
	if err := s.events.Refusal(ctx, audit.Event{Type: audit.ClientCredentialsGrant, Outcome: audit.Failure, ClientID: clientID, Reason: reason}); err != nil {
		return ErrAuditUnavailable(err)
	}
	return ErrMachineClient()
}

// ClientCredentialsTokenRequest completes the library's
// ClientCredentialsStorage; the grant is served by
// grants.Handler.ClientCredentials, which does not call it.
func (s *clients) ClientCredentialsTokenRequest(context.Context, string, []string) (op.TokenRequest, error) {
	return nil, InternalError("client credentials", errors.New("served by grants.Handler.ClientCredentials"))
}

// machineIntrospection describes an active machine token to the broker's
// client, while its machine client exists and is enabled.
func (s *userinfo) machineIntrospection(ctx context.Context, resp *oidc.IntrospectionResponse, at *store.AccessToken, subject, clientID string) error {
	if subject != at.ClientID || clientID != s.cfg.ClientID {
		return errors.New("token not active for this client")
	}
	c, err := s.store.MachineClientByID(ctx, at.ClientID)
	if err != nil || c.Disabled() {
		return errors.New("client not active")
	}
	s.describeActive(resp, at, at.ClientID)
	return nil
}
