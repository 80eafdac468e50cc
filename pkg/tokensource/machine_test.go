package tokensource_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/tokensource"
)

const (
	machineID     = "ci-deployer"
	machineSecret = "machine-secret-5d1c9e0b7a"
)

// clock is a settable clock, shared by a test, its provider and its
// source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func machineProvider(t *testing.T, opts ...oidctest.Option) *oidctest.Provider {
	t.Helper()
	p := oidctest.New(t, opts...)
	p.AddMachineClient(machineID, machineSecret)
	return p
}

// checkNoSecrets fails if text contains any of secrets.
func checkNoSecrets(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range append(secrets, machineSecret, oidctest.LeakBait) {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret (%.12s…): %s", what, s, text)
		}
	}
}

func TestClientCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		cfg           func(p *oidctest.Provider) tokensource.ClientCredentialsConfig
		prepare       func(p *oidctest.Provider)
		wantCode      string // TokenEndpointError.ErrorCode; "" with wantErr means another error
		wantErr       string
		wantDiscovery int
		wantScope     string
	}{
		{
			name: "issuer discovered",
			cfg: func(p *oidctest.Provider) tokensource.ClientCredentialsConfig {
				return tokensource.ClientCredentialsConfig{Issuer: p.Issuer, ClientID: machineID, ClientSecret: machineSecret}
			},
			wantDiscovery: 1,
		},
		{
			name: "token URL given, with scopes",
			cfg: func(p *oidctest.Provider) tokensource.ClientCredentialsConfig {
				return tokensource.ClientCredentialsConfig{TokenURL: p.Issuer + oidctest.PathToken, ClientID: machineID, ClientSecret: machineSecret, Scopes: []string{"jobs:read", "jobs:write"}}
			},
			wantScope: "jobs:read jobs:write",
		},
		{
			name: "client ID and secret with reserved characters",
			cfg: func(p *oidctest.Provider) tokensource.ClientCredentialsConfig {
				p.AddMachineClient("odd client:1", "p@ss:w/rd+% &=")
				return tokensource.ClientCredentialsConfig{TokenURL: p.Issuer + oidctest.PathToken, ClientID: "odd client:1", ClientSecret: "p@ss:w/rd+% &="}
			},
		},
		{
			name: "wrong secret",
			cfg: func(p *oidctest.Provider) tokensource.ClientCredentialsConfig {
				return tokensource.ClientCredentialsConfig{Issuer: p.Issuer, ClientID: machineID, ClientSecret: "wrong-" + machineSecret}
			},
			wantCode:      "invalid_client",
			wantErr:       `client "ci-deployer": the token endpoint refused the request: invalid_client (HTTP 401)`,
			wantDiscovery: 1,
		},
		{
			name: "unknown client",
			cfg: func(p *oidctest.Provider) tokensource.ClientCredentialsConfig {
				return tokensource.ClientCredentialsConfig{Issuer: p.Issuer, ClientID: "nobody", ClientSecret: machineSecret}
			},
			wantCode:      "invalid_client",
			wantDiscovery: 1,
		},
		{
			name: "discovery names another issuer",
			cfg: func(p *oidctest.Provider) tokensource.ClientCredentialsConfig {
				return tokensource.ClientCredentialsConfig{Issuer: p.Issuer, ClientID: machineID, ClientSecret: machineSecret}
			},
			prepare:       func(p *oidctest.Provider) { p.SetDiscoveredIssuer("https://evil.example") },
			wantErr:       `names the issuer "https://evil.example"`,
			wantDiscovery: 1,
		},
		{
			name: "token endpoint fails",
			cfg: func(p *oidctest.Provider) tokensource.ClientCredentialsConfig {
				return tokensource.ClientCredentialsConfig{Issuer: p.Issuer, ClientID: machineID, ClientSecret: machineSecret}
			},
			prepare:       func(p *oidctest.Provider) { p.SetFailure(oidctest.PathToken, oidctest.Status500) },
			wantErr:       "refused the request (HTTP 500)",
			wantDiscovery: 1,
		},
		{
			name: "token endpoint answers garbage",
			cfg: func(p *oidctest.Provider) tokensource.ClientCredentialsConfig {
				return tokensource.ClientCredentialsConfig{Issuer: p.Issuer, ClientID: machineID, ClientSecret: machineSecret}
			},
			prepare:       func(p *oidctest.Provider) { p.SetFailure(oidctest.PathToken, oidctest.Garbage) },
			wantErr:       "not a token response",
			wantDiscovery: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := machineProvider(t)
			if tc.prepare != nil {
				tc.prepare(p)
			}
			ts, err := tokensource.NewClientCredentials(tc.cfg(p))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := ts.TokenContext(context.Background())
			if got := p.Count(oidctest.PathDiscovery); got != tc.wantDiscovery {
				t.Errorf("discovery requests = %d, want %d", got, tc.wantDiscovery)
			}
			if tc.wantErr != "" || tc.wantCode != "" {
				if err == nil {
					t.Fatalf("TokenContext succeeded, want an error")
				}
				checkNoSecrets(t, "the error", err.Error())
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error = %q, want it to contain %q", err, tc.wantErr)
				}
				var te *tokensource.TokenEndpointError
				if gotCode := ""; errors.As(err, &te) {
					gotCode = te.ErrorCode
					if gotCode != tc.wantCode {
						t.Errorf("ErrorCode = %q, want %q", gotCode, tc.wantCode)
					}
				} else if tc.wantCode != "" {
					t.Errorf("error %q is not a TokenEndpointError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.Expiry.IsZero() {
				t.Errorf("token = %q %q expiring %v, want a bearer token with an expiry", tok.TokenType, tok.AccessToken, tok.Expiry)
			}
			if got, _ := tok.Extra("scope").(string); got != tc.wantScope {
				t.Errorf("scope = %q, want %q", got, tc.wantScope)
			}
			if got := p.GrantCount("client_credentials"); got != 1 {
				t.Errorf("client credentials requests = %d, want 1", got)
			}
		})
	}
}

