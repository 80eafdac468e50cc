// Package events emits the provider's events once: audit record, metrics
// and log line derived from one event.
//
// A handler that sees something happen (a login refused, a code replayed,
// a token revoked) builds one [audit.Event] and hands it to a [Recorder];
// it calls neither the logger nor the metrics for it. The Recorder writes
// the audit row and derives the metric and the log line from the same
// event in one function ([derive]), so the counts cannot drift from the
// record, as Hydra's x/events does for traces and metrics.
//
// Three ways in, by what the audit trail keeps of the happening:
//
//	// one row (successes, events of an authenticated subject)
//	err := rec.Record(ctx, audit.Event{Type: audit.CodeExchanged, Subject: id, ClientID: client})
//
//	// a refusal of a request that proved no identity: aggregated rows
//	err := rec.Refusal(ctx, audit.Event{Type: audit.LoginFailed, Outcome: audit.Failure, Reason: "bad_password"})
//
//	// no row: a login completed, a check that failed on an internal error
//	rec.Note(ctx, audit.Event{Type: events.LoginCompleted, Username: user.Username})
//
// An error from Record or Refusal means the event was required
// (NSAUTH_AUDIT_REQUIRED) and not recorded: the caller fails its request
// and issues nothing. The metric counts the happening all the same.
//
// Converting a site that called the audit trail, the Observer and the
// logger for one happening means deleting the Observer call and the log
// line and keeping the event: for example, in the login page,
//
//	i.cfg.Observer.login(LoginLockedOut)
//	if i.recordLoginFailure(ctx, loginFailure{reason: reasonLocked, ...}) != nil {
//
// becomes the second line alone, recordLoginFailure calling
// i.events.Refusal; [derive] counts the LoginFailed event with reason
// "locked" as a locked_out login.
package events

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/nsauth/nsauth/internal/audit"
)

// Happenings the audit trail keeps no row of, told to [Recorder.Note] for
// their metric and log line. They are never written to the trail.
const (
	// LoginCompleted: a login proved every factor it needed; Username
	// and ClientID say whose and for which client.
	LoginCompleted audit.Type = "login.completed"
	// LoginErrored: checking a login failed on an internal error (the
	// store, a counter); Reason says what was being checked.
	LoginErrored audit.Type = "login.errored"
	// DeviceCodeReplayed: a device code was presented again after its
	// tokens were issued, and they were revoked.
	DeviceCodeReplayed audit.Type = "device.code_replayed"
)

// Recorder emits events: the audit row, the metric and the log line of
// each. Its methods are safe for concurrent use.
type Recorder struct {
	audit audit.Recorder
	obs   *Observer
	log   *slog.Logger
}

