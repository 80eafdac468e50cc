package grants

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/federation"
	"github.com/nsauth/nsauth/internal/issuer/storage"
	"github.com/nsauth/nsauth/internal/store"
)

// The token-exchange grant (RFC 8693) for keyless CI. A job presents the
// ID token its CI platform gave it as the subject token; when a federation
// policy trusts it (package federation verifies it: issuer, signature,
// audience, times, subject pattern), the answer is an RFC 9068 access token
// of the policy's machine client:
//
//   - No client authentication: the subject token is the credential. A
//     client_id sent anyway must be the policy's client.
//   - subject_token_type is urn:ietf:params:oauth:token-type:id_token or
//     …:jwt; requested_token_type, when sent, is …:access_token; an
//     actor_token (delegation) is refused; audience and resource, when
//     sent, must name this server's audience.
//   - The token is a machine client's (clientcredentials.go: sub = client_id = the
//     client, scopes the requested ones the client is allowed, or all of
//     them), and its lifetime the least of the server's access token
//     lifetime, the client's and the policy's maximum. The foreign token's
//     own expiry does not shorten it: that token proves who the job is at
//     the exchange, as a password would. There is never a refresh token.
//   - The token is recorded with the policy's id as its grant, so that
//     revoking it, disabling or deleting the client, or deleting the
//     policy, refuses it from then on.
//   - Every refusal of the subject token, and a disabled or deleted
//     client, get one fixed invalid_grant answer; the reason is logged at
//     debug level, never the token.
//   - Requests are limited per client address before anything is parsed
//     beyond the grant type, and per policy once one matched.
//
// The library's own token-exchange path would authenticate a client first
// and then ask for a subject from the storage; it does not fit a grant
// whose credential is a foreign token, so the token endpoint hands this
// grant to exchangeTokens before the library sees it (as package storage
// answers the device grant itself, for the same kind of reason).

// Token exchange settings.
const (
	// DefaultExchangePerMinute is the default of Config.ExchangePerMinute:
	// the settings table's (internal/config).
	DefaultExchangePerMinute = config.DefaultExchangePerMinute
	// DefaultExchangePerPolicyMinute is the default of
	// Config.ExchangePerPolicyMinute: the settings table's.
	DefaultExchangePerPolicyMinute = config.DefaultExchangePerPolicyMinute
	// maxTokenRequestBytes bounds a token request's body: a CI ID token is
	// a few KiB, and the federation verifier refuses more than 8.
	maxTokenRequestBytes = 64 << 10
)

// errExchangeRefused is the one answer to a subject token that is not
// accepted, whatever the reason.
func errExchangeRefused() *oidc.Error {
	return oidc.ErrInvalidGrant().WithDescription("the subject token is not accepted")
}

// RouteTokenExchange sends token-exchange requests at the token endpoint
// to exchangeTokens, and every other request to next.
func (h *Handler) RouteTokenExchange(next http.Handler) http.Handler {
	tokenPath := h.cfg.TokenPath
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != tokenPath || r.Method != http.MethodPost || r.URL.RawQuery != "" {
			next.ServeHTTP(w, r)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBytes)
		if err := r.ParseForm(); err != nil {
			writeTokenError(w, oidc.ErrInvalidRequest().WithDescription("the request body is malformed or too large"), http.StatusBadRequest)
			return
		}
		if r.PostForm.Get("grant_type") != string(oidc.GrantTypeTokenExchange) {
			next.ServeHTTP(w, r) // the library reads the form already parsed
			return
		}
		h.exchangeTokens(w, r)
	})
}