func TestClientCredentialsUnreachable(t *testing.T) {
	t.Parallel()
	ts, err := tokensource.NewClientCredentials(tokensource.ClientCredentialsConfig{Issuer: deadURL(t), ClientID: machineID, ClientSecret: machineSecret})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ts.Token()
	if err == nil || !strings.Contains(err.Error(), "finding the token endpoint") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error = %v, want a discovery error saying the connection was refused", err)
	}
}

func TestClientCredentialsCachedUntilMargin(t *testing.T) {
	t.Parallel()
	clk := newClock()
	p := machineProvider(t, oidctest.WithClock(clk.Now)) // tokens live 15 min
	ts, err := tokensource.NewClientCredentials(tokensource.ClientCredentialsConfig{Issuer: p.Issuer, ClientID: machineID, ClientSecret: machineSecret, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name     string
		advance  time.Duration
		requests int
	}{
		{"first token", 0, 1},
		{"13 min later: cached", 13 * time.Minute, 1},
		{"61 s left: still cached", time.Minute - time.Second, 1},
		{"58 s left, inside the margin: a new one", 3 * time.Second, 2},
		{"at once again: cached", 0, 2},
	}
	var last string
	for _, s := range steps {
		clk.Advance(s.advance)
		tok, err := ts.Token()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := p.GrantCount("client_credentials"); got != s.requests {
			t.Errorf("%s: token requests = %d, want %d", s.name, got, s.requests)
		}
		if want := clk.Now().Add(15 * time.Minute); s.advance != 0 && s.requests == 2 && !tok.Expiry.Equal(want) {
			t.Errorf("%s: expiry = %v, want %v (the source's clock)", s.name, tok.Expiry, want)
		}
		if s.advance == 0 && last != "" && tok.AccessToken != last {
			t.Errorf("%s: a new token, want the cached one", s.name)
		}
		last = tok.AccessToken
	}
	if got := p.Count(oidctest.PathDiscovery); got != 1 {
		t.Errorf("discovery requests = %d, want 1 (remembered)", got)
	}
}

// TestConcurrentCallersShareOneRequest: many goroutines asking at once
// for a token of a new source make one token request.
func TestConcurrentCallersShareOneRequest(t *testing.T) {
	t.Parallel()
	p := machineProvider(t)
	subject := p.MintSubjectToken(machineID, 5*time.Minute)
	sources := map[string]oauth2.TokenSource{}
	var err error
	if sources["client_credentials"], err = tokensource.NewClientCredentials(tokensource.ClientCredentialsConfig{Issuer: p.Issuer, ClientID: machineID, ClientSecret: machineSecret}); err != nil {
		t.Fatal(err)
	}
	if sources[oidctest.TokenExchangeGrantType], err = tokensource.NewTokenExchange(tokensource.TokenExchangeConfig{
		Issuer:       p.Issuer,
		SubjectToken: func(context.Context) (string, error) { return subject, nil },
	}); err != nil {
		t.Fatal(err)
	}
	for grant, ts := range sources {
		t.Run(grant, func(t *testing.T) {
			const n = 32
			start := make(chan struct{})
			tokens := make([]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					tok, err := ts.Token()
					errs[i] = err
					if err == nil {
						tokens[i] = tok.AccessToken
					}
				})
			}
			close(start)
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("goroutine %d: %v", i, errs[i])
				}
				if tokens[i] != tokens[0] {
					t.Fatalf("goroutine %d got another token", i)
				}
			}
			if got := p.GrantCount(grant); got != 1 {
				t.Errorf("token requests = %d, want 1", got)
			}
		})
	}
}

