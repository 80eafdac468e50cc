package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/visible"
	"github.com/nsauth/nsauth/pkg/rpcfailure"
	"github.com/nsauth/nsauth/pkg/tokensource"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// DefaultAPIURL is the API URL when neither --api-url nor the environment
// names one; it is Neosync's default too.
const DefaultAPIURL = "http://localhost:8080"

// apiURLEnv lists the environment variables that name the API URL, in order
// of preference. NEOSYNC_API_URL is the original CLI's.
var apiURLEnv = []string{"NSAUTH_API_URL", "NEOSYNC_API_URL"}

// clientOptions are the settings every client command shares.
type clientOptions struct {
	// APIURL is the server, normalized by resolve.
	APIURL string
	// ConfigDir holds the token files.
	ConfigDir string
	// InsecureAllowHTTP permits plain HTTP to a remote server.
	InsecureAllowHTTP bool
	// Account is the account to use, by name or ID (--account, for the
	// commands that take it); empty means the server's active account.
	Account string
	// noStore is set before resolve by commands run with machine
	// credentials, which read and write no token file: ConfigDir stays
	// empty, and a machine without a configuration directory (a CI
	// container without $HOME) is no error.
	noStore bool
}

func (o *clientOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.APIURL, "api-url", "", "the API server's URL (default "+DefaultAPIURL+") [$"+strings.Join(apiURLEnv, ", $")+"]")
	fs.StringVar(&o.ConfigDir, "config-dir", "", "where tokens are stored (default: the nsauth directory in your user configuration directory) [$"+tokenstore.DirEnv+"]")
	fs.BoolVar(&o.InsecureAllowHTTP, "insecure-allow-http", false, "allow plain http:// to a server other than this machine (tokens cross the network unencrypted)")
}

// addAccountFlag adds --account, for the commands that act on one account.
func (o *clientOptions) addAccountFlag(app *App, cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Account, "account", "", "the account to use, by its name or ID as nsauth accounts shows them (default: the active account)")
	_ = cmd.RegisterFlagCompletionFunc("account", completeAccounts(app, o))
}

// resolve fills unset options from the environment and defaults, and checks
// them. Mistakes are usage errors.
func (o *clientOptions) resolve(getenv func(string) (string, bool)) error {
	raw := o.APIURL
	for _, name := range apiURLEnv {
		if raw != "" {
			break
		}
		if v, ok := getenv(name); ok {
			raw = strings.TrimSpace(v)
		}
	}
	if raw == "" {
		raw = DefaultAPIURL
	}
	u, err := tokenstore.NormalizeAPIURL(raw)
	if err != nil {
		return &usageError{Err: err}
	}
	if err := tokenstore.CheckTransport(u, o.InsecureAllowHTTP); err != nil {
		return &usageError{Err: err}
	}
	o.APIURL = u
	if o.ConfigDir == "" && !o.noStore {
		if o.ConfigDir, err = tokenstore.DefaultDir(getenv); err != nil {
			return err
		}
	}
	return nil
}

// clientDeps are the injected dependencies of the client commands.
type clientDeps struct {
	// HTTPClient makes every call to the server.
	HTTPClient *http.Client
	// Keyring is used for entries stored with --keyring; nil means the
	// operating system's.
	Keyring tokenstore.Keyring
	// Now is the clock.
	Now func() time.Time
	// Exchanges watches HTTPClient's traffic, when set (see exchangeLog).
	Exchanges *exchangeLog
}

func defaultClientDeps(app *App) clientDeps {
	now := app.Now
	if now == nil {
		now = time.Now
	}
	hc := tokensource.NewHTTPClient()
	log := &exchangeLog{next: hc.Transport}
	hc.Transport = log
	return clientDeps{HTTPClient: hc, Now: now, Exchanges: log}
}

// exchangeLog is an http.RoundTripper that notes what Connect's errors do
// not say about the server: whether an answer came from something other
// than a Connect server (a web server's 404 or 501 page, a web app's HTML),
// whether a TLS handshake was met by plain HTTP, and which procedures were
// called. pkg/tokensource reduces its errors to text, so the client
// commands learn these here rather than from the error chain. One log
// serves one command run.
type exchangeLog struct {
	next http.RoundTripper

	mu       sync.Mutex
	calls    map[string]int // by URL path
	notTLS   bool
	foreign  int    // HTTP status of the first answer not from a Connect server; 0 if none
	mimeType string // its media type
	location string // its Location header, for a redirect
}

