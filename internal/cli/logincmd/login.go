// Package logincmd is `nsauth login`: it logs a person in to an API server
// through the server's identity provider and stores the tokens. The browser
// comes back to a one-shot loopback listener, or its final address is
// pasted (--manual), or the person approves a code on another device
// (--device, RFC 8628).
package logincmd

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/cli/browser"
	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/cli/cliapp"
	"github.com/nsauth/nsauth/internal/cli/session"
	"github.com/nsauth/nsauth/internal/loopback"
	"github.com/nsauth/nsauth/pkg/loopbackhost"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// Login defaults.
const (
	defaultLoginTimeout = 5 * time.Minute
	defaultScope        = "openid profile email offline_access"
	// maxPasteAttempts bounds how often --manual asks again after a paste
	// that is not the callback URL.
	maxPasteAttempts = 3
	// maxPasteBytes bounds one pasted line.
	maxPasteBytes = 16 << 10
)

// loginOptions holds `nsauth login`'s flags and dependencies.
type loginOptions struct {
	app    *cliapp.App
	client session.Options
	deps   session.Deps

	Scope         string
	Port          int
	ListenAddress string
	RedirectHost  string
	NoBrowser     bool
	Manual        bool
	Device        bool
	UseKeyring    bool
	Timeout       time.Duration

	// OpenBrowser shows url to the user in a browser.
	OpenBrowser func(url string) error
	// After waits between device-login polls (App.After).
	After func(time.Duration) <-chan time.Time

	// browserFlags are the loopback login's flags that were given, which
	// --device refuses.
	browserFlags []string
	// timeoutSet tells whether --timeout was given: a device login
	// otherwise lasts as long as its code.
	timeoutSet bool
}

// NewCommand returns `nsauth login` for app, for package cli's root command.
func NewCommand(app *cliapp.App) *cobra.Command { return newLoginCommand(app, nil) }

func newLoginCommand(app *cliapp.App, runF func(context.Context, *loginOptions) error) *cobra.Command {
	o := &loginOptions{app: app, deps: session.NewDeps(app)}
	o.OpenBrowser = func(u string) error { return openBrowser(app, u) }
	o.After = app.After
	if o.After == nil {
		o.After = time.After
	}
	if runF == nil {
		runF = runLogin
	}
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to an nsauth or Neosync API server from the terminal",
		Long: `Log in through the server's identity provider in a web browser, and store the
tokens for later commands (nsauth token, whoami) and for Go programs using
github.com/nsauth/nsauth/pkg/tokensource.

The login uses a fresh state and PKCE (S256), and receives the browser's
redirect on a one-shot listener on 127.0.0.1 (a random free port unless
--port says otherwise; the path is /api/auth/callback, so --port 4242 gives
the redirect URI the original Neosync CLI uses). The URL to open is always
printed on standard error, and opened in your browser ($BROWSER, if set)
unless --no-browser is given.

Where a browser cannot reach this machine (SSH, containers), --device logs
in with a code instead (RFC 8628, the device authorization grant): open the
URL it prints on a device that reaches the server's issuer (a loopback one,
such as an nsauth server's default http://localhost:8080, only the server's
machine reaches, and login says so), check the code, approve, and the login
ends here on its own. --manual is the other way: it asks you to paste the
address the browser ends up on after logging in (it will show an error page
for http://127.0.0.1:…; that is expected).

Tokens are stored per API URL and account in a 0600 file under --config-dir,
or with --keyring in the operating system's keyring. Logging in as another
user adds an account and makes it active (nsauth accounts, nsauth switch);
logging in again as a stored account replaces its tokens.`,
		Example: `  # Log in to the server on http://localhost:8080
  nsauth login

  # Another server; print the URL instead of opening a browser
  nsauth login --api-url https://neosync.example.com --no-browser

  # Over SSH: open the URL on your phone or laptop and approve the code
  nsauth login --device

  # Over SSH, without device login: paste the final address back
  nsauth login --manual

  # A provider that only allows Neosync's fixed redirect URI
  nsauth login --port 4242

  # Keep the tokens in the OS keyring instead of a file
  nsauth login --keyring`,
		Args: cliapp.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.timeoutSet = cmd.Flags().Changed("timeout")
			for _, name := range []string{"manual", "port", "listen-address", "redirect-host"} {
				if cmd.Flags().Changed(name) {
					o.browserFlags = append(o.browserFlags, "--"+name)
				}
			}
			if err := o.complete(); err != nil {
				return err
			}
			return runF(cmd.Context(), o)
		},
	}
	fs := cmd.Flags()
	o.client.AddFlags(fs)
	fs.StringVar(&o.Scope, "scope", defaultScope, "scopes to request (offline_access is needed for a refresh token)")
	fs.IntVar(&o.Port, "port", 0, "port of the callback listener (default: a random free port)")
	fs.StringVar(&o.ListenAddress, "listen-address", "127.0.0.1", "IP address of the callback listener")
	fs.StringVar(&o.RedirectHost, "redirect-host", "", "host name in the redirect URI: 127.0.0.1, localhost or ::1 (default: the listen address)")
	fs.BoolVar(&o.NoBrowser, "no-browser", false, "print the login URL without opening a browser")
	fs.BoolVar(&o.Manual, "manual", false, "do not listen for the callback; paste the redirected URL at a prompt instead")
	fs.BoolVar(&o.Device, "device", false, "log in with a code, from a browser on another device (RFC 8628 device login)")
	fs.BoolVar(&o.UseKeyring, "keyring", false, "store the tokens in the OS keyring (fails if there is none)")
	fs.DurationVar(&o.Timeout, "timeout", defaultLoginTimeout, "give up if the login has not finished after this long (with --device, by default: when the code expires)")
	return cmd
}

