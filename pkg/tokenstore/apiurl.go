package tokenstore

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/nsauth/nsauth/pkg/loopbackhost"
)

// NormalizeAPIURL checks that raw is an absolute http(s) URL without user
// info, query or fragment, and returns its canonical spelling: lower-case
// scheme and host, default port dropped, no trailing slash. Two spellings of
// one server therefore share one entry.
func NormalizeAPIURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("API URL %q is not a URL", raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("API URL %q is not an absolute http(s) URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("API URL %q must not contain user info, a query or a fragment", raw)
	}
	host, port := u.Hostname(), u.Port()
	host = strings.ToLower(host)
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	} else {
		u.Host = host
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// ErrInsecureHTTP is returned by [CheckTransport] for a plain-HTTP URL to a
// host that is not this machine.
var ErrInsecureHTTP = errors.New("refusing to send tokens over plain HTTP to a host other than this machine")

// CheckTransport returns ErrInsecureHTTP (wrapped) when apiURL is http:// to
// a host that is not loopback, unless insecureAllowHTTP is set: tokens and
// refresh tokens would cross the network in the clear.
func CheckTransport(apiURL string, insecureAllowHTTP bool) error {
	u, err := url.Parse(apiURL)
	if err != nil {
		return fmt.Errorf("API URL %q is not a URL", apiURL)
	}
	if u.Scheme != "http" || insecureAllowHTTP || loopbackhost.Is(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("%w (%s); use https, or allow it explicitly with --insecure-allow-http", ErrInsecureHTTP, u.Host)
}

// IsLoopbackHost reports whether host (without port or brackets) is
// "localhost" or a loopback IP address.
//
// Deprecated: use [loopbackhost.Is], the one rule for every caller.
func IsLoopbackHost(host string) bool { return loopbackhost.Is(host) }