// New returns a Recorder that writes events to a, counts them with o and
// logs them to log. A nil a records nothing (audit.Nop), a nil o counts
// nothing and a nil log logs nothing.
func New(a audit.Recorder, o *Observer, log *slog.Logger) *Recorder {
	if a == nil {
		a = audit.Nop
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{audit: a, obs: o, log: log}
}

// Audit is the audit trail the events are written to: for what records
// events of its own (key rotation) and for flushing.
func (r *Recorder) Audit() audit.Recorder { return r.audit }

// Record records e, one row, with the client address and user agent of
// the request in ctx ([WithClient]), and derives its metric and log line.
// An error means the event was required and not recorded.
func (r *Recorder) Record(ctx context.Context, e audit.Event) error {
	if c, ok := ClientFrom(ctx); ok {
		e.ClientAddr, e.UserAgent = c.Addr, c.UserAgent
	}
	r.emit(ctx, e)
	return r.audit.Record(ctx, e)
}

// RecordWith is [Recorder.Record] for an event stored in the write
// transaction of the change it tells of (audit.Recorder.RecordWith):
// write stores the change and row (when not nil) together, and may
// complete row with what only its transaction learns. The metric and log
// line are derived from the event as stored, once write has succeeded: a
// change that failed did not happen. An error of write is returned as it
// is.
func (r *Recorder) RecordWith(ctx context.Context, e audit.Event, write func(ctx context.Context, row *audit.Event) error) error {
	if c, ok := ClientFrom(ctx); ok {
		e.ClientAddr, e.UserAgent = c.Addr, c.UserAgent
	}
	wrote, final := false, e
	err := r.audit.RecordWith(ctx, e, func(ctx context.Context, row *audit.Event) error {
		if err := write(ctx, row); err != nil {
			return err
		}
		if row != nil {
			final = *row // as the write completed it
		}
		wrote = true
		return nil
	})
	if wrote {
		r.emit(ctx, final)
	}
	return err
}

// Refusal records e, the refusal of a request that proved no identity (no
// password, passkey, client secret or subject token that authenticated),
// with the client address of the request in ctx grouped as the
// per-address limits group it (an IPv6 address stands for its /64):
// audit.Recorder.RecordRefusal aggregates such refusals by address,
// reason and minute, and bounds the rows they add. It derives the metric
// and log line as Record does; its error is Record's.
func (r *Recorder) Refusal(ctx context.Context, e audit.Event) error {
	if c, ok := ClientFrom(ctx); ok {
		e.ClientAddr = c.Group
	}
	r.emit(ctx, e)
	return r.audit.RecordRefusal(ctx, e)
}

// Note emits the metric and log line of e, a happening the audit trail
// keeps no row of (the types above, or a refusal the trail does not
// record, such as a second factor refused before it was checked).
func (r *Recorder) Note(ctx context.Context, e audit.Event) {
	if c, ok := ClientFrom(ctx); ok {
		e.ClientAddr = c.Addr
	}
	r.emit(ctx, e)
}

// System records e, a happening no request caused (a signing key added
// on schedule), one row, and derives its log line, as Record does; the
// row names no client address or user agent even when ctx is a request's
// that triggered the work. Its error is Record's.
func (r *Recorder) System(ctx context.Context, e audit.Event) error {
	e.ClientAddr, e.UserAgent = "", ""
	r.emit(ctx, e)
	return r.audit.Record(ctx, e)
}

// Failed emits the metric and log line of e, a check that failed on an
// internal error (e.Type [LoginErrored], e.Reason what was being checked),
// which the audit trail keeps no row of; the log line carries err, so that
// the happening is logged once, with its cause.
func (r *Recorder) Failed(ctx context.Context, e audit.Event, err error) {
	if c, ok := ClientFrom(ctx); ok {
		e.ClientAddr = c.Addr
	}
	r.emit(ctx, e, slog.Any("error", err))
}

// Refs returns the keyed HMACs of the named secrets (audit.RefToken and
// the like, each followed by its value), leaving out empty ones; nil when
// none is left. Nothing but the HMAC leaves this function.
func (r *Recorder) Refs(kv ...string) map[string]string {
	var out map[string]string
	for j := 0; j+1 < len(kv); j += 2 {
		if kv[j+1] == "" {
			continue
		}
		ref := r.audit.Ref(kv[j+1])
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

func (r *Recorder) emit(ctx context.Context, e audit.Event, extra ...slog.Attr) {
	d := derive(e)
	if d.login != "" {
		r.obs.login(d.login)
	}
	if d.lockout {
		r.obs.lockout()
	}
	if d.replay != "" {
		r.obs.replay(d.replay)
	}
	if d.msg == "" || !r.log.Enabled(ctx, d.level) {
		return
	}
	// The event's fields, never its Refs: those are HMACs for the trail.
	attrs := make([]slog.Attr, 0, 6)
	attrs = append(attrs, slog.String("event", string(e.Type)))
	for _, kv := range [...][2]string{
		{"reason", e.Reason}, {"username", e.Username}, {"user_id", e.Subject},
		{"client_id", e.ClientID}, {"target", e.Target}, {"client_address", e.ClientAddr},
	} {
		if kv[1] != "" {
			attrs = append(attrs, slog.String(kv[0], kv[1]))
		}
	}
	r.log.LogAttrs(ctx, d.level, d.msg, append(attrs, extra...)...)
}

type clientKey struct{}

// Client is what the audit trail keeps of the request that caused an
// event.
type Client struct {
	// Addr is the client address (package clientaddr's rule).
	Addr string
	// Group is the address as the per-address limits count it
	// (clientaddr.Key): what the rows of refusals are aggregated by.
	Group string
	// UserAgent is the request's User-Agent.
	UserAgent string
}

// WithClient returns ctx carrying c, where the events of what the request
// causes find it, even in the storage methods the OpenID library calls,
// which see no request.
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFrom returns the Client that [WithClient] put in ctx.
func ClientFrom(ctx context.Context) (Client, bool) {
	c, ok := ctx.Value(clientKey{}).(Client)
	return c, ok
}

// Middleware puts each request's Client, as client resolves it, in its
// context; a Client already there is kept (the broker's in-process
// requests inherit the RPC caller's).
func Middleware(client func(*http.Request) Client, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := ClientFrom(r.Context()); ok {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithClient(r.Context(), client(r))))
	})
}
