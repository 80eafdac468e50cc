package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// KeyName is the store's instance value holding the HMAC key of
// [Recorder.Ref]. It is a secret: kept sealed with store.EnsureSecret.
const KeyName = "audit_hmac_key"

// ErrNotRecorded wraps the error of an event that could not be recorded
// when recording is required (Config.Required): the caller MUST fail the
// request it was recording.
var ErrNotRecorded = errors.New("the audit event could not be recorded")

// Recorder records events. Implementations are safe for concurrent use.
type Recorder interface {
	// Record fills the event's Time, Replica and TraceID (from ctx's span)
	// when they are empty, and records it. A value of Refs that is not
	// Ref's output is recorded as its Ref, never as given. A non-nil error wraps
	// ErrNotRecorded and means the request MUST fail: it is returned only
	// when recording is required; otherwise failures are logged and
	// counted, and Record returns nil.
	Record(ctx context.Context, e Event) error
	// RecordRefusal records the refusal of a request that proved no
	// identity: a password, passkey, client secret or subject token that
	// did not authenticate, or a request refused before any was checked.
	// Such requests cost their sender nothing, so their events are
	// aggregated rather than stored one row each (refusals.go): the
	// refusals of one minute that agree in every field but the time, user
	// agent, trace id and replica share one row, whose Count says how many
	// they are. Its error is Record's.
	RecordRefusal(ctx context.Context, e Event) error
	// RecordWith records e in the write transaction of the change it
	// tells of: write stores the change and, when row is not nil, row in
	// the same transaction of the Sink's database (row is nil when
	// nothing is stored: no Sink, or Nop), so that the trail holds the
	// event exactly when the change was made, at the cost of one commit
	// for both. RecordWith fills row as Record fills an event; write may
	// complete it with what only its transaction learns (a rotation that
	// turned out a retry), and what is streamed is row as stored. An error of
	// write is returned as it is, required or not: the change failed, and
	// its event with it. Once write succeeds the event goes to the Stream,
	// whose failure is Record's.
	RecordWith(ctx context.Context, e Event, write func(ctx context.Context, row *Event) error) error
	// Ref returns the keyed HMAC that stands for a secret value (a token,
	// a code) in Event.Refs. The empty string stays empty.
	Ref(secret string) string
}

// Nop records nothing: for tests and for commands that do not audit. Its
// Ref returns "" so no value of a secret can leak through it.
var Nop Recorder = nop{}

type nop struct{}

func (nop) Record(context.Context, Event) error        { return nil }
func (nop) RecordRefusal(context.Context, Event) error { return nil }
func (nop) Ref(string) string                          { return "" }
func (nop) RecordWith(ctx context.Context, _ Event, write func(context.Context, *Event) error) error {
	return write(ctx, nil)
}

// Sink stores events: the store implements it.
type Sink interface {
	// InsertAuditEvent stores e as a row of its own.
	InsertAuditEvent(ctx context.Context, e Event) error
	// CountAuditEvent adds e.Count to the count of the aggregated row
	// stored under key, storing e as that row when there is none yet. It
	// is one atomic statement, so that replicas counting into one row at
	// the same time lose nothing.
	CountAuditEvent(ctx context.Context, key string, e Event) error
}

// Config configures an [Auditor].
type Config struct {
	// Key is the HMAC key of Ref (the opened value of KeyName). New
	// refuses a key shorter than 16 bytes. Empty means a recorder without
	// refs, for commands that open the store without its secret key (nsauth
	// users): Ref returns "" and every value of Refs is dropped.
	Key []byte
	// Sink stores events (the store). Nil stores nothing.
	Sink Sink
	// Stream, when set, receives every event as one JSON line.
	Stream *Stream
	// Required makes Record return an error when an event cannot be
	// written to the Sink or the Stream, so the request fails rather than
	// going unrecorded (NSAUTH_AUDIT_REQUIRED). Default false: failures
	// are logged and counted.
	Required bool
	// Replica names this process in events (defaults to the host name).
	Replica string
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger reports events that could not be recorded. Nil discards.
	Logger *slog.Logger
	// WriteTimeout bounds one write to the Sink. Default 5 s. The write
	// does not end when the request's context is cancelled: a client that
	// hangs up does not erase its trace.
	WriteTimeout time.Duration
	// RefusalRowsPerMinute bounds how many aggregated rows of refusals
	// ([Recorder.RecordRefusal]) this Auditor starts in one minute: past
	// it, a refusal that would start another is counted in the minute's
	// RefusalsDropped row of its type and reason instead. Zero means
	// [DefaultRefusalRowsPerMinute].
	RefusalRowsPerMinute int
	// GroupCommit, when the Sink is a [BatchSink], has one goroutine store
	// the events of Record, those that wait together in one write (see
	// groupcommit.go); Record still returns once its row is committed.
	// The owner MUST call [Auditor.Close] before closing the Sink, or the
	// writer goroutine is left running. Default false: each event is
	// written by its Record, which suits a command that records a few.
	GroupCommit bool
	// QueueLength bounds the events GroupCommit holds queued: past it,
	// Record waits up to WriteTimeout for room, and fails as a write that
	// failed. Zero means [DefaultQueueLength].
	QueueLength int
}

// Auditor is the [Recorder] of a running server.
type Auditor struct {
	cfg      Config
	failures atomic.Uint64
	refusals *refusals
	// group is the queue of Config.GroupCommit; nil without.
	group *groupCommit
}