// complete checks flags and fills defaults.
func (o *loginOptions) complete() error {
	if err := o.client.Resolve(o.app.Getenv); err != nil {
		return err
	}
	if o.Port < 0 || o.Port > 65535 {
		return cliapp.UsageErrorf("--port %d is not from 0 to 65535", o.Port)
	}
	if o.Timeout <= 0 {
		return cliapp.UsageErrorf("--timeout must be positive")
	}
	if o.Device && len(o.browserFlags) > 0 {
		return cliapp.UsageErrorf("--device does not use %s: the browser is on another device and comes back to no listener", strings.Join(o.browserFlags, ", "))
	}
	if o.Device && !o.timeoutSet {
		// The code's own lifetime ends the login (deviceLogin); this only
		// bounds a server that would keep it pending for ever.
		o.Timeout = maxDeviceLifetime*time.Second + time.Minute
	}
	ip := net.ParseIP(o.ListenAddress)
	if ip == nil {
		return cliapp.UsageErrorf("--listen-address %q is not an IP address", o.ListenAddress)
	}
	if o.RedirectHost == "" {
		o.RedirectHost = o.ListenAddress
		if ip.IsUnspecified() {
			o.RedirectHost = "127.0.0.1"
		}
	}
	if strings.TrimSpace(o.Scope) == "" {
		return cliapp.UsageErrorf("--scope must not be empty")
	}
	return nil
}

func runLogin(ctx context.Context, o *loginOptions) error {
	errOut := o.app.ErrOut
	store, err := o.deps.Store(o.client.ConfigDir)
	if err != nil {
		return err
	}
	if o.UseKeyring {
		// Find out now, not after the user has logged in in the browser.
		if err := store.CheckKeyring(o.client.APIURL); err != nil {
			return err
		}
	}
	client := o.deps.AuthClient(o.client.APIURL)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	// stopped explains why ctx ended: the timeout or Ctrl-C.
	stopped := func(err error) error {
		switch {
		case parent.Err() != nil:
			return errors.New("login canceled")
		case ctx.Err() != nil:
			return fmt.Errorf("login timed out after %s", o.Timeout)
		}
		return err
	}

	status, err := client.GetAuthStatus(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{}))
	if err != nil {
		return stopped(o.deps.CallError(o.client.APIURL, "asking "+o.client.APIURL+" whether authentication is enabled", err))
	}
	if !status.Msg.GetIsEnabled() {
		fmt.Fprintf(errOut, "Authentication is disabled on %s: there is nothing to log in to.\n", o.client.APIURL)
		return nil
	}

	var tokens *mgmtv1alpha1.AccessToken
	var issuedAt time.Time
	if o.Device {
		tokens, issuedAt, err = o.deviceLogin(ctx, client)
	} else {
		tokens, issuedAt, err = o.browserLogin(ctx, client)
	}
	if err != nil {
		return stopped(err)
	}
	return o.saveLogin(ctx, store, tokens, issuedAt, stopped)
}

