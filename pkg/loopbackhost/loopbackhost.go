// Package loopbackhost decides whether a host name or address is this
// machine only, the one rule every part of nsauth uses for "loopback".
//
// A host is loopback when it is the name "localhost" in any letter case
// (host names are case-insensitive, RFC 4343) or an IP address in
// 127.0.0.0/8 or ::1 (an IPv4-mapped IPv6 form of 127.0.0.0/8 counts too).
// Nothing else is: not a name ending in ".localhost", not an address with
// an IPv6 zone, not the unspecified addresses 0.0.0.0 and ::, which listen
// on every interface.
package loopbackhost

import (
	"net"
	"slices"
	"strings"
)

// Is reports whether host (a name or an IP address, without port or
// brackets, as [net/url.URL.Hostname] and [net.SplitHostPort] return it)
// is this machine only. It makes no DNS query: "localhost" is trusted by
// name, as RFC 6761 §6.3 lets it be.
func Is(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// urlHosts are the canonical spellings RFC 8252 §7.3 and §8.3 give a
// loopback redirect URI's host.
var urlHosts = []string{"127.0.0.1", "[::1]", "localhost"}

// URLHosts returns the three spellings of a loopback host that a URL's
// authority may use where the URL is compared as a string, such as a
// redirect URI (RFC 8252 §7.3): "127.0.0.1", "[::1]" and "localhost",
// exactly so, in lower case. Every one of them satisfies [Is]. The slice is
// the caller's own.
func URLHosts() []string { return slices.Clone(urlHosts) }
