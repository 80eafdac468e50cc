package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// AuthorizeRequest holds the client-chosen parameters of an authorize URL.
// They must already be validated.
type AuthorizeRequest struct {
	State               string
	RedirectURI         string
	Scope               string
	CodeChallenge       string
	CodeChallengeMethod string
}

// AuthorizeURL returns the provider's authorization endpoint with client_id,
// response_type=code, scope, state, redirect_uri, audience (when configured)
// and the PKCE challenge (when given), each exactly once and query-escaped:
// values set here replace any the endpoint URL already carried. It runs on
// every GetAuthorizeUrl, so it only concatenates.
func (p *Provider) AuthorizeURL(r AuthorizeRequest) (string, error) {
	md, err := p.Metadata()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(md.authorizeBase) + len(md.authorizeExtra) + len(p.cfg.ClientID) + len(p.cfg.Audience) +
		3*(len(r.State)+len(r.RedirectURI)+len(r.Scope)) + len(r.CodeChallenge) + 160)
	b.WriteString(md.authorizeBase)
	b.WriteByte('?')
	if md.authorizeExtra != "" {
		b.WriteString(md.authorizeExtra)
		b.WriteByte('&')
	}
	param := func(k, v string) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(v))
	}
	param("client_id", p.cfg.ClientID)
	b.WriteString("&response_type=code&")
	param("scope", r.Scope)
	b.WriteByte('&')
	param("state", r.State)
	b.WriteByte('&')
	param("redirect_uri", r.RedirectURI)
	if p.cfg.Audience != "" {
		b.WriteByte('&')
		param("audience", p.cfg.Audience)
	}
	if r.CodeChallenge != "" {
		b.WriteByte('&')
		param("code_challenge", r.CodeChallenge)
		b.WriteByte('&')
		param("code_challenge_method", r.CodeChallengeMethod)
	}
	return b.String(), nil
}

// Token is what the token endpoint returned. Optional fields are empty when
// the provider did not send them.
type Token struct {
	AccessToken  string
	TokenType    string
	RefreshToken string
	IDToken      string
	Scope        string
	// ExpiresIn is the access token's lifetime in seconds, 0 when unknown.
	ExpiresIn int64
}

// Exchange redeems an authorization code at the token endpoint. verifier is
// the PKCE code verifier, or empty.
func (p *Provider) Exchange(ctx context.Context, code, redirectURI, verifier string) (*Token, error) {
	cfg, err := p.oauth2Config(redirectURI)
	if err != nil {
		return nil, err
	}
	var opts []oauth2.AuthCodeOption
	if verifier != "" {
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	tok, err := cfg.Exchange(p.clientContext(ctx), code, opts...)
	if err != nil {
		return nil, classify(ctx, err)
	}
	return p.convert(tok, ""), nil
}

// Refresh runs the refresh-token grant.
func (p *Provider) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	cfg, err := p.oauth2Config("")
	if err != nil {
		return nil, err
	}
	// An empty, expired token makes the source refresh immediately.
	src := cfg.TokenSource(p.clientContext(ctx), &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)})
	tok, err := src.Token()
	if err != nil {
		return nil, classify(ctx, err)
	}
	return p.convert(tok, refreshToken), nil
}

// Revoke revokes a refresh token at the provider's revocation endpoint
// (RFC 7009). It reports false, with no error, when the provider advertises
// no revocation endpoint.
func (p *Provider) Revoke(ctx context.Context, refreshToken string) (bool, error) {
	md, err := p.Metadata()
	if err != nil {
		return false, err
	}
	if md.RevocationEndpoint == "" {
		return false, nil
	}
	form := url.Values{"token": {refreshToken}, "token_type_hint": {"refresh_token"}}
	resp, err := p.postClientAuthenticated(ctx, md, md.RevocationEndpoint, form)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusOK:
		return true, nil
	case resp.StatusCode >= 500:
		return false, unavailable("revocation endpoint: HTTP %d", resp.StatusCode)
	default:
		return false, &RejectedError{Code: "revocation_refused", Status: resp.StatusCode}
	}
}