func TestTokenExchange(t *testing.T) {
	t.Parallel()
	clk := newClock()
	p := machineProvider(t, oidctest.WithClock(clk.Now))
	p.SetAccessTokenTTL(5 * time.Minute)
	path := filepath.Join(t.TempDir(), "id-token")
	write := func(tok string) {
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	first := p.MintSubjectToken(machineID, 5*time.Minute)
	write(first)
	var reads atomic.Int32
	file := tokensource.SubjectTokenFile(path)
	ts, err := tokensource.NewTokenExchange(tokensource.TokenExchangeConfig{
		Issuer:   p.Issuer,
		Scopes:   []string{"deploy"},
		Audience: "https://api.example.test",
		SubjectToken: func(ctx context.Context) (string, error) {
			reads.Add(1)
			return file(ctx)
		},
		Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if reads.Load() != 0 {
		t.Fatal("NewTokenExchange read the subject token")
	}

	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tok.Extra("scope").(string); got != "deploy" || tok.TokenType != "Bearer" {
		t.Errorf("token type %q, scope %q; want Bearer, deploy", tok.TokenType, got)
	}
	forms := p.Forms()
	form := forms[len(forms)-1]
	for k, want := range map[string]string{
		"grant_type": oidctest.TokenExchangeGrantType, "subject_token": first, "subject_token_type": oidctest.IDTokenType,
		"scope": "deploy", "audience": "https://api.example.test", "client_id": "", "client_secret": "",
	} {
		if got := form.Get(k); got != want {
			t.Errorf("form %s = %q, want %q", k, got, want)
		}
	}
	for _, r := range p.Requests() {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("%s %s carried an Authorization header: the exchange authenticates no client", r.Method, r.URL.Path)
		}
	}

	// The CI system renews the job's token in its file; the next exchange,
	// once the access token is near expiry, reads the new one.
	clk.Advance(4*time.Minute + 30*time.Second)
	second := p.MintSubjectToken(machineID, 5*time.Minute)
	write(second)
	if _, err := ts.Token(); err != nil {
		t.Fatal(err)
	}
	if got := reads.Load(); got != 2 {
		t.Errorf("subject token reads = %d, want 2 (one per exchange)", got)
	}
	forms = p.Forms()
	if got := forms[len(forms)-1].Get("subject_token"); got != second {
		t.Error("the second exchange did not send the renewed subject token")
	}

	// The file is not renewed: the provider refuses the expired token.
	clk.Advance(6 * time.Minute)
	_, err = ts.Token()
	var te *tokensource.TokenEndpointError
	if !errors.As(err, &te) || te.ErrorCode != "invalid_grant" {
		t.Fatalf("error = %v, want a TokenEndpointError invalid_grant", err)
	}
	checkNoSecrets(t, "the error", err.Error(), first, second)
}

func TestTokenExchangeFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		subject func(p *oidctest.Provider) func(context.Context) (string, error)
		prepare func(p *oidctest.Provider)
		wantErr string
	}{
		{
			name: "subject token unknown to the provider",
			subject: func(*oidctest.Provider) func(context.Context) (string, error) {
				return func(context.Context) (string, error) { return "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", nil }
			},
			wantErr: "invalid_grant (HTTP 400)",
		},
		{
			name: "scripted refusal",
			prepare: func(p *oidctest.Provider) {
				p.FailNextGrant(oidctest.TokenExchangeGrantType, http.StatusBadRequest, "unauthorized_client")
			},
			wantErr: "unauthorized_client (HTTP 400)",
		},
		{
			name: "subject file missing",
			subject: func(*oidctest.Provider) func(context.Context) (string, error) {
				return tokensource.SubjectTokenFile(filepath.Join(os.TempDir(), "nsauth-no-such-token"))
			},
			wantErr: "reading the subject token: open",
		},
		{
			name: "subject empty",
			subject: func(*oidctest.Provider) func(context.Context) (string, error) {
				return func(context.Context) (string, error) { return "", nil }
			},
			wantErr: "reading the subject token: it is empty",
		},
		{
			name:    "token endpoint drops the connection",
			prepare: func(p *oidctest.Provider) { p.SetFailure(oidctest.PathToken, oidctest.Drop) },
			wantErr: "exchanging the subject token: Post",
		},
		{
			name:    "token endpoint answers garbage",
			prepare: func(p *oidctest.Provider) { p.SetFailure(oidctest.PathToken, oidctest.Garbage) },
			wantErr: "not a token response",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := machineProvider(t)
			subject := p.MintSubjectToken(machineID, 5*time.Minute)
			fn := func(context.Context) (string, error) { return subject, nil }
			if tc.subject != nil {
				fn = tc.subject(p)
			}
			if tc.prepare != nil {
				tc.prepare(p)
			}
			ts, err := tokensource.NewTokenExchange(tokensource.TokenExchangeConfig{TokenURL: p.Issuer + oidctest.PathToken, SubjectToken: fn})
			if err != nil {
				t.Fatal(err)
			}
			_, err = ts.Token()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
			checkNoSecrets(t, "the error", err.Error(), subject)
		})
	}
}