// RoundTrip implements http.RoundTripper.
func (l *exchangeLog) RoundTrip(req *http.Request) (*http.Response, error) {
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
func (l *exchangeLog) called(procedure string) int {
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
func (l *exchangeLog) diagnosis(apiURL string) string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.notTLS:
		return notTLSMessage(apiURL)
	case l.foreign >= 300 && l.foreign < 400 && l.location != "":
		return fmt.Sprintf("%s answered HTTP %d, a redirect to %s: if that is the API server, use it as --api-url", apiURL, l.foreign, displayText(l.location))
	case l.foreign == http.StatusOK:
		return fmt.Sprintf("%s answered HTTP 200 with %s: it does not look like an nsauth/Neosync API server (check --api-url)", apiURL, displayText(firstNonEmpty(l.mimeType, "no content type")))
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
func (d clientDeps) describeError(apiURL string, err error) string {
	if s := d.Exchanges.diagnosis(apiURL); s != "" {
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
func (d clientDeps) callError(apiURL, what string, err error) error {
	if s := d.Exchanges.diagnosis(apiURL); s != "" {
		return errors.New(s)
	}
	return fmt.Errorf("%s: %s", what, d.describeError(apiURL, err))
}

func (d clientDeps) store(dir string) (*tokenstore.Store, error) {
	return tokenstore.New(tokenstore.Config{Dir: dir, Keyring: d.Keyring, Now: d.Now})
}

func (d clientDeps) authClient(apiURL string) mgmtv1alpha1connect.AuthServiceClient {
	return mgmtv1alpha1connect.NewAuthServiceClient(d.HTTPClient, apiURL)
}

func (d clientDeps) tokenSource(c clientOptions, margin time.Duration) (*tokensource.TokenSource, error) {
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

// loginHint is the command that logs in to apiURL.
func loginHint(apiURL string) string {
	if apiURL == DefaultAPIURL {
		return "run nsauth login"
	}
	return "run nsauth login --api-url " + apiURL
}

// outputFormat is the value of --output.
type outputFormat string

const (
	outputText outputFormat = "text"
	outputJSON outputFormat = "json"
)

// addOutputFlag binds --output (-o) to p, which starts as text; the flag
// takes only text or json.
func addOutputFlag(cmd *cobra.Command, p *outputFormat) {
	*p = outputText
	cmd.Flags().VarP(p, "output", "o", "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

// Set takes an --output value: text or json.
func (f *outputFormat) Set(s string) error {
	switch v := outputFormat(s); v {
	case outputText, outputJSON:
		*f = v
		return nil
	}
	return fmt.Errorf("--output %q is not text or json", s)
}

func (f *outputFormat) String() string { return string(*f) }

// Type names the flag's value in help.
func (f *outputFormat) Type() string { return "format" }

// displayText makes untrusted text (claims from a token, which anyone who
// can issue tokens controls) safe for a terminal: characters that do not
// show as themselves (package visible's rule: controls, which could move
// the cursor or retitle the window, and format characters such as
// bidirectional overrides, which reorder what follows) are dropped, and
// the length is bounded.
func displayText(s string) string {
	s = strings.Map(func(r rune) rune {
		if visible.Hidden(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

// formatExpiry says when t is, relative to now.
func formatExpiry(t, now time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	abs := t.Local().Format("2006-01-02 15:04:05 MST")
	d := t.Sub(now).Round(time.Second)
	if d >= 0 {
		return fmt.Sprintf("%s (in %s)", abs, d)
	}
	return fmt.Sprintf("%s (%s ago)", abs, -d)
}

// formatPast says when t, a moment in the past, was.
func formatPast(t, now time.Time) string {
	abs := t.Local().Format("2006-01-02 15:04:05 MST")
	if ago := now.Sub(t).Round(time.Second); ago > 0 {
		return fmt.Sprintf("%s (%s ago)", abs, ago)
	}
	return abs + " (just now)"
}

// identity is what the ID token says about the user, for display only:
// the signature is not checked.
type identity struct {
	Subject, Name, Email, Username, Issuer string
}

func identityFromTokens(idToken, accessToken string) identity {
	var id identity
	for _, tok := range []string{idToken, accessToken} {
		if tok == "" {
			continue
		}
		claims, err := tokenstore.UnverifiedClaims(tok)
		if err != nil {
			continue
		}
		str := func(k string) string { s, _ := claims[k].(string); return displayText(s) }
		fill := func(dst *string, v string) {
			if *dst == "" {
				*dst = v
			}
		}
		fill(&id.Subject, str("sub"))
		fill(&id.Name, str("name"))
		fill(&id.Email, str("email"))
		fill(&id.Username, str("preferred_username"))
		fill(&id.Issuer, str("iss"))
	}
	return id
}

// who names the user the way people recognise them.
func (id identity) who() string {
	switch {
	case id.Name != "" && id.Email != "":
		return id.Name + " <" + id.Email + ">"
	case id.Email != "":
		return id.Email
	case id.Name != "":
		return id.Name
	case id.Username != "":
		return id.Username
	case id.Subject != "":
		return id.Subject
	}
	return "an unnamed user"
}
