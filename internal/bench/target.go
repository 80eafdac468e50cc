package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/bench/loginpage"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// benchUser is the account the bench logs in as.
const benchUser = "bench"

// benchScope is what every login asks for: offline_access, so that logins
// come with refresh tokens.
const benchScope = "openid profile offline_access"

// cheapHash makes the bench user's password quick to check. The cells
// measure the broker and the provider's token endpoint; the logins that
// mint their codes run before the clock starts, and argon2id at its real
// cost would only make that preparation slow.
var cheapHash = password.Params{Memory: 8, Time: 1, Threads: 1}

// target is the server under test and what the bench needs to drive it.
type target struct {
	srv           *app.Server
	url           string
	tokenEndpoint string
	clientID      string
	clientSecret  string
	password      string
	// machineID and machineSecret are a machine client's, for the
	// client-credentials grant.
	machineID     string
	machineSecret string
	// algorithm is the provider's signing algorithm.
	algorithm string
	// api is the client that prepares credentials; cells use their own.
	api     mgmtv1alpha1connect.AuthServiceClient
	browser *loginpage.Browser
	stop    func()
	// maxRequestBytes is the server's request size limit, which the
	// ceiling copies.
	maxRequestBytes int64
	// distinctTokens is how many tokens the distinct pool holds.
	distinctTokens int
	progress       io.Writer
	// token is a valid access token, minted at start, that the cached and
	// invalid CheckToken scenarios send (the latter forged).
	token string
	// ceiling is the bare server compared against.
	ceiling *ceiling
	// pool is the distinct tokens, minted at first need.
	pool     *tokenPool
	poolErr  error
	poolOnce sync.Once
	// broker is nsauth in front of an external provider, started at
	// first need (CheckTokenExternal).
	broker     *broker
	brokerErr  error
	brokerOnce sync.Once
}

// startTarget starts the server in this process: the built-in provider on
// a temporary SQLite database holding the bench user, no rate limit, and
// access tokens that outlive the run.
func startTarget(ctx context.Context, algorithm string) (_ *target, err error) {
	dir, err := os.MkdirTemp("", "nsauth-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	cfg, err := serverConfig(map[string]string{"NSAUTH_DATA_DIR": dir, "NSAUTH_SIGNING_ALGORITHM": algorithm})
	if err != nil {
		return nil, err
	}
	tg := &target{maxRequestBytes: cfg.MaxRequestBytes, algorithm: algorithm}
	if err = tg.prepareStore(ctx, cfg.Auth.Builtin); err != nil {
		return nil, err
	}
	if err := tg.start(ctx, cfg); err != nil {
		return nil, err
	}
	stop := tg.stop
	tg.stop = func() {
		stop()
		_ = os.RemoveAll(dir)
	}
	return tg, nil
}

// serverConfig is the configuration of the server under test on the store
// that storeEnv's settings name: no rate limit, and access tokens that
// outlive the run.
func serverConfig(storeEnv map[string]string) (*config.Server, error) {
	env := map[string]string{
		// Measuring throughput means calling far beyond any sane
		// per-client limit.
		"NSAUTH_RATE_LIMIT_PER_MINUTE": "0",
		"NSAUTH_ACCESS_TOKEN_TTL":      "24h",
		// Every code starts with an /authorize request from this address.
		"NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE":             "0",
		"NSAUTH_MACHINE_TOKEN_RATE_LIMIT_PER_MINUTE":         "0",
		"NSAUTH_MACHINE_TOKEN_ADDRESS_RATE_LIMIT_PER_MINUTE": "0",
	}
	maps.Copy(env, storeEnv)
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.LogLevel = slog.LevelError
	// Cells that consume codes first log in once per code, thousands of
	// times a minute from one address: beyond what the setting allows, and
	// beyond any person. Only this in-process server is configured so.
	cfg.Auth.Builtin.LoginAttempts = 1 << 30
	return cfg, nil
}

// start starts the server on a prepared store and sets tg.stop, which
// stops it.
func (tg *target) start(ctx context.Context, cfg *config.Server) (err error) {
	if tg.srv, err = app.New(ctx, cfg, app.Deps{}); err != nil {
		return fmt.Errorf("bench: starting the server: %w", err)
	}
	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	// The server's goroutines carry the profiler label side=nsauth (its
	// connections inherit it), the ceiling's side=ceiling, and the load
	// generator's none: go tool pprof -tagfocus side=nsauth.
	go pprof.Do(serveCtx, pprof.Labels("side", "nsauth"), func(ctx context.Context) { served <- tg.srv.Serve(ctx) })
	tg.stop = func() {
		cancel()
		<-served
	}
	tg.url = tg.srv.URL()
	tg.api = mgmtv1alpha1connect.NewAuthServiceClient(newHTTPClient(8, false), tg.url, connect.WithProtoJSON())
	tg.browser = loginpage.New(2*mintConcurrency, loginTimeout)
	if tg.tokenEndpoint, err = discoverTokenEndpoint(ctx, tg.url); err != nil {
		tg.stop()
		return err
	}
	return nil
}

// prepareStore readies the store as the server's first start would, so
// that the bench learns the broker's client credentials, and adds the
// bench user with a password only this run knows and a machine client.
func (tg *target) prepareStore(ctx context.Context, b config.Builtin) error {
	st, err := app.OpenSealedStore(ctx, b, nil, nil)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer st.Close()
	boot, err := issuer.Bootstrap(ctx, st, issuer.BootstrapConfig{})
	if err != nil {
		return fmt.Errorf("bench: preparing the provider: %w", err)
	}
	tg.clientID, tg.clientSecret = boot.ClientID, boot.ClientSecret
	if tg.password, err = password.Generate(24); err != nil {
		return err
	}
	hash, err := password.HashWithParams(tg.password, cheapHash)
	if err != nil {
		return err
	}
	if err := st.CreateUser(ctx, &store.User{Username: benchUser, Name: "Bench", PasswordHash: hash}); err != nil {
		return fmt.Errorf("bench: creating the bench user: %w", err)
	}
	tg.machineSecret = store.NewMachineClientSecret()
	mc := &store.MachineClient{Name: "bench-machine", SecretHash: store.HashSecret(tg.machineSecret), Scopes: []string{"api"}}
	if err := st.CreateMachineClient(ctx, mc); err != nil {
		return fmt.Errorf("bench: creating the machine client: %w", err)
	}
	tg.machineID = mc.ID
	return nil
}

// discoverTokenEndpoint reads the server's discovery document. The server
// may name itself otherwise than the URL the bench reaches it at
// (localhost for 127.0.0.1): then the document is read again at base,
// expecting the name it gave.
func discoverTokenEndpoint(ctx context.Context, base string) (string, error) {
	opts := oidcdiscovery.Options{Require: []string{oidcdiscovery.TokenEndpoint}}
	md, err := oidcdiscovery.Discover(ctx, base, opts)
	if mismatch := (*oidcdiscovery.IssuerMismatchError)(nil); errors.As(err, &mismatch) {
		opts.BaseURL = base
		md, err = oidcdiscovery.Discover(ctx, mismatch.Named, opts)
	}
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return md.TokenEndpoint, nil
}

// grant is an authorization code and the PKCE verifier it was asked with.
type grant struct {
	code, verifier string
}

// authorizeRequest is the GetAuthorizeUrl request the bench sends: what
// `nsauth login` sends, with PKCE.
func authorizeRequest() *mgmtv1alpha1.GetAuthorizeUrlRequest {
	challenge, method := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()), "S256"
	return &mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: "bench-state-0123456789abcdef", RedirectUri: benchRedirectURI, Scope: benchScope,
		CodeChallenge: &challenge, CodeChallengeMethod: &method,
	}
}

