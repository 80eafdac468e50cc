package tokensource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// What the sources that get tokens from a provider's token endpoint share:
// where the endpoint is, the cache, and what a refusal looks like.

// TokenEndpointError is the error of a token request the provider refused
// with an OAuth error response (RFC 6749 §5.2). Callers branch on
// ErrorCode: "invalid_client" means the client ID or secret is wrong,
// "invalid_grant" that the grant (a subject token, say) was refused.
//
// The provider's error_description is not kept: it is the provider's text,
// and messages built from this error are shown to people and logged.
type TokenEndpointError struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// ErrorCode is the answer's `error`, empty when it had none that is a
	// valid error code.
	ErrorCode string
}

func (e *TokenEndpointError) Error() string {
	if e.ErrorCode == "" {
		return fmt.Sprintf("the token endpoint refused the request (HTTP %d)", e.StatusCode)
	}
	return fmt.Sprintf("the token endpoint refused the request: %s (HTTP %d)", e.ErrorCode, e.StatusCode)
}

// errorCode returns code if it is a plausible RFC 6749 error code (printable
// ASCII without '"' or '\', bounded), else "": it ends up in messages.
func errorCode(code string) string {
	if code == "" || len(code) > 64 {
		return ""
	}
	for _, r := range code {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return ""
		}
	}
	return code
}

// endpoint is where a source sends its token requests: a token URL given,
// or found by discovery of an issuer at the first request.
type endpoint struct {
	issuer, tokenURL  string
	authStyle         oauth2.AuthStyle // from discovery; AuthStyleInHeader with a TokenURL given
	insecureAllowHTTP bool
	client            *http.Client
}

func newEndpoint(issuer, tokenURL string, insecureAllowHTTP bool, client *http.Client) (*endpoint, error) {
	switch {
	case tokenURL == "" && issuer == "":
		return nil, errors.New("tokensource: an Issuer or a TokenURL is required")
	case tokenURL != "" && issuer != "":
		return nil, errors.New("tokensource: give an Issuer or a TokenURL, not both")
	}
	for _, u := range []string{issuer, tokenURL} {
		if u == "" {
			continue
		}
		if err := oidcdiscovery.CheckEndpointURL(u, ""); err != nil {
			return nil, fmt.Errorf("tokensource: %w", err)
		}
		if err := tokenstore.CheckTransport(u, insecureAllowHTTP); err != nil {
			return nil, fmt.Errorf("tokensource: %w", err)
		}
	}
	if client == nil {
		client = NewHTTPClient()
	}
	return &endpoint{issuer: issuer, tokenURL: tokenURL, authStyle: oauth2.AuthStyleInHeader, insecureAllowHTTP: insecureAllowHTTP, client: client}, nil
}

// resolve returns the token URL, discovering it the first time. The caller
// holds the source's lock.
func (e *endpoint) resolve(ctx context.Context) (string, error) {
	if e.tokenURL != "" {
		return e.tokenURL, nil
	}
	md, err := discover(ctx, e.issuer, e.client)
	if err != nil {
		return "", fmt.Errorf("finding the token endpoint: %w", err)
	}
	if err := tokenstore.CheckTransport(md.TokenEndpoint, e.insecureAllowHTTP); err != nil {
		return "", fmt.Errorf("the token endpoint %s: %w", md.TokenEndpoint, err)
	}
	e.tokenURL, e.authStyle = md.TokenEndpoint, AuthStyle(md.TokenEndpointAuthMethodsSupported)
	return e.tokenURL, nil
}

// cache holds a source's last token and gets a new one when it has less
// than the margin of life left. One fetch runs at a time, so callers
// waiting at once share its result.
type cache struct {
	margin time.Duration
	now    func() time.Time
	fetch  func(ctx context.Context) (*oauth2.Token, error)

	mu     sync.Mutex
	cached *oauth2.Token
}

func newCache(margin time.Duration, now func() time.Time, fetch func(context.Context) (*oauth2.Token, error)) *cache {
	switch {
	case margin == 0:
		margin = DefaultMargin
	case margin < 0:
		margin = 0
	}
	if now == nil {
		now = time.Now
	}
	return &cache{margin: margin, now: now, fetch: fetch}
}

func (c *cache) token(ctx context.Context) (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != nil && c.cached.Expiry.Sub(c.now()) > c.margin {
		return copyToken(c.cached), nil
	}
	tok, err := c.fetch(ctx)
	if err != nil {
		return nil, err
	}
	// A token without a lifetime is used once, never cached: the source
	// cannot know when it stops working.
	if !tok.Expiry.IsZero() {
		c.cached = tok
	}
	return copyToken(tok), nil
}

// copyToken hands out a token callers may change without changing the
// cached one.
func copyToken(t *oauth2.Token) *oauth2.Token {
	out := &oauth2.Token{AccessToken: t.AccessToken, TokenType: t.TokenType, Expiry: t.Expiry, ExpiresIn: t.ExpiresIn}
	if s, ok := t.Extra("scope").(string); ok && s != "" {
		out = out.WithExtra(map[string]any{"scope": s})
	}
	return out
}

// expiresIn reads an `expires_in` as providers send it: a JSON number, or a
// string holding one. ok is false when there is none, or it is not positive.
func expiresIn(v any) (d time.Duration, ok bool) {
	var secs float64
	switch x := v.(type) {
	case float64:
		secs = x
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return 0, false
		}
		secs = f
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, false
		}
		secs = f
	default:
		return 0, false
	}
	if secs <= 0 || secs > 1<<31 {
		return 0, false
	}
	return time.Duration(secs) * time.Second, true
}

// withClient carries client to golang.org/x/oauth2, which takes its HTTP
// client from the context only.
func withClient(ctx context.Context, client *http.Client) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, client)
}