// postClientAuthenticated posts a form to one of the provider's endpoints
// with the client's credentials, in the header when the provider takes
// client_secret_basic and in the body otherwise.
func (p *Provider) postClientAuthenticated(ctx context.Context, md *Metadata, endpoint string, form url.Values) (*http.Response, error) {
	useBasic := p.cfg.ClientSecret != "" && md.supportsBasicAuth()
	if !useBasic {
		form.Set("client_id", p.cfg.ClientID)
		if p.cfg.ClientSecret != "" {
			form.Set("client_secret", p.cfg.ClientSecret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if useBasic {
		req.SetBasicAuth(url.QueryEscape(p.cfg.ClientID), url.QueryEscape(p.cfg.ClientSecret))
	}
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable("calling provider: %v", redactURLError(err))
	}
	return resp, nil
}

func (p *Provider) oauth2Config(redirectURI string) (*oauth2.Config, error) {
	md, err := p.Metadata()
	if err != nil {
		return nil, err
	}
	style := oauth2.AuthStyleInParams
	if p.cfg.ClientSecret != "" && md.supportsBasicAuth() {
		style = oauth2.AuthStyleInHeader
	}
	return &oauth2.Config{
		ClientID:     p.cfg.ClientID,
		ClientSecret: p.cfg.ClientSecret,
		RedirectURL:  redirectURI,
		Endpoint: oauth2.Endpoint{
			AuthURL:   md.AuthorizationEndpoint,
			TokenURL:  md.TokenEndpoint,
			AuthStyle: style,
		},
	}, nil
}

// clientContext hands our HTTP client to x/oauth2, which only takes it
// through the context.
func (p *Provider) clientContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, p.cfg.HTTPClient)
}

// convert copies a token response. oauth2's refresher fills in the old
// refresh token when the provider sent none; the raw response tells whether
// the provider really rotated it, and only then is it returned.
func (p *Provider) convert(tok *oauth2.Token, sentRefreshToken string) *Token {
	out := &Token{
		AccessToken: tok.AccessToken,
		TokenType:   tok.TokenType,
		ExpiresIn:   tok.ExpiresIn,
	}
	if out.ExpiresIn == 0 && !tok.Expiry.IsZero() {
		out.ExpiresIn = max(0, int64(tok.Expiry.Sub(p.cfg.Now()).Round(time.Second)/time.Second))
	}
	// RFC 6749 token types are case-insensitive; some providers (Hydra)
	// say "bearer". Clients compare with "Bearer", so say it that way.
	if out.TokenType == "" || strings.EqualFold(out.TokenType, "Bearer") {
		out.TokenType = "Bearer"
	}
	if s, ok := tok.Extra("refresh_token").(string); ok && s != "" {
		out.RefreshToken = s
	} else if sentRefreshToken == "" {
		out.RefreshToken = tok.RefreshToken
	}
	if s, ok := tok.Extra("id_token").(string); ok {
		out.IDToken = s
	}
	if s, ok := tok.Extra("scope").(string); ok {
		out.Scope = s
	}
	return out
}

// classify turns an x/oauth2 error into one of ours, keeping only the
// RFC 6749 error code and the status: a RetrieveError's text holds the
// response body, which must not travel further.
func classify(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		switch {
		case status >= 500:
			return unavailable("token endpoint: HTTP %d", status)
		case re.ErrorCode != "":
			return &RejectedError{Code: sanitizeErrorCode(re.ErrorCode), Status: status}
		default:
			return unavailable("token endpoint: HTTP %d without an OAuth error", status)
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return unavailable("token endpoint: %v", redactURLError(ue))
	}
	// x/oauth2 reports malformed success responses (no access_token, bad
	// JSON) as plain errors whose text may quote the response: drop it.
	return unavailable("token endpoint answered with an unusable response")
}
