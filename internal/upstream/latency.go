package upstream

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// Endpoint names told to Config.ObserveLatency: a small fixed set, fit
// for a metric label.
const (
	EndpointDiscovery           = "discovery"
	EndpointToken               = "token"
	EndpointJWKS                = "jwks"
	EndpointIntrospection       = "introspection"
	EndpointRevocation          = "revocation"
	EndpointDeviceAuthorization = "device_authorization"
	EndpointUserinfo            = "userinfo"
	EndpointOther               = "other"
)

// latencyTransport times every round trip of the provider's client and
// tells the endpoint it went to, named from the discovery document.
type latencyTransport struct {
	next    http.RoundTripper
	p       *Provider
	observe func(endpoint string, d time.Duration)
}

func (t latencyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := t.p.cfg.Now()
	resp, err := t.next.RoundTrip(r)
	t.observe(t.p.endpointOf(r.URL), t.p.cfg.Now().Sub(start))
	return resp, err
}

// endpointOf names the endpoint u is, among those of the current
// discovery document.
func (p *Provider) endpointOf(u *url.URL) string {
	if strings.HasSuffix(u.Path, oidcdiscovery.WellKnownPath) {
		return EndpointDiscovery
	}
	p.mu.RLock()
	md := p.md
	p.mu.RUnlock()
	if md == nil {
		return EndpointOther
	}
	target := u.Scheme + "://" + u.Host + u.Path
	for _, e := range []struct{ url, name string }{
		{md.TokenEndpoint, EndpointToken},
		{md.JWKSURI, EndpointJWKS},
		{md.IntrospectionEndpoint, EndpointIntrospection},
		{md.RevocationEndpoint, EndpointRevocation},
		{md.DeviceAuthorizationEndpoint, EndpointDeviceAuthorization},
		{md.UserinfoEndpoint, EndpointUserinfo},
	} {
		if e.url != "" && stripQuery(e.url) == target {
			return e.name
		}
	}
	return EndpointOther
}

func stripQuery(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return s[:i]
	}
	return s
}

// HTTPClient returns the client the provider makes its calls with: the
// configured one, timed when Config.ObserveLatency is set. Others calling
// the same provider (a key set, an introspector) should use it too, so
// that their calls are timed alike.
func (p *Provider) HTTPClient() *http.Client { return p.cfg.HTTPClient }
