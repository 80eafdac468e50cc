package tokensource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Token exchange (RFC 8693) names.
const (
	// GrantTypeTokenExchange is the token exchange grant's grant_type.
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeIDToken is the subject_token_type of an OpenID Connect ID
	// token, such as the one a CI system gives each job.
	TokenTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"
	// TokenTypeAccessToken is the issued_token_type of an access token.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// maxTokenResponseBytes bounds a token endpoint's answer.
const maxTokenResponseBytes = 1 << 20

// maxSubjectTokenBytes bounds a subject token read by [SubjectTokenFile].
// ID tokens are a few KiB.
const maxSubjectTokenBytes = 64 << 10

// TokenExchangeConfig configures [NewTokenExchange].
type TokenExchangeConfig struct {
	// Issuer is the provider's issuer URL, exactly as the provider spells
	// it. The token endpoint is found by [Discover] at the first token
	// request. Give Issuer or TokenURL, not both.
	Issuer string
	// TokenURL is the provider's token endpoint, used as given.
	TokenURL string
	// SubjectToken returns the token to exchange. It is called each time
	// the source needs a new access token, not once: the ID tokens a CI
	// system hands its jobs live minutes, and the system renews them
	// (read them again from their file: see [SubjectTokenFile]). Required.
	SubjectToken func(context.Context) (string, error)
	// SubjectTokenType is the subject_token_type. Defaults to
	// [TokenTypeIDToken].
	SubjectTokenType string
	// Scopes and Audience, when set, are sent as `scope` and `audience`.
	Scopes   []string
	Audience string
	// HTTPClient makes the requests. It must have a timeout and MUST NOT
	// follow redirects, which could carry the subject token elsewhere.
	// Defaults to [NewHTTPClient].
	HTTPClient *http.Client
	// Margin is how much life a token must have left to be reused.
	// Defaults to DefaultMargin; negative means 0.
	Margin time.Duration
	// InsecureAllowHTTP permits plain-HTTP endpoints on hosts other than
	// this machine. The subject token then crosses the network in the
	// clear; it MUST NOT be set outside of trusted networks.
	InsecureAllowHTTP bool
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// TokenExchange gets access tokens by exchanging a subject token, such as
// a CI job's ID token, at the provider's token endpoint (RFC 8693, without
// client authentication), and reuses each until it has less than the
// margin of life left. It is safe for concurrent use: callers asking at
// once share one token request. Nothing is written to disk.
type TokenExchange struct {
	endpoint *endpoint
	cfg      TokenExchangeConfig
	cache    *cache
}

var _ oauth2.TokenSource = (*TokenExchange)(nil)

// NewTokenExchange returns a TokenExchange source. It makes no network call
// and does not call cfg.SubjectToken until a token is asked for.
func NewTokenExchange(cfg TokenExchangeConfig) (*TokenExchange, error) {
	if cfg.SubjectToken == nil {
		return nil, errors.New("tokensource: a SubjectToken function is required")
	}
	ep, err := newEndpoint(cfg.Issuer, cfg.TokenURL, cfg.InsecureAllowHTTP, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	if cfg.SubjectTokenType == "" {
		cfg.SubjectTokenType = TokenTypeIDToken
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &TokenExchange{endpoint: ep, cfg: cfg}
	s.cache = newCache(cfg.Margin, cfg.Now, s.fetch)
	return s, nil
}

// Token implements oauth2.TokenSource. It is TokenContext without a
// deadline of the caller's; the HTTP client's timeout still bounds it.
func (s *TokenExchange) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext returns a token with more than the margin of life left,
// exchanging a fresh subject token for a new one if needed. A provider's
// refusal is a [*TokenEndpointError]; ErrorCode "invalid_grant" means the
// subject token was refused (expired, or trusted for no client). Errors
// never contain the subject token or an access token.
func (s *TokenExchange) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	return s.cache.token(ctx)
}

func (s *TokenExchange) fetch(ctx context.Context) (*oauth2.Token, error) {
	tokenURL, err := s.endpoint.resolve(ctx)
	if err != nil {
		return nil, err
	}
	subject, err := s.cfg.SubjectToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the subject token: %w", err)
	}
	if subject == "" {
		return nil, errors.New("reading the subject token: it is empty")
	}
	form := url.Values{
		"grant_type":         {GrantTypeTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {s.cfg.SubjectTokenType},
	}
	if len(s.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(s.cfg.Scopes, " "))
	}
	if s.cfg.Audience != "" {
		form.Set("audience", s.cfg.Audience)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("exchanging the subject token: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	start := s.cfg.Now()
	resp, err := s.endpoint.client.Do(req)
	if err != nil {
		// *url.Error: the token URL and the transport's error, no form.
		return nil, fmt.Errorf("exchanging the subject token: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("exchanging the subject token: reading the answer: %w", err)
	}
	if len(body) > maxTokenResponseBytes {
		return nil, fmt.Errorf("exchanging the subject token: the answer is larger than %d bytes", maxTokenResponseBytes)
	}
	tok, err := parseExchangeResponse(resp, body, start)
	if err != nil {
		return nil, fmt.Errorf("exchanging the subject token: %w", err)
	}
	return tok, nil
}

// parseExchangeResponse reads RFC 8693 §2.2's answers. The body is never
// quoted in errors.
func parseExchangeResponse(resp *http.Response, body []byte, start time.Time) (*oauth2.Token, error) {
	var r struct {
		Error           string          `json:"error"`
		AccessToken     string          `json:"access_token"`
		TokenType       string          `json:"token_type"`
		IssuedTokenType string          `json:"issued_token_type"`
		ExpiresIn       json.RawMessage `json:"expires_in"`
		Scope           string          `json:"scope"`
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	parsed := dec.Decode(&r) == nil
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		code := ""
		if parsed {
			code = errorCode(r.Error)
		}
		return nil, &TokenEndpointError{StatusCode: resp.StatusCode, ErrorCode: code}
	}
	if !parsed || (mt != "" && mt != "application/json") {
		return nil, errors.New("the token endpoint's answer is not a token response")
	}
	if r.AccessToken == "" {
		return nil, errors.New("the token endpoint's answer has no access_token")
	}
	if r.IssuedTokenType != "" && r.IssuedTokenType != TokenTypeAccessToken {
		return nil, fmt.Errorf("the token endpoint issued a token of type %q, not an access token", errorCode(r.IssuedTokenType))
	}
	tok := &oauth2.Token{AccessToken: r.AccessToken, TokenType: r.TokenType}
	tok.TokenType = tok.Type()
	if len(r.ExpiresIn) > 0 {
		var v any
		d := json.NewDecoder(bytes.NewReader(r.ExpiresIn))
		d.UseNumber()
		if d.Decode(&v) == nil {
			if life, ok := expiresIn(v); ok {
				tok.Expiry = start.Add(life)
				tok.ExpiresIn = int64(life / time.Second)
			}
		}
	}
	if r.Scope != "" {
		tok = tok.WithExtra(map[string]any{"scope": r.Scope})
	}
	return tok, nil
}

// SubjectTokenFile returns a [TokenExchangeConfig.SubjectToken] function
// that reads the token from path each time, as CI systems that renew a
// job's token in a file expect. Surrounding white space is dropped; a file
// larger than 64 KiB is refused.
func SubjectTokenFile(path string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSubjectTokenBytes+1))
		if err != nil {
			return "", err
		}
		if len(b) > maxSubjectTokenBytes {
			return "", fmt.Errorf("%s is larger than %d bytes: not a token", path, maxSubjectTokenBytes)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("%s is empty", path)
		}
		return tok, nil
	}
}
