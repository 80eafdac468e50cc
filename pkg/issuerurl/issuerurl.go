// Package issuerurl checks an OpenID provider's issuer URL: https, or http
// only on a loopback host unless the caller opts in to insecurity.
//
// The issuer is the URL tokens name and browsers are sent to; over plain
// http anyone on the path could read passwords and tokens, or change the
// keys a verifier fetches. On a loopback host (see [loopbackhost.Is]) no
// one else is on the path, so http is accepted there for tests and local
// setups.
package issuerurl

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/nsauth/nsauth/pkg/loopbackhost"
)

// ErrInsecureHTTP is wrapped by the error [Check] returns for an http URL
// on a host that is not loopback, so that a caller can name its own opt-in
// setting in the message it shows.
var ErrInsecureHTTP = errors.New("uses http on a non-loopback host: use https")

// Options are the exceptions a caller may allow. The zero value is the
// strict rule: https (http on loopback), no path.
type Options struct {
	// AllowPath accepts an issuer with a path, as some providers have
	// (https://oidc.eks.eu-west-1.amazonaws.com/id/ABC). Without it any
	// path is refused, a lone "/" included: the issuer then is the root of
	// its host, as nsauth's own must be.
	AllowPath bool
	// InsecureAllowHTTP accepts http on any host. Passwords, codes and
	// tokens then cross the network in the clear, and anyone on the path
	// can replace the provider's keys. It MUST NOT be set unless something
	// else (a private network, a TLS-terminating proxy on the same host)
	// protects the traffic, and then only because an operator said so.
	InsecureAllowHTTP bool
}

// Check parses raw and returns it when it is an absolute http(s) URL with
// a host, without user info, query or fragment (an empty "?" or "#"
// counts), without a path unless opts.AllowPath, and https unless its host
// is loopback or opts.InsecureAllowHTTP is set. The error for http on
// another host wraps [ErrInsecureHTTP]. Errors quote raw, which holds
// nothing secret once user info is refused (its error does not quote it).
func Check(raw string, opts Options) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("issuer URL %q is not an absolute URL", raw)
	}
	if u.User != nil {
		return nil, errors.New("an issuer URL must not have user info")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, fmt.Errorf("issuer URL %q must not have a query or a fragment", raw)
	}
	if u.Path != "" && !opts.AllowPath {
		return nil, fmt.Errorf("issuer URL %q must not have a path: serve nsauth at the root of its host", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !opts.InsecureAllowHTTP && !loopbackhost.Is(u.Hostname()) {
			return nil, fmt.Errorf("issuer URL %q %w", raw, ErrInsecureHTTP)
		}
	default:
		return nil, fmt.Errorf("issuer URL %q must use https", raw)
	}
	return u, nil
}
