package session

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/cli/cliapp"
	"github.com/nsauth/nsauth/pkg/rpcfailure"
	"github.com/nsauth/nsauth/pkg/tokensource"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// Deps are the injected dependencies of the client commands.
type Deps struct {
	// HTTPClient makes every call to the server.
	HTTPClient *http.Client
	// Keyring is used for entries stored with --keyring; nil means the
	// operating system's.
	Keyring tokenstore.Keyring
	// Now is the clock.
	Now func() time.Time
	// Exchanges watches HTTPClient's traffic, when set (see ExchangeLog).
	Exchanges *ExchangeLog
}

// NewDeps returns the dependencies of one command run for app: app's
// clock, and tokensource's HTTP client watched by an ExchangeLog.
func NewDeps(app *cliapp.App) Deps {
	now := app.Now
	if now == nil {
		now = time.Now
	}
	hc := tokensource.NewHTTPClient()
	log := &ExchangeLog{next: hc.Transport}
	hc.Transport = log
	return Deps{HTTPClient: hc, Now: now, Exchanges: log}
}

// ExchangeLog is an http.RoundTripper that notes what Connect's errors do
// not say about the server: whether an answer came from something other
// than a Connect server (a web server's 404 or 501 page, a web app's HTML),
// whether a TLS handshake was met by plain HTTP, and which procedures were
// called. pkg/tokensource reduces its errors to text, so the client
// commands learn these here rather than from the error chain. One log
// serves one command run.
type ExchangeLog struct {
	next http.RoundTripper

	mu       sync.Mutex
	calls    map[string]int // by URL path
	notTLS   bool
	foreign  int    // HTTP status of the first answer not from a Connect server; 0 if none
	mimeType string // its media type
	location string // its Location header, for a redirect
}

// RoundTrip implements http.RoundTripper.
func (l *ExchangeLog) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(req)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls == nil {
		l.calls = map[string]int{}
	}
	l.calls[req.URL.Path]++
	var rhe tls.RecordHeaderError
	switch {
	case err != nil:
		if errors.As(err, &rhe) || errors.Is(err, http.ErrSchemeMismatch) {
			l.notTLS = true
		}
	case l.foreign == 0 && !connectAnswer(resp):
		l.foreign = resp.StatusCode
		l.mimeType, _, _ = mime.ParseMediaType(resp.Header.Get("Content-Type"))
		l.location = resp.Header.Get("Location")
	}
	return resp, err
}

// connectAnswer reports whether resp can be a Connect server's answer to a
// unary call: a success in a Connect codec, or an error in JSON (Connect
// sends every unary error as JSON, whatever the codec).
func connectAnswer(resp *http.Response) bool {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case mt == "application/json":
		return true
	case resp.StatusCode != http.StatusOK:
		return false
	case mt == "application/proto", strings.HasPrefix(mt, "application/connect+"), strings.HasPrefix(mt, "application/grpc"):
		return true
	}
	return false
}

// called returns how many requests went to procedure (a path such as
// mgmtv1alpha1connect.AuthServiceRefreshCliProcedure).
func (l *ExchangeLog) called(procedure string) int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for path, c := range l.calls {
		if strings.HasSuffix(path, procedure) {
			n += c
		}
	}
	return n
}

// diagnosis explains, from the log, why calls to apiURL fail when the
// cause is that apiURL does not lead to an nsauth or Neosync API server;
// otherwise it returns "".
func (l *ExchangeLog) Diagnosis(apiURL string) string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.notTLS:
		return notTLSMessage(apiURL)
	case l.foreign >= 300 && l.foreign < 400 && l.location != "":
		return fmt.Sprintf("%s answered HTTP %d, a redirect to %s: if that is the API server, use it as --api-url", apiURL, l.foreign, DisplayText(l.location))
	case l.foreign == http.StatusOK:
		return fmt.Sprintf("%s answered HTTP 200 with %s: it does not look like an nsauth/Neosync API server (check --api-url)", apiURL, DisplayText(cmp.Or(l.mimeType, "no content type")))
	case l.foreign != 0:
		return fmt.Sprintf("%s answered HTTP %d: it does not look like an nsauth/Neosync API server (check --api-url)", apiURL, l.foreign)
	}
	return ""
}

func notTLSMessage(apiURL string) string {
	return fmt.Sprintf("%s does not speak TLS: did you mean http://%s?", apiURL, strings.TrimPrefix(apiURL, "https://"))
}

// describeError explains a failed call to the server for people. Like
// rpcfailure.Describe, which it falls back on, it never repeats what the
// server said.
func (d Deps) DescribeError(apiURL string, err error) string {
	if s := d.Exchanges.Diagnosis(apiURL); s != "" {
		return s
	}
	var rhe tls.RecordHeaderError
	if errors.Is(err, http.ErrSchemeMismatch) || errors.As(err, &rhe) {
		return notTLSMessage(apiURL)
	}
	return rpcfailure.Describe(err, "")
}

// callError is the error for a failed call made while doing what: the
// diagnosis alone when apiURL is not an API server (what was being done
// matters little then), else what failed and why.
func (d Deps) CallError(apiURL, what string, err error) error {
	if s := d.Exchanges.Diagnosis(apiURL); s != "" {
		return errors.New(s)
	}
	return fmt.Errorf("%s: %s", what, d.DescribeError(apiURL, err))
}

// Store opens the token store in dir.
func (d Deps) Store(dir string) (*tokenstore.Store, error) {
	return tokenstore.New(tokenstore.Config{Dir: dir, Keyring: d.Keyring, Now: d.Now})
}

// AuthClient is a client of apiURL's AuthService.
func (d Deps) AuthClient(apiURL string) mgmtv1alpha1connect.AuthServiceClient {
	return mgmtv1alpha1connect.NewAuthServiceClient(d.HTTPClient, apiURL)
}

// tokenSource is a token source for c's stored login, refreshing within
// margin of expiry.
func (d Deps) tokenSource(c Options, margin time.Duration) (*tokensource.TokenSource, error) {
	cfg := tokensource.Config{
		APIURL:            c.APIURL,
		Account:           c.Account,
		ConfigDir:         c.ConfigDir,
		HTTPClient:        d.HTTPClient,
		Margin:            margin,
		InsecureAllowHTTP: c.InsecureAllowHTTP,
		Now:               d.Now,
	}
	if d.Keyring != nil {
		cfg.Keyring = d.Keyring
	}
	return tokensource.New(cfg)
}

// LoginHint is the command that logs in to apiURL.
func LoginHint(apiURL string) string {
	if apiURL == DefaultAPIURL {
		return "run nsauth login"
	}
	return "run nsauth login --api-url " + apiURL
}
