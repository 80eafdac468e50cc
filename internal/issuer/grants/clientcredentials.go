package grants

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
	"github.com/nsauth/nsauth/internal/issuer/storage"
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

// ClientCredentials issues a machine client's access token.
func (h *Handler) ClientCredentials(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	mc, ok := r.Client.(*storage.MachineClient)
	if !ok {
		return nil, op.NewStatusError(storage.ErrMachineClient(), http.StatusUnauthorized)
	}
	scopes, err := machineScopes(r.Data.Scope, mc.Stored().Scopes)
	if err != nil {
		if rerr := h.cfg.Events.Record(ctx, audit.Event{Type: audit.ClientCredentialsGrant, Outcome: audit.Failure, ClientID: mc.Stored().ID, Reason: "invalid_scope"}); rerr != nil {
			return nil, storage.ErrAuditUnavailable(rerr)
		}
		return nil, err
	}
	resp, err := h.machineToken(ctx, mc.Stored(), scopes)
	if err != nil {
		return nil, err
	}
	return op.NewResponse(resp), nil
}

// machineScopes is what a machine token grants: the requested scopes, each
// of which the client must be allowed, or all allowed ones when none is
// requested.
func machineScopes(requested, allowed []string) ([]string, error) {
	if len(requested) > storage.MaxScopes {
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
func (h *Handler) MachineTokenTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 || ttl > h.cfg.AccessTokenTTL {
		return h.cfg.AccessTokenTTL
	}
	return ttl
}

// machineSubject is what SignAccessToken needs of a machine token.
type machineSubject struct {
	clientID string
	scopes   []string
}

func (m machineSubject) GetSubject() string     { return m.clientID }
func (m machineSubject) GetScopes() []string    { return m.scopes }
func (m machineSubject) GetAuthTime() time.Time { return time.Time{} }

// machineToken issues c an access token by client credentials, under a
// grant of its own. There is no refresh token: the client holds its secret
// and asks again.
func (h *Handler) machineToken(ctx context.Context, c *store.MachineClient, scopes []string) (*oidc.AccessTokenResponse, error) {
	at := store.AccessToken{ID: store.NewID(), GrantID: store.NewID(), ClientID: c.ID, Scopes: scopes,
		ExpiresAt: h.cfg.Now().Add(h.MachineTokenTTL(c.TokenTTL))}
	access, err := h.issueMachineToken(ctx, &at, audit.Event{Type: audit.ClientCredentialsGrant, Subject: c.ID, ClientID: c.ID})
	if err != nil {
		return nil, err
	}
	return &oidc.AccessTokenResponse{
		AccessToken: access,
		TokenType:   oidc.BearerToken,
		ExpiresIn:   uint64(max(0, at.ExpiresAt.Sub(h.cfg.Now()).Seconds())),
		Scope:       scopes,
	}, nil
}

// issueMachineToken signs at, a machine client's access token, and
// records it with e, the event of its grant (naming the token), in one
// write transaction. The token is signed first, since its event names it;
// one whose record failed is never returned, so it was issued to nobody.
func (h *Handler) issueMachineToken(ctx context.Context, at *store.AccessToken, e audit.Event) (string, *oidc.Error) {
	access, err := h.cfg.Tokens.SignAccessToken(ctx, machineSubject{clientID: at.ClientID, scopes: at.Scopes}, at.ClientID, at.ID, at.ExpiresAt)
	if err != nil {
		var oe *oidc.Error
		if errors.As(err, &oe) {
			return "", oe
		}
		return "", storage.InternalError("signing the access token", err)
	}
	var recordErr error
	e.Refs = h.cfg.Events.Refs(audit.RefToken, access)
	err = h.cfg.Events.RecordWith(ctx, e, func(ctx context.Context, row *audit.Event) error {
		recordErr = h.cfg.Store.RecordAccessTokenWithEvent(ctx, at, row)
		return recordErr
	})
	switch {
	case recordErr != nil:
		return "", storage.InternalError("recording the access token", recordErr)
	case err != nil:
		return "", storage.ErrAuditUnavailable(err)
	}
	return access, nil
}

// machineGrants are the grant types whose token requests are rate-limited
// per client and per address before anything else is done: they are what
// programs call in loops, and what a secret guesser would call.
var machineGrants = map[string]bool{string(oidc.GrantTypeClientCredentials): true}

// LimitMachineTokens answers 429 (with Retry-After) to a token request of
// a machine grant over its client's or its address's budget. The form is
// parsed here (the token endpoint only takes POSTed forms; postOnly runs
// first), which the library then reuses.
func (h *Handler) LimitMachineTokens(next http.Handler) http.Handler {
	if h.machineClientLimit == nil && h.machineAddrLimit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.ParseForm() != nil || !machineGrants[r.PostForm.Get("grant_type")] {
			next.ServeHTTP(w, r)
			return
		}
		ok, wait := h.machineAddrLimit.Allow(clientaddr.Key(h.cfg.Clients.FromRequest(r)))
		if ok {
			if id := requestClientID(r); id != "" && len(id) <= storage.MaxClientIDLen {
				ok, wait = h.machineClientLimit.Allow(id)
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
