package redirect

import (
	"net/url"
	"slices"
	"strings"
)

// MatchApp reports whether raw is one of an app's registered redirect
// URIs: compared exactly, except that a native app's loopback URI may
// vary its port (RFC 8252 §7.3) while everything else (scheme, host,
// path, query) stays as registered. raw must pass the loopback rule of
// [ValidateURI] for the port to be ignored, so no spelling trick widens
// the match.
func MatchApp(raw string, registered []string, native bool) bool {
	if slices.Contains(registered, raw) {
		return true
	}
	if !native || ValidateURI(raw, nil) != nil {
		return false
	}
	want := withoutPort(raw)
	for _, r := range registered {
		if ValidateURI(r, nil) == nil && withoutPort(r) == want {
			return true
		}
	}
	return false
}

// withoutPort is a canonical loopback URI with its port removed.
func withoutPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Host = u.Hostname()
	if strings.Contains(u.Host, ":") {
		u.Host = "[" + u.Host + "]"
	}
	return u.String()
}

// AddIssuer returns the authorization response location with the
// issuer's identifier added (RFC 9207 `iss`), in the part that carries the
// response: the fragment when the response is there (an error answered
// to response_mode=fragment), the query otherwise. A location that
// already names an issuer is returned as it is.
func AddIssuer(location, issuer string) string {
	u, err := url.Parse(location)
	if err != nil {
		return location
	}
	if frag := u.EscapedFragment(); frag != "" {
		f, err := url.ParseQuery(frag)
		if err == nil && (f.Has("error") || f.Has("code")) {
			if f.Has("iss") {
				return location
			}
			base, _, _ := strings.Cut(location, "#")
			return base + "#" + frag + "&" + url.Values{"iss": {issuer}}.Encode()
		}
	}
	q := u.Query()
	if q.Has("iss") {
		return location
	}
	extra := url.Values{"iss": {issuer}}.Encode()
	if u.RawQuery == "" {
		u.RawQuery = extra
	} else {
		u.RawQuery += "&" + extra
	}
	return u.String()
}