// browserLogin logs in through a browser that comes back to a loopback
// listener (or, with --manual, whose final address is pasted), and returns
// the tokens LoginCli gave and when it was asked.
func (o *loginOptions) browserLogin(ctx context.Context, client mgmtv1alpha1connect.AuthServiceClient) (*mgmtv1alpha1.AccessToken, time.Time, error) {
	errOut := o.app.ErrOut
	state, err := newState()
	if err != nil {
		return nil, time.Time{}, err
	}
	verifier := oauth2.GenerateVerifier()
	challenge := oauth2.S256ChallengeFromVerifier(verifier)

	var redirectURI string
	var wait func(context.Context) (string, error)
	if o.Manual {
		port := o.Port
		if port == 0 {
			if port, err = freePort(o.ListenAddress); err != nil {
				return nil, time.Time{}, err
			}
		}
		if redirectURI, err = loopback.RedirectURI(o.RedirectHost, port, loopback.DefaultPath); err != nil {
			return nil, time.Time{}, cliapp.UsageErrorf("--redirect-host: %v", err)
		}
		wait = func(ctx context.Context) (string, error) { return o.promptForRedirect(ctx, redirectURI, state) }
	} else {
		l, err := loopback.Listen(loopback.Config{
			ListenAddress: o.ListenAddress,
			Port:          o.Port,
			RedirectHost:  o.RedirectHost,
			State:         state,
		})
		if err != nil {
			if o.Port != 0 {
				return nil, time.Time{}, fmt.Errorf("%w (is another login running? try another --port)", err)
			}
			return nil, time.Time{}, err
		}
		defer l.Close()
		if !loopbackhost.Is(o.ListenAddress) {
			fmt.Fprintf(errOut, "Warning: the callback listener on %s is reachable from other machines.\n", l.Addr())
		}
		redirectURI = l.RedirectURI()
		wait = l.Wait
	}

	authReq := &mgmtv1alpha1.GetAuthorizeUrlRequest{
		State:               state,
		RedirectUri:         redirectURI,
		Scope:               o.Scope,
		CodeChallenge:       &challenge,
		CodeChallengeMethod: ptr("S256"),
	}
	authResp, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(authReq))
	if err != nil {
		return nil, time.Time{}, o.deps.CallError(o.client.APIURL, "asking for the login URL", err)
	}
	authURL := authResp.Msg.GetUrl()
	pkce, err := checkAuthorizeURL(authURL, state, challenge)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !pkce {
		fmt.Fprintln(errOut, "Warning: the server did not pass PKCE on to the identity provider (an older server?); this login relies on its state parameter alone.")
	}

	fmt.Fprintf(errOut, "Open this URL in a browser to log in:\n\n    %s\n\n", authURL)
	if !o.NoBrowser && !o.Manual {
		if err := o.OpenBrowser(authURL); err != nil {
			fmt.Fprintf(errOut, "Could not open a browser (%v); open this URL yourself: %s\n", err, authURL)
			if noDisplay(o.app.Getenv) {
				fmt.Fprintln(errOut, deviceHint)
			}
		}
	}
	if !o.Manual {
		fmt.Fprintf(errOut, "Waiting for the browser to come back to %s (Ctrl-C to cancel) …\n", redirectURI)
	}

	code, err := wait(ctx)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("login failed: %w", err)
	}

	issuedAt := o.deps.Now()
	loginReq := &mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI}
	if pkce {
		loginReq.CodeVerifier = &verifier
	}
	loginResp, err := client.LoginCli(ctx, connect.NewRequest(loginReq))
	if err != nil {
		return nil, time.Time{}, o.deps.CallError(o.client.APIURL, "exchanging the authorization code", err)
	}
	return loginResp.Msg.GetAccessToken(), issuedAt, nil
}

// deviceHint tells someone whose machine cannot show a browser that
// another device can log them in.
const deviceHint = "There is no display here (DISPLAY and WAYLAND_DISPLAY are unset: an SSH session?). " +
	"nsauth login --device logs you in from a browser on any other device, with a code."

// noDisplay reports whether this is a Unix session without a graphical
// display, where no browser can open: macOS and Windows have one without
// DISPLAY.
func noDisplay(getenv func(string) (string, bool)) bool {
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		return false
	}
	for _, name := range []string{"DISPLAY", "WAYLAND_DISPLAY"} {
		if v, ok := getenv(name); ok && strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}

