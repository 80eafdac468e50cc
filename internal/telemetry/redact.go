package telemetry

import (
	"context"
	"log/slog"
	"net/url"
	"regexp"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// redactingExporter strips what must never leave the process from every
// span before export, whichever instrumentation recorded it: the query of a
// URL (an authorization request's state and code challenge, a callback's
// code) and its user info. otelhttp's client spans record url.full with
// its query, and a transport error's message quotes the URL; bodies and
// headers are never recorded by the instrumentation nsauth configures.
//
// It also keeps export failures from OpenTelemetry's global error handler:
// they are logged, and the spans of a failed batch are dropped.
type redactingExporter struct {
	sdktrace.SpanExporter
	failures *failureLog
}

func (e redactingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = redactedSpan{s}
	}
	if err := e.SpanExporter.ExportSpans(ctx, out); err != nil {
		e.failures.note(len(spans), err)
	}
	return nil
}

// failureLog logs export failures, at most one line a minute, counting
// the spans dropped since the last line.
type failureLog struct {
	logger   *slog.Logger
	endpoint string

	mu      sync.Mutex
	last    time.Time
	dropped int
}

func newFailureLog(logger *slog.Logger, endpoint string) *failureLog {
	return &failureLog{logger: logger, endpoint: redactText(endpoint)}
}

func (l *failureLog) note(spans int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropped += spans
	now := time.Now()
	if now.Sub(l.last) < time.Minute {
		return
	}
	l.logger.Warn("exporting spans failed; dropped them", "endpoint", l.endpoint, "dropped_spans", l.dropped, "error", redactText(err.Error()))
	l.last, l.dropped = now, 0
}

// redactedSpan is a span whose attributes, events and status are redacted.
type redactedSpan struct{ sdktrace.ReadOnlySpan }

func (s redactedSpan) Attributes() []attribute.KeyValue {
	return redactAttributes(s.ReadOnlySpan.Attributes())
}

func (s redactedSpan) Events() []sdktrace.Event {
	events := s.ReadOnlySpan.Events()
	out := make([]sdktrace.Event, len(events))
	for i, ev := range events {
		ev.Name = redactText(ev.Name)
		ev.Attributes = redactAttributes(ev.Attributes)
		out[i] = ev
	}
	return out
}

func (s redactedSpan) Status() sdktrace.Status {
	st := s.ReadOnlySpan.Status()
	st.Description = redactText(st.Description)
	return st
}

// Attribute keys whose value is a whole query, dropped.
var queryKeys = map[attribute.Key]bool{"url.query": true, "http.query": true}

func redactAttributes(attrs []attribute.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(attrs))
	for _, a := range attrs {
		if queryKeys[a.Key] {
			continue
		}
		if a.Value.Type() == attribute.STRING {
			a.Value = attribute.StringValue(redactText(a.Value.AsString()))
		}
		out = append(out, a)
	}
	return out
}

// urlish matches a URL or a request target with a query or fragment.
var urlish = regexp.MustCompile(`(?:[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'?#]*|(?:^|\s|")/[^\s"'?#]*)[?#][^\s"']*`)

// redactText removes the query, fragment and user info of every URL in s.
func redactText(s string) string {
	if !containsAny(s, "?#") {
		return s
	}
	return urlish.ReplaceAllStringFunc(s, func(m string) string {
		prefix := ""
		if m[0] == ' ' || m[0] == '\t' || m[0] == '"' || m[0] == '\n' {
			prefix, m = m[:1], m[1:]
		}
		if u, err := url.Parse(m); err == nil {
			u.RawQuery, u.Fragment, u.RawFragment, u.User, u.ForceQuery = "", "", "", nil, false
			return prefix + u.String()
		}
		if i := indexAny(m, "?#"); i >= 0 {
			m = m[:i]
		}
		return prefix + m
	})
}

func containsAny(s, chars string) bool { return indexAny(s, chars) >= 0 }

func indexAny(s, chars string) int {
	for i := 0; i < len(s); i++ {
		for j := 0; j < len(chars); j++ {
			if s[i] == chars[j] {
				return i
			}
		}
	}
	return -1
}
