package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns a metrics registry with the Go runtime's and the
// process's collectors: what [Config.Registry] defaults to.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// AuthMetrics are the series of authentication events, fed by the layers
// that see them through their hooks (the built-in provider's observer, the
// token verifier's cache hook, the broker's latency hook). Every label has
// a small fixed set of values. Its methods are safe for concurrent use.
type AuthMetrics struct {
	reg           prometheus.Registerer
	logins        *prometheus.CounterVec
	lockouts      prometheus.Counter
	replays       *prometheus.CounterVec
	cacheLookups  *prometheus.CounterVec
	cacheHit      prometheus.Counter
	cacheMiss     prometheus.Counter
	providerTimes *prometheus.HistogramVec
}

// NewAuthMetrics registers the authentication series in reg.
func NewAuthMetrics(reg prometheus.Registerer) *AuthMetrics {
	m := &AuthMetrics{
		reg: reg,
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nsauth", Name: "logins_total",
			Help: "Password logins at the built-in provider, by outcome (success, wrong_credentials, locked_out, busy, error).",
		}, []string{"outcome"}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "nsauth", Name: "lockouts_total",
			Help: "Failed logins that used the last attempt their limits allowed, locking the account or address out for a while.",
		}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nsauth", Name: "replays_total",
			Help: "One-time credentials presented again, whose issued tokens were revoked, by kind (refresh_token: refresh-token reuse; authorization_code; device_code).",
		}, []string{"kind"}),
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nsauth", Name: "token_verification_cache_total",
			Help: "Lookups in the access-token verification cache, by result (hit, miss).",
		}, []string{"result"}),
		providerTimes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "nsauth", Name: "provider_request_duration_seconds",
			Help:    "Requests to the OpenID provider (over the network, or in process for the built-in one), by endpoint.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
	}
	m.cacheHit = m.cacheLookups.WithLabelValues("hit")
	m.cacheMiss = m.cacheLookups.WithLabelValues("miss")
	reg.MustRegister(m.logins, m.lockouts, m.replays, m.cacheLookups, m.providerTimes)
	return m
}

// AuditRefusalsDropped exports dropped, read at each scrape, as
// nsauth_audit_refusals_dropped_total: the refusals the built-in
// provider's audit trail counted in a dropped row, past its bound of rows
// a minute (audit.Auditor.RefusalsDropped). Call it once.
func (m *AuthMetrics) AuditRefusalsDropped(dropped func() uint64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "nsauth", Name: "audit_refusals_dropped_total",
		Help: "Refused unauthenticated requests that found no room among their minute's aggregated audit rows (NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE) and were counted in an audit.refusals_dropped row instead.",
	}, func() float64 { return float64(dropped()) }))
}

// AuditQueued exports queued, read at each scrape, as
// nsauth_audit_queued_events: the audit events waiting for the group
// commit of the built-in provider's audit trail (audit.Auditor.Queued).
// Call it once.
func (m *AuthMetrics) AuditQueued(queued func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "nsauth", Name: "audit_queued_events",
		Help: "Audit events waiting to be written by the audit trail's group commit; each request that recorded one waits for it.",
	}, func() float64 { return float64(queued()) }))
}

// Login counts a password login's outcome.
func (m *AuthMetrics) Login(outcome string) { m.logins.WithLabelValues(outcome).Inc() }

// Lockout counts a lockout.
func (m *AuthMetrics) Lockout() { m.lockouts.Inc() }

// Replay counts a replayed one-time credential of a kind.
func (m *AuthMetrics) Replay(kind string) { m.replays.WithLabelValues(kind).Inc() }

// CacheLookup counts a lookup in the verification cache.
func (m *AuthMetrics) CacheLookup(hit bool) {
	if hit {
		m.cacheHit.Inc()
	} else {
		m.cacheMiss.Inc()
	}
}

// ProviderRequest records a request to the provider's endpoint.
func (m *AuthMetrics) ProviderRequest(endpoint string, d time.Duration) {
	m.providerTimes.WithLabelValues(endpoint).Observe(d.Seconds())
}
