package issuer

import (
	"context"
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/events"
)

// The audit trail (internal/audit) gets one event from each place where
// what it records happens: the login page (login.go, attempts.go), the
// token endpoint (server.go, storage.go, machine.go, exchange.go), the
// revocation and end-session endpoints, the device pages and key rotation.
// Each is emitted once through the issuer's events.Recorder (i.events),
// which writes the row and derives the metric and the log line from it.
// Refusals of requests that proved no identity go through its Refusal,
// which aggregates them; everything else through Record, one row each.
// Every event of a request carries its client address and user agent,
// which withRequestInfo puts in the request's context once, so that the
// storage methods the library calls, which see no request, record them
// too.

// msgAuditUnavailable is all a client learns when an event that
// NSAUTH_AUDIT_REQUIRED makes mandatory could not be recorded.
const msgAuditUnavailable = "audit unavailable"

// errAuditUnavailable is the token endpoint's answer when a required event
// could not be recorded: nothing is issued.
func errAuditUnavailable(err error) *oidc.Error {
	return oidc.ErrServerError().WithDescription(msgAuditUnavailable).WithParent(err)
}

// WithClientInfo puts the request's client address (as the per-address
// limits resolve it) and user agent in its context (events.WithClient),
// where the audit events of what it causes find them. The provider's own
// handler does this for its requests; wrapping the whole server's handler
// too makes the requests the broker sends the provider in-process on
// behalf of an RPC (LoginCli, RefreshCli, RevokeCli), which inherit the
// RPC's context, be recorded with the RPC caller's address and user agent
// rather than none, and the refresh grace to tell RefreshCli's callers
// apart by that address (storage.grace). Information already in the
// context is kept.
func (i *Issuer) WithClientInfo(next http.Handler) http.Handler { return i.withRequestInfo(next) }

func (i *Issuer) withRequestInfo(next http.Handler) http.Handler {
	return events.Middleware(i.requestClient, next)
}

// requestClient is what the audit trail keeps of r's client.
func (i *Issuer) requestClient(r *http.Request) events.Client {
	c := events.Client{UserAgent: r.UserAgent()}
	if a := i.cfg.Clients.FromRequest(r); a.IsValid() {
		c.Addr, c.Group = a.String(), clientaddr.Label(clientaddr.Key(a))
	}
	return c
}

// record records e, one row, without deriving its metric or log line:
// for the login pages' sites, which still tell the Observer themselves
// until they call i.events.Record (then this goes). An error means the
// event was required (NSAUTH_AUDIT_REQUIRED) and not recorded: the caller
// fails its request and issues nothing.
func (i *Issuer) record(ctx context.Context, e audit.Event) error {
	if c, ok := events.ClientFrom(ctx); ok {
		e.ClientAddr, e.UserAgent = c.Addr, c.UserAgent
	}
	return i.cfg.Audit.Record(ctx, e)
}

// recordRefusal is record for the refusal of a request that proved no
// identity, aggregated as events.Recorder.Refusal aggregates it, and
// likewise left to the login pages' sites until they call
// i.events.Refusal.
func (i *Issuer) recordRefusal(ctx context.Context, e audit.Event) error {
	if c, ok := events.ClientFrom(ctx); ok {
		e.ClientAddr = c.Group
	}
	return i.cfg.Audit.RecordRefusal(ctx, e)
}

// refs returns the keyed HMACs of the named secrets (events.Recorder.Refs).
func (i *Issuer) refs(kv ...string) map[string]string { return i.events.Refs(kv...) }

// refSuccessor names the HMAC of the refresh token a rotation issued, next
// to the presented one's (audit.RefRefresh).
const refSuccessor = "successor_hmac"
