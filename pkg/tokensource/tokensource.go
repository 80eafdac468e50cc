package tokensource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/pkg/noredirect"
	"github.com/nsauth/nsauth/pkg/rpcfailure"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// Defaults for [Config].
const (
	// DefaultMargin is how much life a cached token must have left to be
	// used without refreshing.
	DefaultMargin = 60 * time.Second
	// DefaultLockTimeout bounds the wait for another process's refresh.
	DefaultLockTimeout = 45 * time.Second
)

// ErrLoginRequired is wrapped by errors that only a new `nsauth login` can
// fix: nothing stored for the API URL, no refresh token, or a refresh token
// the server rejected.
var ErrLoginRequired = errors.New("login required")

// Config configures a [TokenSource].
type Config struct {
	// APIURL is the server's URL, as given to `nsauth login --api-url`.
	// Required.
	APIURL string
	// Account selects which of the server's stored accounts to use: its
	// name (as `nsauth accounts` shows it) or its ID, matched exactly.
	// Empty means the account that is active when the source first reads
	// the store. Either way the source keeps to the account it first read
	// for its whole life: a later `nsauth switch` changes what new sources
	// use, never the identity behind a running program's tokens. An
	// account that is not stored is an error wrapping ErrLoginRequired and
	// [tokenstore.ErrUnknownAccount].
	Account string
	// ConfigDir is nsauth's configuration directory. Defaults to
	// $NSAUTH_CONFIG_DIR, or the nsauth directory in os.UserConfigDir.
	ConfigDir string
	// HTTPClient makes the RefreshCli call. It must have a timeout.
	// Defaults to [NewHTTPClient].
	HTTPClient *http.Client
	// Margin is how much life a token must have left to be returned
	// without refreshing. Defaults to DefaultMargin; negative means 0.
	Margin time.Duration
	// LockTimeout bounds the wait for another process that is refreshing.
	// Defaults to DefaultLockTimeout.
	LockTimeout time.Duration
	// InsecureAllowHTTP permits a plain-HTTP APIURL to a host other than
	// this machine. Tokens then cross the network in the clear; it MUST NOT
	// be set outside of trusted networks.
	InsecureAllowHTTP bool
	// Keyring reads and writes the secrets of entries stored with `nsauth
	// login --keyring`. Defaults to the operating system's keyring
	// ([tokenstore.SystemKeyring]); entries stored in files never use it.
	Keyring tokenstore.Keyring
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// TokenSource returns the stored access token of one account of one API
// URL (see [Config.Account]), refreshing it when needed. It is safe for concurrent use; one refresh runs at a time.
type TokenSource struct {
	apiURL      string
	account     string // as configured: a name, an ID, or empty
	store       *tokenstore.Store
	client      mgmtv1alpha1connect.AuthServiceClient
	margin      time.Duration
	lockTimeout time.Duration
	now         func() time.Time

	mu     sync.Mutex
	cached *tokenstore.Entry
	// resolved is the account first read, which every later read uses.
	resolved tokenstore.Account
}

var _ oauth2.TokenSource = (*TokenSource)(nil)

// New returns a TokenSource. It makes no network call and reads nothing
// until a token is asked for.
func New(cfg Config) (*TokenSource, error) {
	apiURL, err := tokenstore.NormalizeAPIURL(cfg.APIURL)
	if err != nil {
		return nil, err
	}
	if err := tokenstore.CheckTransport(apiURL, cfg.InsecureAllowHTTP); err != nil {
		return nil, err
	}
	if cfg.ConfigDir == "" {
		if cfg.ConfigDir, err = tokenstore.DefaultDir(os.LookupEnv); err != nil {
			return nil, err
		}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = NewHTTPClient()
	}
	switch {
	case cfg.Margin == 0:
		cfg.Margin = DefaultMargin
	case cfg.Margin < 0:
		cfg.Margin = 0
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = DefaultLockTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	store, err := tokenstore.New(tokenstore.Config{Dir: cfg.ConfigDir, Keyring: cfg.Keyring, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	return &TokenSource{
		apiURL:      apiURL,
		account:     cfg.Account,
		store:       store,
		client:      mgmtv1alpha1connect.NewAuthServiceClient(cfg.HTTPClient, apiURL),
		margin:      cfg.Margin,
		lockTimeout: cfg.LockTimeout,
		now:         cfg.Now,
	}, nil
}

// APIURL returns the normalized API URL the source serves tokens for.
func (s *TokenSource) APIURL() string { return s.apiURL }

// Account returns the account the source serves tokens for, once a call
// of Token or TokenContext has read it from the store; before that, the
// zero Account.
func (s *TokenSource) Account() tokenstore.Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resolved
}

// load reads the stored entry of the source's account.
func (s *TokenSource) load() (*tokenstore.Entry, error) {
	account := s.account
	if s.resolved.ID != "" {
		account = s.resolved.ID
	}
	e, err := s.store.LoadAccount(s.apiURL, account)
	if err != nil {
		return nil, s.loadError(err)
	}
	s.resolved = e.Account
	return e, nil
}

// Token implements oauth2.TokenSource. It is TokenContext without a
// deadline of the caller's; the HTTP client's timeout and the lock timeout
// still bound it.
func (s *TokenSource) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext returns a token with more than the margin of life left,
// refreshing the stored one if needed. The token's Extra holds "id_token"
// and "scope" when the server issued them. The refresh token is not
// exposed.
func (s *TokenSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cached.Fresh(s.now(), s.margin) {
		return toOAuth2(s.cached), nil
	}
	e, err := s.load()
	if err != nil {
		return nil, err
	}
	if !e.Fresh(s.now(), s.margin) {
		if e, err = s.refresh(ctx, e); err != nil {
			return nil, err
		}
	}
	s.cached = e
	return toOAuth2(e), nil
}

func (s *TokenSource) loadError(err error) error {
	switch {
	case errors.Is(err, tokenstore.ErrUnknownAccount), errors.Is(err, tokenstore.ErrNoActiveAccount):
		return fmt.Errorf("%w: %w", err, ErrLoginRequired)
	case errors.Is(err, tokenstore.ErrNotFound):
		return fmt.Errorf("not logged in to %s: %w", s.apiURL, ErrLoginRequired)
	}
	return fmt.Errorf("reading stored tokens: %w", err)
}

// refresh runs under the entry's cross-process lock. seen is the entry as
// read before taking the lock.
func (s *TokenSource) refresh(ctx context.Context, seen *tokenstore.Entry) (*tokenstore.Entry, error) {
	lockCtx, cancel := context.WithTimeout(ctx, s.lockTimeout)
	unlock, err := s.store.Lock(lockCtx, s.apiURL)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("refreshing the access token: %w", err)
	}
	defer unlock()

	cur, err := s.load()
	if err != nil {
		return nil, err
	}
	now := s.now()
	if cur.Fresh(now, s.margin) {
		return cur, nil
	}
	// Another process refreshed while we waited, and the server's tokens
	// live less than our margin: use theirs rather than refresh again.
	if cur.AccessToken != seen.AccessToken && cur.Fresh(now, 0) {
		return cur, nil
	}
	if cur.RefreshToken == "" {
		return nil, fmt.Errorf("the access token for %s has expired and there is no refresh token: %w", s.apiURL, ErrLoginRequired)
	}

	req := connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: cur.RefreshToken})
	resp, err := s.client.RefreshCli(ctx, req)
	if err != nil {
		if rejected(err) {
			// The refresh token is spent or revoked; forget it so the next
			// run asks for a login without calling the server again.
			cur.RefreshToken = ""
			_ = s.store.Save(cur)
			return nil, fmt.Errorf("the server rejected the refresh token for %s: %w", s.apiURL, ErrLoginRequired)
		}
		return nil, fmt.Errorf("refreshing the access token: %s", rpcfailure.Describe(err, "RefreshCli"))
	}
	next, err := tokenstore.FromAccessToken(s.apiURL, resp.Msg.GetAccessToken(), now)
	if err != nil {
		return nil, fmt.Errorf("refreshing the access token: %w", err)
	}
	next.Storage = cur.Storage
	// The same account, whatever the new tokens say (an email changed at
	// the provider does not make another user).
	next.Account = cur.Account
	if next.RefreshToken == "" {
		next.RefreshToken = cur.RefreshToken // not rotated
	}
	if next.IDToken == "" {
		next.IDToken = cur.IDToken
	}
	// If this write fails (or the process dies before it), the rotated
	// refresh token is lost: the stored one is spent, the next refresh is
	// rejected, and the user is asked to log in. Never worse than that.
	if err := s.store.Save(next); err != nil {
		return nil, fmt.Errorf("saving the refreshed tokens: %w", err)
	}
	return next, nil
}

// rejected reports whether err means the refresh token will never work.
func rejected(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnauthenticated, connect.CodeInvalidArgument, connect.CodePermissionDenied:
		return true
	}
	return false
}

func toOAuth2(e *tokenstore.Entry) *oauth2.Token {
	t := &oauth2.Token{AccessToken: e.AccessToken, TokenType: e.TokenType, Expiry: e.Expiry}
	extra := map[string]any{}
	if e.IDToken != "" {
		extra["id_token"] = e.IDToken
	}
	if e.Scope != "" {
		extra["scope"] = e.Scope
	}
	return t.WithExtra(extra)
}

// NewHTTPClient returns the HTTP client used by default: a 30 s overall
// timeout, bounded dial and TLS handshake, proxies from the environment,
// and no redirects (an API endpoint that redirects is misconfigured, and
// following it could carry a refresh token elsewhere).
func NewHTTPClient() *http.Client {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       30 * time.Second,
		MaxIdleConns:          4,
	}
	return noredirect.NewClient(t, 30*time.Second)
}
