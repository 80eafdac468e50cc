package telemetry

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// Handler returns h traced: one server span per request, named by method
// and path ("GET /authorize"). A request for which trustParent is true
// continues the caller's trace; any other starts a trace of its own,
// linked to the caller's, as suits a public endpoint whose callers may
// send any traceparent. It returns h itself when tracing is off. Query
// strings and bodies are never recorded.
func (t *Tracing) Handler(h http.Handler, operation string, trustParent func(*http.Request) bool) http.Handler {
	if !t.Enabled() {
		return h
	}
	return otelhttp.NewHandler(h, operation,
		otelhttp.WithPublicEndpointFn(func(r *http.Request) bool { return !trustParent(r) }),
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
		otelhttp.WithMeterProvider(noopMeters),
		otelhttp.WithSpanNameFormatter(spanName),
	)
}

// Transport returns rt traced: one client span per request, named by
// method and path, with the trace context sent along. It returns rt itself
// when tracing is off. Query strings and bodies are never exported.
func (t *Tracing) Transport(rt http.RoundTripper) http.RoundTripper {
	if !t.Enabled() {
		return rt
	}
	return otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
		otelhttp.WithMeterProvider(noopMeters),
		otelhttp.WithSpanNameFormatter(spanName),
	)
}

// spanName names a span by method and path, never the query: the path of
// an OpenID provider's endpoint is low in cardinality and holds no secret.
func spanName(_ string, r *http.Request) string {
	return r.Method + " " + r.URL.Path
}
