package loopback

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPath is the callback path, the one Neosync's CLI uses: with port
// 4242 the redirect URI is the original client's
// http://127.0.0.1:4242/api/auth/callback.
const DefaultPath = "/api/auth/callback"

// Server timeouts: generous for a person's browser, short enough that an
// idle or slow connection cannot hold the listener open.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 5 * time.Second
	shutdownTimeout   = 500 * time.Millisecond
)

// Config configures a [Listener].
type Config struct {
	// ListenAddress is the IP address to listen on. Defaults to 127.0.0.1.
	ListenAddress string
	// Port is the TCP port; 0 (the default) picks a free one.
	Port int
	// RedirectHost is the host written in the redirect URI, and the one the
	// Host header must name: "127.0.0.1", "localhost" or "::1". Defaults
	// to ListenAddress.
	RedirectHost string
	// Path is the callback path. Defaults to DefaultPath.
	Path string
	// State is the state sent with the authorization request. Required.
	State string
}

// Listener is a one-shot callback listener. Create it with [Listen], hand
// [Listener.RedirectURI] to the authorization request, then call
// [Listener.Wait].
type Listener struct {
	cfg          Config
	ln           net.Listener
	srv          *http.Server
	redirectURI  string
	expectedHost []string

	// done is set by the one request that carries this login's state;
	// requests with any other state leave it alone, so that anyone able to
	// make a browser fetch the callback URL cannot end the login.
	done   atomic.Bool
	result chan outcome  // written once, by the request that set done
	served chan struct{} // closed when srv.Serve returns

	closeOnce sync.Once
}

type outcome struct {
	code string
	err  error
}

// Listen validates cfg and starts listening. Close it (or Wait for it)
// to release the port.
func Listen(cfg Config) (*Listener, error) {
	if cfg.State == "" {
		return nil, errors.New("loopback: a state is required")
	}
	if cfg.ListenAddress == "" {
		cfg.ListenAddress = "127.0.0.1"
	}
	if net.ParseIP(cfg.ListenAddress) == nil {
		return nil, fmt.Errorf("listen address %q is not an IP address", cfg.ListenAddress)
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("port %d is not from 0 to 65535", cfg.Port)
	}
	if cfg.RedirectHost == "" {
		cfg.RedirectHost = cfg.ListenAddress
	}
	cfg.RedirectHost = strings.TrimSuffix(strings.TrimPrefix(cfg.RedirectHost, "["), "]")
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	// Check the redirect URI's parts before binding anything.
	if _, err := RedirectURI(cfg.RedirectHost, 1, cfg.Path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenAddress, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("listening for the login callback: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	hostPort := strings.ToLower(net.JoinHostPort(cfg.RedirectHost, strconv.Itoa(port)))
	redirectURI, err := RedirectURI(cfg.RedirectHost, port, cfg.Path)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	l := &Listener{
		cfg:          cfg,
		ln:           ln,
		redirectURI:  redirectURI,
		expectedHost: []string{hostPort},
		result:       make(chan outcome, 1),
		served:       make(chan struct{}),
	}
	if port == 80 {
		// Browsers leave the default port out of Host.
		l.expectedHost = append(l.expectedHost, strings.ToLower(bracket(cfg.RedirectHost)))
	}
	l.srv = &http.Server{
		Handler:           http.HandlerFunc(l.serveHTTP),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readHeaderTimeout,
		WriteTimeout:      readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		defer close(l.served)
		_ = l.srv.Serve(ln)
	}()
	return l, nil
}

// RedirectURI returns http://host:port/path, checking that host is a host
// name or IP address (brackets optional for IPv6) and path is absolute. It
// is the redirect URI a listener on that port has, and the one `--manual`
// logins use without a listener.
func RedirectURI(host string, port int, path string) (string, error) {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if err := checkRedirectHost(host); err != nil {
		return "", err
	}
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("port %d is not from 1 to 65535", port)
	}
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("callback path %q must start with /", path)
	}
	return "http://" + strings.ToLower(net.JoinHostPort(host, strconv.Itoa(port))) + path, nil
}