// saveLogin stores the tokens a login brought, as every login does, and
// says who is logged in until when.
func (o *loginOptions) saveLogin(ctx context.Context, store *tokenstore.Store, tokens *mgmtv1alpha1.AccessToken, issuedAt time.Time, stopped func(error) error) error {
	errOut := o.app.ErrOut
	entry, err := tokenstore.FromAccessToken(o.client.APIURL, tokens, issuedAt)
	if err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	if o.UseKeyring {
		entry.Storage = tokenstore.StorageKeyring
	}
	saved, err := session.SaveLogin(ctx, store, entry)
	if err != nil {
		return stopped(fmt.Errorf("saving the tokens: %w", err))
	}

	who := session.IdentityFromTokens(entry.IDToken, entry.AccessToken).Who()
	fmt.Fprintf(errOut, "Logged in as %s until %s.\n", who, session.FormatExpiry(entry.Expiry, o.deps.Now()))
	if entry.RefreshToken != "" {
		fmt.Fprintln(errOut, "The access token is refreshed automatically when it expires.")
	}
	if note := saved.Note(o.client.APIURL); note != "" {
		fmt.Fprintln(errOut, note)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// newState returns 256 random bits, base64url-encoded.
func newState() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating the login state: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// freePort asks the system for a free port on ip, for --manual's redirect
// URI when no --port is given.
func freePort(ip string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("choosing a port for the redirect URI: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// checkAuthorizeURL refuses URLs a browser should not be sent to, and
// reports whether the server passed the PKCE challenge on. A server that
// ignores the nsauth PKCE fields (an unmodified Neosync server) gives a URL
// without code_challenge; then no verifier must be sent either, or the
// provider would refuse the code.
func checkAuthorizeURL(raw, state, challenge string) (pkce bool, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return false, errors.New("the server returned a login URL that is not an http(s) URL; refusing to open it")
	}
	q := u.Query()
	if s := q.Get("state"); s != "" && s != state {
		return false, errors.New("the server returned a login URL for another login (its state differs); refusing to use it")
	}
	switch c := q.Get("code_challenge"); {
	case c == "":
		return false, nil
	case c != challenge || q.Get("code_challenge_method") != "S256":
		return false, errors.New("the server returned a login URL with a PKCE challenge this client did not send; refusing to use it")
	}
	return true, nil
}

// promptForRedirect reads the redirected URL from standard input.
func (o *loginOptions) promptForRedirect(ctx context.Context, redirectURI, state string) (string, error) {
	errOut := o.app.ErrOut
	fmt.Fprintf(errOut, "After you log in, the browser goes to %s?… and may show an error page.\n", redirectURI)
	fmt.Fprintln(errOut, "Copy the whole address from its address bar and paste it here.")
	lines := make(chan lineResult, 1)
	reader := bufio.NewReaderSize(o.app.In, 4096)
	read := func() {
		line, err := readLine(reader, maxPasteBytes)
		lines <- lineResult{line, err}
	}
	for attempt := 1; ; attempt++ {
		fmt.Fprint(errOut, "Redirected URL: ")
		go read()
		var r lineResult
		select {
		case r = <-lines:
		case <-ctx.Done():
			fmt.Fprintln(errOut)
			// The read goroutine stays blocked on standard input until the
			// process exits; nothing else reads it.
			return "", ctx.Err()
		}
		line := strings.TrimSpace(r.line)
		if line == "" && r.err != nil {
			if errors.Is(r.err, io.EOF) {
				return "", errors.New("no URL was pasted (end of input)")
			}
			return "", fmt.Errorf("reading the pasted URL: %w", r.err)
		}
		code, err := loopback.ParsePasted(line, redirectURI, state)
		var pe *loopback.ProviderError
		switch {
		case err == nil:
			return code, nil
		case errors.Is(err, loopback.ErrStateMismatch), errors.As(err, &pe):
			return "", err
		case attempt >= maxPasteAttempts || r.err != nil:
			return "", err
		}
		fmt.Fprintf(errOut, "%v.\n", err)
	}
}

type lineResult struct {
	line string
	err  error
}

// readLine reads one line of at most limit bytes.
func readLine(r *bufio.Reader, limit int) (string, error) {
	var b strings.Builder
	for {
		chunk, err := r.ReadSlice('\n')
		if b.Len()+len(chunk) > limit {
			return "", errors.New("the pasted text is too long to be a login URL")
		}
		b.Write(chunk)
		switch {
		case err == nil:
			return b.String(), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return b.String(), err
		}
	}
}

// openBrowser opens u in $BROWSER when set, otherwise in the system's
// default browser. $BROWSER is run directly, never through a shell, with
// the URL as its last argument (or in place of %s): the URL comes from the
// server and must not be able to run commands.
func openBrowser(app *cliapp.App, u string) error {
	if b, ok := app.Getenv("BROWSER"); ok && strings.TrimSpace(b) != "" {
		args := strings.Fields(b)
		replaced := false
		for i, a := range args[1:] {
			if strings.Contains(a, "%s") {
				args[i+1] = strings.ReplaceAll(a, "%s", u)
				replaced = true
			}
		}
		if !replaced {
			args = append(args, u)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = app.ErrOut, app.ErrOut
		if err := cmd.Start(); err != nil {
			if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("running $BROWSER: %s was not found", args[0])
			}
			return fmt.Errorf("running $BROWSER: %w", err)
		}
		// Browsers may keep running; reap it without waiting here.
		go func() { _ = cmd.Wait() }()
		return nil
	}
	return browserError(browser.OpenURL(u))
}

// browserError names the programs tried when none was found:
// github.com/cli/browser reports them as one exec.Error whose Name is
// "xdg-open,x-www-browser,www-browser,wslview", which reads as a single
// program's name.
func browserError(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) && errors.Is(ee.Err, exec.ErrNotFound) {
		return fmt.Errorf("tried %s", strings.Join(strings.Split(ee.Name, ","), ", "))
	}
	return err
}