// forged returns token with its signature replaced by one of the same
// length: the right shape, the expensive kind of bad token, the one a
// cache of refusals must make cheap.
func forged(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return token
	}
	return parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
}

// mintCode logs the bench user in once, as `nsauth login` and a browser
// would: an authorize URL from the AuthService, the provider's login form,
// and the code on the redirect back.
func (tg *target) mintCode(ctx context.Context) (grant, error) {
	return tg.mintCodeAs(ctx, tg.browser, benchUser, tg.password)
}

// mintCodeAs is mintCode for another user, in browser b.
func (tg *target) mintCodeAs(ctx context.Context, b *loginpage.Browser, username, pw string) (grant, error) {
	verifier := oauth2.GenerateVerifier()
	challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
	resp, err := tg.api.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: "bench-state-0123456789abcdef", RedirectUri: benchRedirectURI, Scope: benchScope,
		CodeChallenge: &challenge, CodeChallengeMethod: &method,
	}))
	if err != nil {
		return grant{}, fmt.Errorf("GetAuthorizeUrl: %w", err)
	}
	code, err := b.Login(ctx, resp.Msg.GetUrl(), username, pw)
	if err != nil {
		return grant{}, err
	}
	return grant{code: code, verifier: verifier}, nil
}

// mintConcurrency is how many logins run at once while codes are minted:
// enough to keep the provider busy, few enough not to fill its queue of
// password checks.
const mintConcurrency = 4

// mintCodes mints n codes.
func (tg *target) mintCodes(ctx context.Context, n int) ([]grant, error) {
	out := make([]grant, n) // n ≥ 1
	// The first alone: begun together in a browser without a CSRF cookie,
	// logins would each set one, and post the form with another's.
	var err error
	if out[0], err = tg.mintCode(ctx); err != nil {
		return nil, err
	}
	errs := make(chan error, mintConcurrency)
	var next sync.Mutex
	i := 1
	var wg sync.WaitGroup
	for range mintConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				mine := i
				i++
				next.Unlock()
				if mine >= n {
					return
				}
				g, err := tg.mintCode(ctx)
				if err != nil {
					errs <- err
					return
				}
				out[mine] = g
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, nil
}

// login mints a code and redeems it through the AuthService.
func (tg *target) login(ctx context.Context) (*mgmtv1alpha1.AccessToken, error) {
	return tg.loginAs(ctx, tg.browser, benchUser, tg.password)
}

