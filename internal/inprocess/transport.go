// Package inprocess serves HTTP requests for one origin by calling an
// http.Handler in the same process, so that a client and the server it
// talks to can live in one binary without a network between them.
//
// nsauth uses it in built-in mode: the broker and the token verifier speak
// HTTP to the built-in OpenID provider exactly as they would to an
// external one, but their requests never leave the process. The server
// therefore needs neither its own listener to be serving nor its public
// issuer URL to resolve from inside its network.
package inprocess

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// DefaultMaxResponseBytes bounds a response body when
// [Transport.MaxResponseBytes] is not set.
const DefaultMaxResponseBytes = 4 << 20

// RemoteAddr is the http.Request.RemoteAddr the handler sees: not an IP
// address, so per-address limits count in-process requests apart from any
// network client.
const RemoteAddr = "in-process"

var (
	// ErrOtherOrigin is returned for a request to another origin when the
	// transport has no fallback.
	ErrOtherOrigin = errors.New("inprocess: request for another origin")
	// ErrResponseTooLarge is returned when the handler writes a body larger
	// than the transport's bound.
	ErrResponseTooLarge = errors.New("inprocess: response body too large")
)

// Transport is an http.RoundTripper that hands requests for one origin
// (scheme, host and port, compared exactly; a default port may be written
// or left out) to a handler in this process, and every other request to
// its fallback. It is safe for concurrent use. Create it with [New].
type Transport struct {
	scheme, host, port string
	handler            http.Handler
	fallback           http.RoundTripper
	maxBody            int64
}

// Config configures a [Transport].
type Config struct {
	// Origin is the scheme://host[:port] served in process, such as
	// "https://auth.example.com" or "http://127.0.0.1:8080". Required; it
	// must have no user info, path, query or fragment.
	Origin string
	// Handler serves the origin's requests. Required.
	Handler http.Handler
	// Fallback carries requests for any other origin. Nil refuses them
	// with an error wrapping [ErrOtherOrigin].
	Fallback http.RoundTripper
	// MaxResponseBytes bounds the body the handler may write; a larger one
	// fails the request with [ErrResponseTooLarge]. Defaults to
	// [DefaultMaxResponseBytes].
	MaxResponseBytes int64
}

// New returns a Transport for cfg.
func New(cfg Config) (*Transport, error) {
	if cfg.Handler == nil {
		return nil, errors.New("inprocess: a handler is required")
	}
	u, err := url.Parse(cfg.Origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("inprocess: origin %q is not an absolute http(s) URL", cfg.Origin)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("inprocess: origin %q must be scheme://host[:port] only", cfg.Origin)
	}
	t := &Transport{handler: cfg.Handler, fallback: cfg.Fallback, maxBody: cfg.MaxResponseBytes}
	t.scheme, t.host, t.port = originOf(u)
	if t.maxBody <= 0 {
		t.maxBody = DefaultMaxResponseBytes
	}
	return t, nil
}

// originOf returns the parts two URLs must share to be the same origin
// (RFC 6454): the scheme and host lower-cased, and the port with the
// scheme's default filled in.
func originOf(u *url.URL) (scheme, host, port string) {
	scheme = strings.ToLower(u.Scheme)
	host, port = strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme, host, port
}

// Handles reports whether a request for u is served in process.
func (t *Transport) Handles(u *url.URL) bool {
	if u == nil {
		return false
	}
	s, h, p := originOf(u)
	return s == t.scheme && h == t.host && p == t.port
}

// RoundTrip implements http.RoundTripper. A request for the origin runs
// the handler with the request's context; when that context ends first,
// RoundTrip returns its error at once and the handler's response is
// dropped. A handler that panics fails the request instead of the
// process.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.Handles(req.URL) {
		if t.fallback == nil {
			closeBody(req)
			return nil, fmt.Errorf("%w: %s://%s", ErrOtherOrigin, req.URL.Scheme, req.URL.Host)
		}
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	sreq, err := t.serverRequest(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	w := newResponseWriter(t.maxBody)
	done := make(chan error, 1)
	go func() {
		defer closeBody(req)
		done <- serve(t.handler, w, sreq)
	}()
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
		return w.response(req)
	case <-ctx.Done():
		// The handler sees the same context and should stop soon; it
		// writes only to w, which nobody reads any more.
		return nil, ctx.Err()
	}
}

// serve runs the handler, turning a panic into an error as net/http's
// server turns it into a dropped connection.
func serve(h http.Handler, w *responseWriter, r *http.Request) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("inprocess: handler panicked: %v", v)
		}
	}()
	h.ServeHTTP(w, r)
	return w.err
}

// serverRequest builds the request as a server would receive it: a
// relative URL, RequestURI, Host, a non-nil body and no client-only
// fields.
func (t *Transport) serverRequest(req *http.Request) (*http.Request, error) {
	if req.URL.Opaque != "" {
		return nil, fmt.Errorf("inprocess: opaque URL %q", req.URL.Opaque)
	}
	r := req.Clone(req.Context())
	r.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	r.RequestURI = req.URL.RequestURI()
	r.Host = req.Host
	if r.Host == "" {
		r.Host = req.URL.Host
	}
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.RemoteAddr = RemoteAddr
	r.Header.Del("Host")
	if req.Body == nil || req.Body == http.NoBody {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	r.GetBody = nil
	r.Close = false
	r.Response = nil
	if t.scheme == "https" {
		// The request never left the process: nothing was exposed that TLS
		// would have protected, so the handler may treat it as secure.
		r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, ServerName: t.host}
	}
	return r, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
