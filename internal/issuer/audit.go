package issuer

import (
	"net/http"

	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/events"
)

// The audit trail (internal/audit) gets one event from each place where
// what it records happens: the login pages (package authflow), the
// token endpoint (server.go, packages storage and grants), the
// revocation and end-session endpoints, the device pages and key rotation.
// Each is emitted once through the issuer's events.Recorder (i.events),
// which writes the row and derives the metric and the log line from it.
// Refusals of requests that proved no identity go through its Refusal,
// which aggregates them; everything else through Record, one row each.
// Every event of a request carries its client address and user agent,
// which withRequestInfo puts in the request's context once, so that the
// storage methods the library calls, which see no request, record them
// too.

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
