// Package telemetry sets up nsauth's OpenTelemetry tracing from the
// standard OTEL_* environment variables, and gives the rest of the server
// what it needs to take part: the tracer provider, wrappers for HTTP
// handlers and transports, and the trace id of a context for log lines and
// audit events.
//
// Tracing is on only when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set and OTEL_SDK_DISABLED is not
// "true". Spans go out over OTLP/HTTP (protobuf); OTEL_EXPORTER_OTLP_PROTOCOL
// (or its _TRACES_ form) set to "grpc" is refused, so that an operator does
// not believe spans are exported when they are not. Everything else
// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and its
// _ARG, the exporter's headers, timeout and TLS settings) is read by the
// OpenTelemetry SDK itself, as documented there.
//
// When tracing is off the provider is OpenTelemetry's no-op one and
// [Tracing.Enabled] is false: callers then add no instrumentation at all,
// so that requests pay nothing for it.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// DefaultServiceName is the service.name of nsauth's spans when
// OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) does not
// name one.
const DefaultServiceName = "nsauth"

// ShutdownTimeout bounds the flush of buffered spans at [Tracing.Shutdown]
// when its context has no earlier deadline.
const ShutdownTimeout = 5 * time.Second

// Tracing is the server's tracing: a tracer provider, and whether spans are
// exported at all.
type Tracing struct {
	provider   trace.TracerProvider
	propagator propagation.TextMapPropagator
	sdk        *sdktrace.TracerProvider // nil when off
}

// Off returns tracing that is off: a no-op provider.
func Off() *Tracing {
	return &Tracing{provider: noop.NewTracerProvider(), propagator: propagation.NewCompositeTextMapPropagator()}
}

// New returns the tracing that getenv's OTEL_* variables describe (getenv
// is os.Getenv when nil). When no OTLP endpoint is set, or
// OTEL_SDK_DISABLED=true, it returns [Off]. getenv gives the variables that
// switch tracing on, its protocol and its endpoint; the SDK reads the
// others (service name, resource, sampler, exporter headers and timeout,
// batching) from the process environment itself.
//
// Export failures are logged to logger (at most one line a minute) rather
// than handed to OpenTelemetry's global error handler, which would print
// them to the process's standard error. A nil logger discards them.
func New(ctx context.Context, getenv func(string) string, logger *slog.Logger) (*Tracing, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") ||
		(getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "") {
		return Off(), nil
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		switch p := strings.TrimSpace(getenv(name)); p {
		case "", "http/protobuf":
			continue
		default:
			return nil, fmt.Errorf("%s=%s is not supported: nsauth exports spans over OTLP/HTTP only (http/protobuf)", name, p)
		}
	}
	// The endpoint is read here, from getenv, as the SDK would read it
	// (the traces variable, a full URL, wins over the base one): the
	// server's environment need not be the process's (tests).
	endpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = strings.TrimRight(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "/") + "/v1/traces"
	}
	exporter, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("creating the OTLP trace exporter: %w", err)
	}
	// The SDK's defaults, then the environment (OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES override the default service name).
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("reading OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	// The sampler is the SDK's default, which honours OTEL_TRACES_SAMPLER
	// and OTEL_TRACES_SAMPLER_ARG.
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(redactingExporter{SpanExporter: exporter, failures: newFailureLog(logger, endpoint)}),
		sdktrace.WithResource(res),
	)
	return &Tracing{
		provider:   tp,
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		sdk:        tp,
	}, nil
}

// Enabled reports whether spans are exported. When false, callers should
// add no instrumentation.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// Provider returns the tracer provider: the SDK's, or a no-op one.
func (t *Tracing) Provider() trace.TracerProvider { return t.provider }

// Propagator returns the propagator of trace context between processes
// (W3C traceparent and baggage); a no-op one when tracing is off.
func (t *Tracing) Propagator() propagation.TextMapPropagator { return t.propagator }

// Shutdown flushes buffered spans and stops the exporter, within ctx and at
// most [ShutdownTimeout]. It does nothing when tracing is off, and may be
// called more than once.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ShutdownTimeout)
	defer cancel()
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("flushing spans: %w", err)
	}
	return nil
}

// TraceID returns the hex trace id of the span in ctx, or "" when ctx
// holds no valid span (tracing off, or outside a request).
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// noopMeters keeps the instrumentation's own metrics off: nsauth's metrics
// are Prometheus series (see internal/server).
var noopMeters = metricnoop.NewMeterProvider()