func TestDiscover(t *testing.T) {
	t.Parallel()
	serve := func(t *testing.T, h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name    string
		handler func(self *string) http.HandlerFunc
		wantErr string
		want    string // token URL, relative to the server
	}{
		{
			name: "ok",
			handler: func(self *string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprintf(w, `{"issuer":%q,"token_endpoint":%q}`, *self, *self+"/oauth/token")
				}
			},
			want: "/oauth/token",
		},
		{
			name: "redirect not followed",
			handler: func(self *string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "https://evil.example/", http.StatusFound)
				}
			},
			wantErr: "HTTP 302, a redirect, which is not followed",
		},
		{
			name: "no token endpoint",
			handler: func(self *string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, `{"issuer":%q}`, *self) }
			},
			wantErr: "token_endpoint is missing",
		},
		{
			name: "a web page",
			handler: func(self *string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>"+oidctest.LeakBait+"</html>") }
			},
			wantErr: "not a discovery document",
		},
		{
			name: "too large",
			handler: func(self *string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprintf(w, `{"issuer":%q,"x":"%s"}`, *self, strings.Repeat("a", 1<<20))
				}
			},
			wantErr: "larger than",
		},
		{
			name: "not found",
			handler: func(self *string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
			},
			wantErr: "HTTP 404",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var self string
			self = serve(t, tc.handler(&self))
			md, err := tokensource.Discover(context.Background(), self, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Discover: %v, want an error containing %q", err, tc.wantErr)
				}
				checkNoSecrets(t, "the error", err.Error())
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if md.Issuer != self || md.TokenURL != self+tc.want {
				t.Errorf("Discover = %+v", md)
			}
		})
	}
}

