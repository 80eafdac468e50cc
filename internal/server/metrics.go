package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics records RPC counts and latencies.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// byProcedure holds each procedure's *procedureMetrics, so that a
	// successful call finds its series without hashing label values. Only
	// procedures served by handlers with this interceptor reach it (the
	// mux answers others), so it stays as small as the service.
	byProcedure sync.Map
}

// procedureMetrics are one procedure's series for the common outcome.
type procedureMetrics struct {
	ok       prometheus.Counter
	duration prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nsauth",
			Name:      "rpc_requests_total",
			Help:      "RPCs handled, by procedure and Connect code (\"ok\" for success).",
		}, []string{"procedure", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "nsauth",
			Name:      "rpc_duration_seconds",
			Help:      "RPC latency, by procedure.",
			Buckets:   []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"procedure"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *metrics) observe(procedure string, start time.Time, err error) {
	if err == nil {
		pm := m.forProcedure(procedure)
		pm.ok.Inc()
		pm.duration.Observe(time.Since(start).Seconds())
		return
	}
	m.record(procedure, start, connect.CodeOf(err).String())
}

func (m *metrics) record(procedure string, start time.Time, code string) {
	m.requests.WithLabelValues(procedure, code).Inc()
	m.forProcedure(procedure).duration.Observe(time.Since(start).Seconds())
}

func (m *metrics) forProcedure(procedure string) *procedureMetrics {
	if pm, ok := m.byProcedure.Load(procedure); ok {
		return pm.(*procedureMetrics)
	}
	pm, _ := m.byProcedure.LoadOrStore(procedure, &procedureMetrics{
		ok:       m.requests.WithLabelValues(procedure, "ok"),
		duration: m.duration.WithLabelValues(procedure),
	})
	return pm.(*procedureMetrics)
}

// interceptor implements connect.Interceptor.
func (m *metrics) interceptor() connect.Interceptor { return metricsInterceptor{m} }

type metricsInterceptor struct{ m *metrics }

func (i metricsInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		resp, err := next(ctx, req)
		i.m.observe(req.Spec().Procedure, start, err)
		return resp, err
	}
}

func (i metricsInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i metricsInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		if errors.Is(err, context.Canceled) {
			// A stream the client abandoned: counted as the client sees it.
			i.m.record(conn.Spec().Procedure, start, connect.CodeCanceled.String())
			return err
		}
		i.m.observe(conn.Spec().Procedure, start, err)
		return err
	}
}