func (h *Handler) exchangeTokens(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if ok, wait := h.exchangeLimit.Allow(clientaddr.Key(h.cfg.Clients.FromRequest(r))); !ok {
		tooMany(w, wait)
		return
	}
	f := r.PostForm
	for name, values := range f {
		if len(values) > 1 {
			writeTokenError(w, oidc.ErrInvalidRequest().WithDescription("the parameter %s is repeated", strconv.Quote(name)), http.StatusBadRequest)
			return
		}
	}
	switch oidc.TokenType(f.Get("subject_token_type")) {
	case oidc.IDTokenType, oidc.JWTTokenType:
	default:
		writeTokenError(w, oidc.ErrInvalidRequest().WithDescription("subject_token_type must be urn:ietf:params:oauth:token-type:id_token or …:jwt"), http.StatusBadRequest)
		return
	}
	if t := f.Get("requested_token_type"); t != "" && t != string(oidc.AccessTokenType) {
		writeTokenError(w, oidc.ErrInvalidRequest().WithDescription("only access tokens are issued: requested_token_type must be urn:ietf:params:oauth:token-type:access_token"), http.StatusBadRequest)
		return
	}
	if f.Get("actor_token") != "" || f.Get("actor_token_type") != "" {
		writeTokenError(w, oidc.ErrInvalidRequest().WithDescription("delegation (actor_token) is not supported"), http.StatusBadRequest)
		return
	}
	for _, name := range []string{"audience", "resource"} {
		if v := f.Get(name); v != "" && v != h.cfg.Audience {
			writeTokenError(w, oidc.ErrInvalidTarget().WithDescription("tokens are issued only for %s", h.cfg.Audience), http.StatusBadRequest)
			return
		}
	}
	scopes := strings.Fields(f.Get("scope"))
	if len(scopes) > storage.MaxScopes {
		writeTokenError(w, oidc.ErrInvalidScope().WithDescription("too many scopes"), http.StatusBadRequest)
		return
	}
	subjectToken := f.Get("subject_token")
	if subjectToken == "" {
		writeTokenError(w, oidc.ErrInvalidRequest().WithDescription("subject_token is required"), http.StatusBadRequest)
		return
	}

	ctx := r.Context()
	m, err := h.federation.Verify(ctx, subjectToken)
	if errors.Is(err, federation.ErrNoMatch) {
		h.log.DebugContext(ctx, "token exchange refused", "reason", err)
		h.refuseExchange(w, ctx, nil, "no_matching_policy")
		return
	}
	if err != nil {
		h.log.ErrorContext(ctx, "token exchange failed", "error", err)
		writeTokenError(w, oidc.ErrServerError().WithDescription("internal error"), http.StatusInternalServerError)
		return
	}
	p := m.Policy
	if ok, wait := h.exchangePolicyLimit.Allow(p.ID); !ok {
		h.log.InfoContext(ctx, "token exchange over the policy's rate", "policy", p.Name)
		tooMany(w, wait)
		return
	}
	if id := f.Get("client_id"); id != "" && id != p.ClientID {
		h.log.DebugContext(ctx, "token exchange refused", "reason", "the request names another client than the policy's", "policy", p.Name)
		h.refuseExchange(w, ctx, m, "client_mismatch")
		return
	}
	resp, oerr := h.exchangeResponse(ctx, m, scopes)
	if oerr != nil && oerr.ErrorType != oidc.ServerError {
		reason := exchangeRefusalReason(oerr)
		if err := h.cfg.Events.Record(ctx, exchangeEvent(m, audit.Failure, reason)); err != nil {
			oerr = storage.ErrAuditUnavailable(err)
		}
	}
	if oerr != nil {
		status := http.StatusBadRequest
		if oerr.ErrorType == oidc.ServerError {
			h.log.ErrorContext(ctx, "token exchange failed", "error", errors.Unwrap(oerr))
			status = http.StatusInternalServerError
		}
		writeTokenError(w, oerr, status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Pragma", "no-cache")
	_ = json.NewEncoder(w).Encode(resp)
}

// exchangeResponse is the RFC 8693 §2.2.1 answer.
type exchangeResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

// exchangeResponse issues the access token of a matched policy's client.
func (h *Handler) exchangeResponse(ctx context.Context, m *federation.Match, requested []string) (*exchangeResponse, *oidc.Error) {
	p := m.Policy
	c, err := h.cfg.Store.MachineClientByID(ctx, p.ClientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.log.DebugContext(ctx, "token exchange refused", "reason", "the policy's client no longer exists", "policy", p.Name)
		return nil, errExchangeRefused().WithParent(errExchangeClientGone)
	case err != nil:
		return nil, storage.InternalError("reading the machine client", err)
	case c.Disabled():
		h.log.DebugContext(ctx, "token exchange refused", "reason", "the policy's client is disabled", "policy", p.Name)
		return nil, errExchangeRefused().WithParent(errExchangeClientDisabled)
	}
	scopes, err := machineScopes(requested, c.Scopes)
	if err != nil {
		var oe *oidc.Error
		if errors.As(err, &oe) {
			return nil, oe
		}
		return nil, storage.InternalError("choosing the scopes", err)
	}
	ttl := h.MachineTokenTTL(c.TokenTTL)
	if p.MaxTTL > 0 && p.MaxTTL < ttl {
		ttl = p.MaxTTL
	}
	// The policy's id is the grant: deleting the policy revokes the token.
	at := store.AccessToken{ID: store.NewID(), GrantID: p.ID, ClientID: c.ID, Scopes: scopes, ExpiresAt: h.cfg.Now().Add(ttl)}
	signed, oerr := h.issueMachineToken(ctx, &at, exchangeEvent(m, audit.Success, ""))
	if oerr != nil {
		return nil, oerr
	}
	return &exchangeResponse{
		AccessToken:     signed,
		IssuedTokenType: string(oidc.AccessTokenType),
		TokenType:       oidc.BearerToken,
		ExpiresIn:       int64(max(0, at.ExpiresAt.Sub(h.cfg.Now()).Seconds())),
		Scope:           strings.Join(scopes, " "),
	}, nil
}

// federationPolicies is the verifier's policy source: st's policies of
// an issuer.
func federationPolicies(st *store.Store) func(context.Context, string) ([]federation.Policy, error) {
	return func(ctx context.Context, issuer string) ([]federation.Policy, error) {
		stored, err := st.FederationPoliciesByIssuer(ctx, issuer)
		if err != nil {
			return nil, err
		}
		out := make([]federation.Policy, 0, len(stored))
		for _, p := range stored {
			out = append(out, federation.Policy{ID: p.ID, Name: p.Name, Issuer: p.Issuer, Audience: p.Audience, Subject: p.Subject,
				ClientID: p.ClientID, MaxTTL: p.MaxTTL, CreatedAt: p.CreatedAt})
		}
		return out, nil
	}
}

// Why exchangeResponse refused, for the audit trail (the client is told
// only errExchangeRefused).
var (
	errExchangeClientGone     = errors.New("the policy's client no longer exists")
	errExchangeClientDisabled = errors.New("the policy's client is disabled")
)

// exchangeRefusalReason is the reason category of an exchangeResponse
// refusal.
func exchangeRefusalReason(oerr *oidc.Error) string {
	switch {
	case errors.Is(oerr, errExchangeClientGone):
		return "client_missing"
	case errors.Is(oerr, errExchangeClientDisabled):
		return "client_disabled"
	}
	return string(oerr.ErrorType)
}

// exchangeEvent is the audit.TokenExchangeGrant event of a verified
// subject token (m) or, when m is nil, of one no policy accepts. The
// subject token is never recorded; its subject and the policy are.
func exchangeEvent(m *federation.Match, outcome audit.Outcome, reason string) audit.Event {
	e := audit.Event{Type: audit.TokenExchangeGrant, Outcome: outcome, Reason: reason}
	if m != nil {
		e.Subject, e.ClientID, e.Target = m.Subject, m.Policy.ClientID, m.Policy.Name
	}
	return e
}

// refuseExchange records a refused token exchange and answers it. A
// subject token that no policy accepts (m nil) proved nothing: its refusal
// is aggregated; one that verified names its workload, one event each.
func (h *Handler) refuseExchange(w http.ResponseWriter, ctx context.Context, m *federation.Match, reason string) {
	record := h.cfg.Events.Record
	if m == nil {
		record = h.cfg.Events.Refusal
	}
	if err := record(ctx, exchangeEvent(m, audit.Failure, reason)); err != nil {
		writeTokenError(w, storage.ErrAuditUnavailable(err), http.StatusInternalServerError)
		return
	}
	writeTokenError(w, errExchangeRefused(), http.StatusBadRequest)
}