// New returns an Auditor.
func New(cfg Config) (*Auditor, error) {
	if len(cfg.Key) > 0 && len(cfg.Key) < 16 {
		return nil, errors.New("audit: the HMAC key must be at least 16 bytes")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.RefusalRowsPerMinute <= 0 {
		cfg.RefusalRowsPerMinute = DefaultRefusalRowsPerMinute
	}
	if cfg.QueueLength <= 0 {
		cfg.QueueLength = DefaultQueueLength
	}
	a := &Auditor{cfg: cfg, refusals: newRefusals(cfg.RefusalRowsPerMinute)}
	if bs, ok := cfg.Sink.(BatchSink); ok && cfg.GroupCommit {
		a.group = &groupCommit{sink: bs, queue: make(chan queued, cfg.QueueLength), stopped: make(chan struct{})}
		go a.commitLoop()
	}
	return a, nil
}

// Ref is [Hash] under the Auditor's key, or "" without a key.
func (a *Auditor) Ref(secret string) string {
	if len(a.cfg.Key) == 0 {
		return ""
	}
	return Hash(a.cfg.Key, secret)
}

// Failures counts the events that could not be recorded (to the Sink or
// the Stream) since New, for metrics.
func (a *Auditor) Failures() uint64 { return a.failures.Load() }

// Record implements [Recorder].
func (a *Auditor) Record(ctx context.Context, e Event) error {
	e = a.fill(ctx, e)
	if a.group != nil && e.Type.Valid() {
		if done, err := a.recordGrouped(ctx, e); done {
			return err
		}
	}
	return a.write(ctx, e, func(wctx context.Context) error { return a.cfg.Sink.InsertAuditEvent(wctx, e) }, true)
}

// RecordWith implements [Recorder]. The event does not go through group
// commit: it shares the transaction of its change instead.
func (a *Auditor) RecordWith(ctx context.Context, e Event, write func(ctx context.Context, row *Event) error) error {
	e = a.fill(ctx, e)
	var row *Event
	if a.cfg.Sink != nil && e.Type.Valid() {
		row = &e
	}
	if err := write(ctx, row); err != nil {
		return err
	}
	return a.write(ctx, e, func(context.Context) error { return nil }, true)
}

// fill completes and bounds an event as Record's documentation says.
func (a *Auditor) fill(ctx context.Context, e Event) Event {
	if e.Time.IsZero() {
		e.Time = a.cfg.Now()
	}
	e.Time = e.Time.UTC().Truncate(time.Millisecond)
	if e.Replica == "" {
		e.Replica = a.cfg.Replica
	}
	if e.TraceID == "" {
		if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
			e.TraceID = sc.TraceID().String()
		}
	}
	e.ID, e.Count = 0, 0
	e.normalize()
	e.Refs = a.refs(e.Refs)
	return e
}

// write stores e with store (given a context bounded by WriteTimeout that
// outlives the request's) and, when stream says so, writes it to the
// Stream; a failure is logged and counted, and returned when recording is
// required.
func (a *Auditor) write(ctx context.Context, e Event, store func(context.Context) error, stream bool) error {
	var errs []error
	if !e.Type.Valid() {
		errs = append(errs, fmt.Errorf("unknown event type %q", e.Type))
	} else {
		if a.cfg.Sink != nil {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.WriteTimeout)
			err := store(wctx)
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("storing: %w", err))
			}
		}
		if stream && a.cfg.Stream != nil {
			if err := a.cfg.Stream.Write(e); err != nil {
				errs = append(errs, fmt.Errorf("streaming: %w", err))
			}
		}
	}
	return a.failed(ctx, e.Type, errs)
}

// failed logs and counts the errors of recording an event of type t, if
// any, and returns the error Record returns.
func (a *Auditor) failed(ctx context.Context, t Type, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	a.failures.Add(1)
	err := errors.Join(errs...)
	a.cfg.Logger.ErrorContext(ctx, "audit event not recorded", "type", string(t), "required", a.cfg.Required, "err", err)
	if a.cfg.Required {
		return fmt.Errorf("%w (%s): %w", ErrNotRecorded, t, err)
	}
	return nil
}

// refs copies an event's refs, keeping the values Ref made and hashing
// any other: a caller that passes a raw token by mistake still stores
// only its HMAC. Empty values (Nop's refs) are dropped.
func (a *Auditor) refs(in map[string]string) map[string]string {
	if len(in) == 0 || len(a.cfg.Key) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for name, v := range in {
		if v == "" {
			continue
		}
		if !isRef(v) {
			v = a.Ref(v)
		}
		out[truncate(name, maxField)] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// isRef reports whether v has the form of Hash's output.
func isRef(v string) bool {
	if len(v) != 2*refBytes {
		return false
	}
	for _, c := range v {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// refBytes is how much of the HMAC a ref keeps: 128 bits.
const refBytes = 16

// refLabel separates this HMAC's inputs from any other use of the key.
const refLabel = "nsauth audit ref v1\x00"

// Hash returns the keyed HMAC-SHA256 of a secret value as it appears in
// Event.Refs: the first 128 bits, in hex. The empty string stays empty.
func Hash(key []byte, secret string) string {
	if secret == "" {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(refLabel))
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil)[:refBytes])
}
