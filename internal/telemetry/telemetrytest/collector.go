// Package telemetrytest is an OTLP/HTTP trace endpoint for tests: it keeps
// the spans a server exports, to check their names and links and that
// they hold no secret. Only tests import it.
package telemetrytest

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Collector accepts `POST /v1/traces` (OTLP/HTTP, protobuf) and keeps every
// span it is sent, with its resource's attributes.
type Collector struct {
	// URL is the base URL: the value of OTEL_EXPORTER_OTLP_ENDPOINT.
	URL string

	mu       sync.Mutex
	spans    []*tracepb.Span
	resource []*commonpb.KeyValue
}

// New starts a Collector, closed when the test ends.
func New(t testing.TB) *Collector {
	c := &Collector{}
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		c.resource = append(c.resource, rs.GetResource().GetAttributes()...)
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// Spans returns the spans received so far. A server flushes its spans when
// it stops: stop it first to see them all.
func (c *Collector) Spans() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...)
}

// Resource returns the resource attributes received so far.
func (c *Collector) Resource() []*commonpb.KeyValue {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*commonpb.KeyValue(nil), c.resource...)
}

// Text returns everything the spans received so far say (names, status
// messages, attributes, events and the resource), for a search for
// secrets.
func (c *Collector) Text() string {
	var b strings.Builder
	for _, sp := range c.Spans() {
		b.WriteString(SpanText(sp))
	}
	writeAttrs(&b, c.Resource())
	return b.String()
}

// SpanText is everything a span says: its name, status message,
// attributes, and its events' names and attributes.
func SpanText(s *tracepb.Span) string {
	var b strings.Builder
	b.WriteString(s.GetName() + "\n" + s.GetStatus().GetMessage() + "\n")
	writeAttrs(&b, s.GetAttributes())
	for _, ev := range s.GetEvents() {
		b.WriteString(ev.GetName() + "\n")
		writeAttrs(&b, ev.GetAttributes())
	}
	for _, l := range s.GetLinks() {
		writeAttrs(&b, l.GetAttributes())
	}
	return b.String()
}

func writeAttrs(b *strings.Builder, attrs []*commonpb.KeyValue) {
	for _, a := range attrs {
		v, _ := json.Marshal(a.GetValue())
		b.WriteString(a.GetKey() + "=" + string(v) + "\n")
	}
}

// ID returns a span's or trace's id in hex, as logs write it.
func ID(id []byte) string { return hex.EncodeToString(id) }