// checkRedirectHost accepts a host name or IP literal, and nothing that
// could change the meaning of the URI it is written into.
func checkRedirectHost(h string) error {
	if h == "" || strings.ContainsAny(h, "/?#@[]% \t\r\n") {
		return fmt.Errorf("redirect host %q is not a host name or IP address", h)
	}
	if strings.Contains(h, ":") && net.ParseIP(h) == nil {
		return fmt.Errorf("redirect host %q is not a host name or IP address (give no port; use --port)", h)
	}
	return nil
}

func bracket(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// RedirectURI is the URI to send as redirect_uri, such as
// http://127.0.0.1:53682/api/auth/callback.
func (l *Listener) RedirectURI() string { return l.redirectURI }

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Wait waits for the callback with this login's state and returns the
// authorization code, or the error that callback carried ([*ProviderError],
// [ErrNoCode]), or ctx's error. Callbacks with another state (or none) are
// answered with an error page and ignored: Wait never returns
// [ErrStateMismatch]. Either way the listener is closed when Wait returns.
func (l *Listener) Wait(ctx context.Context) (string, error) {
	select {
	case o := <-l.result:
		// Let the page reach the browser before closing.
		l.Close()
		return o.code, o.err
	case <-ctx.Done():
		l.closeNow()
		return "", ctx.Err()
	}
}

// Close stops the listener: the port is released when Close returns. The
// answer to the callback request, if one is being written, gets a moment
// (at most half a second, however many idle connections a browser opened)
// to reach the browser first. Close may be called more than once.
func (l *Listener) Close() {
	l.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := l.srv.Shutdown(ctx); err != nil {
			_ = l.srv.Close()
		}
		<-l.served
	})
}

// closeNow stops the listener without waiting for connections: there is no
// answer left to deliver.
func (l *Listener) closeNow() {
	l.closeOnce.Do(func() {
		_ = l.srv.Close()
		<-l.served
	})
}

func (l *Listener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")

	if !l.hostAllowed(r.Host) {
		// DNS rebinding: a page on another origin reaching us by a name
		// that resolves to 127.0.0.1.
		writePage(w, http.StatusMisdirectedRequest, pageRefusedHost, "")
		return
	}
	if r.URL.Path != l.cfg.Path {
		writePage(w, http.StatusNotFound, pageNotFound, "")
		return
	}
	if r.Method != http.MethodGet {
		h.Set("Allow", http.MethodGet)
		writePage(w, http.StatusMethodNotAllowed, pageMethod, "")
		return
	}
	if l.done.Load() {
		writePage(w, http.StatusGone, pageAlreadyDone, "")
		return
	}
	code, err := checkResponse(r.URL.Query(), l.cfg.State)
	if errors.Is(err, ErrStateMismatch) {
		// Not this login's response: a stale tab, or a page elsewhere
		// making the browser fetch our URL. Nothing of it is kept or shown
		// back, and the login keeps waiting for its own response.
		writePage(w, http.StatusBadRequest, pageStateMismatch, "")
		return
	}
	if !l.done.CompareAndSwap(false, true) {
		// Two requests with the right state at once; the other one won.
		writePage(w, http.StatusGone, pageAlreadyDone, "")
		return
	}
	// The one-shot is spent: nothing below may return without a result.
	h.Set("Connection", "close")
	var pe *ProviderError
	switch {
	case err == nil:
		writePage(w, http.StatusOK, pageSuccess, "")
	case errors.As(err, &pe):
		writePage(w, http.StatusBadRequest, pageProviderError, pe.Description)
	default:
		writePage(w, http.StatusBadRequest, pageNoCode, "")
	}
	l.result <- outcome{code: code, err: err}
}

func (l *Listener) hostAllowed(host string) bool {
	host = strings.ToLower(host)
	for _, h := range l.expectedHost {
		if host == h {
			return true
		}
	}
	return false
}