// loginAs is login for another user, in browser b.
func (tg *target) loginAs(ctx context.Context, b *loginpage.Browser, username, pw string) (*mgmtv1alpha1.AccessToken, error) {
	g, err := tg.mintCodeAs(ctx, b, username, pw)
	if err != nil {
		return nil, err
	}
	resp, err := tg.api.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: g.code, RedirectUri: benchRedirectURI, CodeVerifier: &g.verifier}))
	if err != nil {
		return nil, fmt.Errorf("LoginCli: %w", err)
	}
	return resp.Msg.GetAccessToken(), nil
}

// tokenResponse is the part of a token endpoint answer the bench reads.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// postToken sends a grant straight to the provider's token endpoint as the
// broker's client.
func (tg *target) postToken(ctx context.Context, client *http.Client, form url.Values) (*tokenResponse, error) {
	return tg.postTokenAs(ctx, client, tg.clientID, tg.clientSecret, form)
}

// postTokenAs sends a grant to the token endpoint as client id.
func (tg *target) postTokenAs(ctx context.Context, client *http.Client, id, secret string, form url.Values) (*tokenResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.tokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("token endpoint: HTTP %d", resp.StatusCode)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return nil, errors.New("token endpoint: unusable response")
	}
	return &tr, nil
}

// exchangeForm is the authorization-code grant the broker sends for g.
func exchangeForm(g grant) url.Values {
	return url.Values{
		"grant_type": {"authorization_code"}, "code": {g.code},
		"redirect_uri": {benchRedirectURI}, "code_verifier": {g.verifier},
	}
}

// refreshForm is the refresh-token grant.
func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
}

// loginTimeout bounds one login while minting.
const loginTimeout = 30 * time.Second

// distinctMargin is how many tokens the distinct pool holds beyond the
// verifier's cache: more than any concurrency reorders among calls taken
// in turn, so none is still cached when it comes round again.
const distinctMargin = 1024

// mintChains is how many refresh-token chains mint the distinct pool at
// once. Each chain is sequential (refresh tokens rotate).
const mintChains = 8

// tokenPool is a ring of distinct valid access tokens, more than the
// verifier's cache holds. Taken in turn, a token comes round again only
// after more than a cache's worth of others, so a least-recently-used cache
// no longer holds it and every call verifies a signature. Each server has
// its own turn: calls to the ceiling do not advance nsauth's.
type tokenPool struct {
	tokens []string
	next   [2]atomic.Uint64 // by side: 0 nsauth, 1 ceiling
}

const (
	sideNsauth  = 0
	sideCeiling = 1
)

func (p *tokenPool) take(side int) string {
	i := p.next[side].Add(1) - 1
	return p.tokens[i%uint64(len(p.tokens))]
}

// distinctPool mints the pool at first need and returns it.
func (tg *target) distinctPool(ctx context.Context) (*tokenPool, error) {
	tg.poolOnce.Do(func() {
		start := time.Now()
		fmt.Fprintf(tg.progress, "minting %d distinct access tokens for %q (refresh grants at the provider's token endpoint; untimed)\n", tg.distinctTokens, CheckTokenDistinct)
		tokens, err := tg.mintAccessTokens(ctx, tg.distinctTokens)
		if err != nil {
			tg.poolErr = fmt.Errorf("minting distinct tokens: %w", err)
			return
		}
		fmt.Fprintf(tg.progress, "minted %d tokens in %s\n", len(tokens), time.Since(start).Round(time.Millisecond))
		tg.pool = &tokenPool{tokens: tokens}
	})
	return tg.pool, tg.poolErr
}

// mintAccessTokens gets n distinct access tokens from the built-in
// provider as the broker would: mintChains logins, each followed by
// refresh grants at the token endpoint, every grant issuing a new access
// token. These are real tokens, signed by the provider's current key with
// its own claims; a login per token would cost a password check and three
// requests more each, and signing outside the provider would not be its
// tokens.
func (tg *target) mintAccessTokens(ctx context.Context, n int) ([]string, error) {
	chains := min(mintChains, n)
	grants, err := tg.mintCodes(ctx, chains)
	if err != nil {
		return nil, err
	}
	client := newHTTPClient(chains, false)
	defer client.CloseIdleConnections()
	out := make([]string, n)
	var slot atomic.Int64
	errs := make(chan error, chains)
	var wg sync.WaitGroup
	for _, g := range grants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := tg.postToken(ctx, client, exchangeForm(g))
			for err == nil {
				i := slot.Add(1) - 1
				if i >= int64(n) {
					return
				}
				out[i] = tok.AccessToken
				if tok.RefreshToken == "" {
					err = errors.New("the provider issued no refresh token")
					break
				}
				tok, err = tg.postToken(ctx, client, refreshForm(tok.RefreshToken))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	seen := make(map[string]bool, n)
	for _, t := range out {
		if seen[t] {
			return nil, errors.New("the provider issued the same access token twice")
		}
		seen[t] = true
	}
	return out, nil
}
