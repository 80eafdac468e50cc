// Package clientaddr decides which address a request comes from, and how
// addresses are grouped when requests are counted against limits. It is
// the one place both rules live: the RPC rate limit, the login page's
// attempt counters and the authorize endpoint's limit all use it.
//
// Proxy headers are believed only from configured proxies. A request
// whose TCP peer is a trusted proxy is attributed to the rightmost address
// in its X-Forwarded-For headers that is not itself a trusted proxy: every
// entry right of it was appended by a proxy we trust, while entries left
// of it may have been written by the client and prove nothing.
package clientaddr

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds how many X-Forwarded-For entries are examined.
// Real chains have a handful of proxies.
const maxForwardedHops = 32

// Resolver finds the client address of a request. The zero value, and a
// nil *Resolver, trust no proxy: the TCP peer is the client.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver returns a Resolver that believes X-Forwarded-For from peers
// in trusted.
func NewResolver(trusted []netip.Prefix) *Resolver {
	r := &Resolver{}
	for _, p := range trusted {
		r.trusted = append(r.trusted, p.Masked())
	}
	return r
}

// ParseTrusted parses a list of CIDRs (a bare IP address means that one
// address), as given in NSAUTH_TRUSTED_PROXIES.
func ParseTrusted(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or an IP address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Trusted reports whether a is a trusted proxy.
func (r *Resolver) Trusted(a netip.Addr) bool {
	if r == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Addr returns the client address of a request from peer (a host:port or
// bare IP, as in http.Request.RemoteAddr) carrying the given
// X-Forwarded-For header values. It is invalid when the peer address is
// not an IP address (a Unix socket, say).
func (r *Resolver) Addr(peer string, forwardedFor []string) netip.Addr {
	client := parseHost(peer)
	if !r.Trusted(client) || len(forwardedFor) == 0 {
		return client
	}
	hops := 0
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		entries := strings.Split(forwardedFor[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			if hops++; hops > maxForwardedHops {
				return client
			}
			a := parseHost(entries[j])
			if !a.IsValid() {
				// A trusted proxy wrote something that is no address
				// ("unknown", a socket path): the last proxy is the best
				// we know.
				return client
			}
			client = a
			if !r.Trusted(a) {
				return client
			}
		}
	}
	return client
}

// FromRequest returns the client address of req.
func (r *Resolver) FromRequest(req *http.Request) netip.Addr {
	return r.Addr(req.RemoteAddr, req.Header.Values("X-Forwarded-For"))
}

// parseHost reads an address written as an IP, host:port or [IPv6]:port.
func parseHost(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if len(s) > 64 {
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// Key groups an address for counting: an IPv4 address stands for itself,
// an IPv6 address for its /64, which one host or one customer usually
// owns whole. An invalid address gives the zero Prefix, a key that all
// unknown peers share.
func Key(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// Label is a key as people and counters' names read it: "192.0.2.1",
// "2001:db8::/64", or "unknown".
func Label(k netip.Prefix) string {
	if !k.IsValid() {
		return "unknown"
	}
	if k.Addr().Is4() {
		return k.Addr().String()
	}
	return k.String()
}
