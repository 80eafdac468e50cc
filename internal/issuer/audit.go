package issuer

import (
	"context"
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
)

// The audit trail (internal/audit) gets one event from each place where
// what it records happens: the login page (login.go, attempts.go), the
// token endpoint (server.go, storage.go, machine.go, exchange.go), the
// revocation and end-session endpoints, the device pages and key rotation.
// Refusals of requests that proved no identity go through recordRefusal,
// which aggregates them; everything else through record, one row each.
// Every event of a request carries its client address and user agent,
// which requestInfo puts in the request's context once, so that the
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

type requestInfoKey struct{}

// requestInfo is what the audit trail keeps of the request that caused an
// event.
type requestInfo struct {
	addr      string
	userAgent string
	// group is the address as the per-address limits count it
	// (clientaddr.Key): what the rows of refusals are aggregated by.
	group string
}

// WithClientInfo puts the request's client address (as the per-address
// limits resolve it) and user agent in its context, where the audit events
// of what it causes find them. The provider's own handler does this for
// its requests; wrapping the whole server's handler too makes the
// requests the broker sends the provider in-process on behalf of an RPC
// (LoginCli, RefreshCli, RevokeCli), which inherit the RPC's context, be
// recorded with the RPC caller's address and user agent rather than none,
// and the refresh grace to tell RefreshCli's callers apart by that address
// (storage.grace). Information already in the context is kept.
func (i *Issuer) WithClientInfo(next http.Handler) http.Handler { return i.withRequestInfo(next) }

func (i *Issuer) withRequestInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Context().Value(requestInfoKey{}).(requestInfo); ok {
			next.ServeHTTP(w, r)
			return
		}
		info := requestInfo{userAgent: r.UserAgent()}
		if a := i.cfg.Clients.FromRequest(r); a.IsValid() {
			info.addr, info.group = a.String(), clientaddr.Label(clientaddr.Key(a))
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
	})
}

// record records e with the client address and user agent of the request
// in ctx. An error means the event was required (NSAUTH_AUDIT_REQUIRED)
// and not recorded: the caller fails its request and issues nothing.
func (i *Issuer) record(ctx context.Context, e audit.Event) error {
	if info, ok := ctx.Value(requestInfoKey{}).(requestInfo); ok {
		e.ClientAddr, e.UserAgent = info.addr, info.userAgent
	}
	return i.cfg.Audit.Record(ctx, e)
}

// recordRefusal records e, the refusal of a request that proved no
// identity (no password, passkey, client secret or subject token that
// authenticated), with the client address of the request in ctx grouped
// as the per-address limits group it (an IPv6 address stands for its
// /64): audit.Recorder.RecordRefusal aggregates such refusals by address,
// reason and minute, and bounds the rows they add. Events of an
// authenticated subject and successes go to record. Its error is record's.
func (i *Issuer) recordRefusal(ctx context.Context, e audit.Event) error {
	if info, ok := ctx.Value(requestInfoKey{}).(requestInfo); ok {
		e.ClientAddr = info.group
	}
	return i.cfg.Audit.RecordRefusal(ctx, e)
}

// refs returns the keyed HMACs of the named secrets (audit.RefToken and
// the like, each followed by its value), leaving out empty ones; nil when
// none is left. Nothing but the HMAC leaves this function.
func (i *Issuer) refs(kv ...string) map[string]string {
	var out map[string]string
	for j := 0; j+1 < len(kv); j += 2 {
		if kv[j+1] == "" {
			continue
		}
		ref := i.cfg.Audit.Ref(kv[j+1])
		if ref == "" {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(kv)/2)
		}
		out[kv[j]] = ref
	}
	return out
}

// refSuccessor names the HMAC of the refresh token a rotation issued, next
// to the presented one's (audit.RefRefresh).
const refSuccessor = "successor_hmac"