func TestDiscoverMismatchNamesTheIssuer(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	p.SetDiscoveredIssuer("http://127.0.0.1:1")
	_, err := tokensource.Discover(context.Background(), p.Issuer, nil)
	var mm *tokensource.IssuerMismatchError
	if !errors.As(err, &mm) || mm.Named != "http://127.0.0.1:1" || mm.URL != p.Issuer {
		t.Fatalf("Discover: %v, want an IssuerMismatchError naming http://127.0.0.1:1", err)
	}
}

func TestMachineConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cc      tokensource.ClientCredentialsConfig
		wantErr string
	}{
		{"no client ID", tokensource.ClientCredentialsConfig{Issuer: "https://auth.example.com", ClientSecret: "s"}, "ClientID is required"},
		{"no secret", tokensource.ClientCredentialsConfig{Issuer: "https://auth.example.com", ClientID: "c"}, "ClientSecret is required"},
		{"no endpoint", tokensource.ClientCredentialsConfig{ClientID: "c", ClientSecret: "s"}, "Issuer or a TokenURL is required"},
		{"both", tokensource.ClientCredentialsConfig{Issuer: "https://a.example", TokenURL: "https://a.example/token", ClientID: "c", ClientSecret: "s"}, "not both"},
		{"plain HTTP elsewhere", tokensource.ClientCredentialsConfig{Issuer: "http://auth.example.com", ClientID: "c", ClientSecret: "s"}, "plain HTTP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tokensource.NewClientCredentials(tc.cc)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("NewClientCredentials: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	if _, err := tokensource.NewTokenExchange(tokensource.TokenExchangeConfig{Issuer: "https://auth.example.com"}); err == nil || !strings.Contains(err.Error(), "SubjectToken") {
		t.Errorf("NewTokenExchange without SubjectToken: %v", err)
	}
}

// TestClientCredentialsAuthStyle: the secret goes where the discovery
// document says, and a refusal is not retried the other way.
func TestClientCredentialsAuthStyle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		methods    []string // token_endpoint_auth_methods_supported; nil: none named
		tokenURL   bool     // give the TokenURL instead of the issuer
		style      oauth2.AuthStyle
		wantHeader bool
	}{
		{name: "none named: basic", wantHeader: true},
		{name: "both named: basic", methods: []string{"client_secret_post", "client_secret_basic"}, wantHeader: true},
		{name: "post only", methods: []string{"client_secret_post"}, wantHeader: false},
		{name: "token URL: basic", tokenURL: true, methods: []string{"client_secret_post"}, wantHeader: true},
		{name: "configured", style: oauth2.AuthStyleInParams, wantHeader: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []oidctest.Option
			if tc.methods != nil {
				opts = append(opts, oidctest.WithAuthMethods(tc.methods...))
			}
			p := machineProvider(t, opts...)
			for _, secret := range []string{machineSecret, "wrong"} {
				cfg := tokensource.ClientCredentialsConfig{Issuer: p.Issuer, ClientID: machineID, ClientSecret: secret, AuthStyle: tc.style}
				if tc.tokenURL {
					cfg.Issuer, cfg.TokenURL = "", p.Issuer+oidctest.PathToken
				}
				ts, err := tokensource.NewClientCredentials(cfg)
				if err != nil {
					t.Fatal(err)
				}
				before := p.GrantCount("client_credentials")
				_, err = ts.Token()
				if (err == nil) != (secret == machineSecret) {
					t.Fatalf("secret %q: Token error %v", secret, err)
				}
				if got := p.GrantCount("client_credentials") - before; got != 1 {
					t.Errorf("secret %q: %d token requests, want 1", secret, got)
				}
			}
			for _, r := range p.Requests() {
				if r.URL.Path != oidctest.PathToken {
					continue
				}
				if got := r.Header.Get("Authorization") != ""; got != tc.wantHeader {
					t.Errorf("Authorization header sent: %v, want %v", got, tc.wantHeader)
				}
			}
			for _, f := range p.Forms() {
				if got := f.Get("client_secret") != ""; got == tc.wantHeader {
					t.Errorf("client_secret in the form: %v, want %v", got, !tc.wantHeader)
				}
			}
		})
	}
}
