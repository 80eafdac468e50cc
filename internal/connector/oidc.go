package connector

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/pkg/authn"
	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// Bounds of what an upstream sends.
const (
	maxCallbackValue = 4096    // a code, a state, an iss parameter
	maxResponseBytes = 1 << 20 // a userinfo or GitHub API answer
	maxSubjectLen    = 255     // OpenID Connect Core §2: sub is at most 255 ASCII characters
	maxClaimLen      = 512     // a name, username or email
	maxGroups        = 1000
	maxGroupLen      = 256
	maxAMRValues     = 32
	maxIDTokenBytes  = 64 << 10
)

// oidcConnector signs in at an OpenID provider.
type oidcConnector struct {
	s      *OIDCSettings
	secret string
	env    Env

	mu sync.Mutex
	p  *oidcProvider // discovered at first use
}

// oidcProvider is what discovery taught about the provider.
type oidcProvider struct {
	md       oidcdiscovery.ProviderMetadata
	verifier *authn.Verifier
	oauth    *oauth2.Config
}

func newOIDC(s *OIDCSettings, secret string, env Env) (*oidcConnector, error) {
	if secret == "" {
		return nil, errors.New("connector: the OpenID Connect client secret is empty")
	}
	if env.Callback == "" {
		return nil, errors.New("connector: the callback URL is missing")
	}
	return &oidcConnector{s: s, secret: secret, env: env}, nil
}

// provider reads the discovery document once: the endpoints, the
// algorithms its ID tokens may be signed with (asymmetric ones only), the
// client authentication method and whether it sends RFC 9207's iss.
func (c *oidcConnector) provider(ctx context.Context) (*oidcProvider, error) {
	c.mu.Lock()
	p := c.p
	c.mu.Unlock()
	if p != nil {
		return p, nil
	}
	md, err := oidcdiscovery.Discover(ctx, c.s.Issuer, oidcdiscovery.Options{
		HTTPClient: c.env.HTTPClient,
		Require:    []string{oidcdiscovery.AuthorizationEndpoint, oidcdiscovery.TokenEndpoint, oidcdiscovery.JWKSURI},
	})
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	keys, err := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{URL: authn.StaticURL(md.JWKSURI), HTTPClient: c.env.HTTPClient, Now: c.env.Now})
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	prov, err := authn.NewProviderWithKeys(md.Issuer, keys)
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	var algs []string
	for _, a := range md.IDTokenSigningAlgValuesSupported {
		if slices.Contains(authn.SupportedAlgorithms(), a) && !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		// RS256 is the one every provider must offer (OpenID Connect
		// Discovery §3); HMAC and none are never accepted.
		algs = []string{authn.DefaultAlgorithm}
	}
	// ID tokens listing many groups run larger than access tokens.
	v, err := prov.Verifier(authn.Config{Audiences: []string{c.s.ClientID}, Algorithms: algs, Now: c.env.Now, IDTokens: true, CacheEntries: -1, MaxTokenBytes: maxIDTokenBytes})
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	style, err := authStyle(md.TokenEndpointAuthMethodsSupported)
	if err != nil {
		return nil, err
	}
	p = &oidcProvider{
		md:       *md,
		verifier: v,
		oauth: &oauth2.Config{
			ClientID:     c.s.ClientID,
			ClientSecret: c.secret,
			Endpoint:     oauth2.Endpoint{AuthURL: md.AuthorizationEndpoint, TokenURL: md.TokenEndpoint, AuthStyle: style},
			RedirectURL:  c.env.Callback,
			Scopes:       scopes(c.s.Scopes),
		},
	}
	c.mu.Lock()
	c.p = p
	c.mu.Unlock()
	return p, nil
}

// scopes are openid first, then the settings' others, once each.
func scopes(asked []string) []string {
	out := []string{"openid"}
	for _, sc := range asked {
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// authStyle picks how the client secret reaches the token endpoint:
// HTTP Basic (the default of RFC 8414 when the document names none), or
// in the form.
func authStyle(methods []string) (oauth2.AuthStyle, error) {
	switch {
	case len(methods) == 0 || slices.Contains(methods, "client_secret_basic"):
		return oauth2.AuthStyleInHeader, nil
	case slices.Contains(methods, "client_secret_post"):
		return oauth2.AuthStyleInParams, nil
	}
	return 0, errors.New("connector: the provider offers neither client_secret_basic nor client_secret_post to authenticate the client")
}

func (c *oidcConnector) AuthCodeURL(ctx context.Context, state, nonce, verifier string) (string, error) {
	if err := checkStart(state, nonce, verifier, true); err != nil {
		return "", err
	}
	p, err := c.provider(ctx)
	if err != nil {
		return "", err
	}
	return p.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce)), nil
}

// checkStart refuses a sign-in started without its protections (a bug of
// the caller, never the person's doing).
func checkStart(state, nonce, verifier string, needNonce bool) error {
	switch {
	case state == "" || (needNonce && nonce == ""):
		return errors.New("connector: a sign-in needs a state and a nonce")
	case len(verifier) < 43 || len(verifier) > 128:
		return errors.New("connector: the PKCE verifier must be 43 to 128 characters (RFC 7636 §4.1)")
	}
	return nil
}

// callbackValue returns the one value of name in the callback's query:
// "" when absent, a ReasonMalformed refusal when repeated or too long.
func callbackValue(q url.Values, name string) (string, error) {
	vs := q[name]
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", Refused(ReasonMalformed, "the provider's answer repeats a parameter")
	case len(vs[0]) > maxCallbackValue:
		return "", Refused(ReasonMalformed, "the provider's answer has a parameter that is too long")
	}
	return vs[0], nil
}

// callbackError refuses an error response (RFC 6749 §4.1.2.1) in words
// of our own: the provider's error_description is its text, not ours to
// show.
func callbackError(q url.Values) error {
	code, err := callbackValue(q, "error")
	if err != nil || code == "" {
		return err
	}
	if code == "access_denied" {
		return Refused(ReasonUpstreamError, "the sign-in was cancelled or refused at the provider")
	}
	return Refused(ReasonUpstreamError, "the provider could not complete the sign-in")
}

func (c *oidcConnector) Exchange(ctx context.Context, q url.Values, nonce, verifier string) (Identity, error) {
	if err := checkStart("-", nonce, verifier, true); err != nil {
		return Identity{}, err
	}
	p, err := c.provider(ctx)
	if err != nil {
		return Identity{}, err
	}
	// RFC 9207 §2.4: the issuer is checked before anything else of the
	// answer, error responses included, so one provider's answer never
	// reaches another's token endpoint.
	iss, err := callbackValue(q, "iss")
	if err != nil {
		return Identity{}, err
	}
	switch {
	case iss != "" && iss != p.md.Issuer:
		return Identity{}, Refused(ReasonWrongIssuer, "the answer comes from another provider than this connector's")
	case iss == "" && p.md.AuthorizationResponseIssParameterSupported:
		return Identity{}, Refused(ReasonWrongIssuer, "the answer does not name the provider, which says it always does")
	}
	if err := callbackError(q); err != nil {
		return Identity{}, err
	}
	code, err := callbackValue(q, "code")
	if err != nil {
		return Identity{}, err
	}
	if code == "" {
		return Identity{}, Refused(ReasonMalformed, "the provider's answer has no authorization code")
	}
	tok, err := p.oauth.Exchange(context.WithValue(ctx, oauth2.HTTPClient, c.env.HTTPClient), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Identity{}, tokenEndpointError(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, Refused(ReasonMalformed, "the provider sent no ID token")
	}
	claims, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, idTokenError(err)
	}
	var extra idTokenClaims
	if err := claims.Decode(&extra); err != nil {
		return Identity{}, Refused(ReasonMalformed, "the ID token's claims do not parse")
	}
	if extra.Nonce == nil || subtle.ConstantTimeCompare([]byte(*extra.Nonce), []byte(nonce)) != 1 {
		return Identity{}, Refused(ReasonBadNonce, "the ID token is not the answer to this sign-in (nonce)")
	}
	// OpenID Connect Core §3.1.3.7: with several audiences azp names the
	// client the token is for; when present it must be us.
	if (len(claims.Audience) > 1 || extra.AZP != nil) && (extra.AZP == nil || *extra.AZP != c.s.ClientID) {
		return Identity{}, Refused(ReasonWrongAudience, "the ID token was issued to another client")
	}
	if len(claims.Subject) > maxSubjectLen {
		return Identity{}, Refused(ReasonMalformed, "the ID token's subject is too long")
	}
	profile, err := parseProfile(claims, c.s.GroupsClaim)
	if err != nil {
		return Identity{}, err
	}
	if (profile.missesSome() || len(c.s.AllowedDomains) > 0 && !profile.hasEmail) && p.md.UserinfoEndpoint != "" {
		if err := c.userinfo(ctx, p, tok, claims.Subject, &profile); err != nil {
			return Identity{}, err
		}
	}
	email, err := checkEmail(profile.email, profile.emailVerified, c.s.AllowedDomains)
	if err != nil {
		return Identity{}, err
	}
	amr := claims.AMR
	if len(amr) > maxAMRValues {
		amr = amr[:maxAMRValues]
	}
	return Identity{
		Subject:  claims.Subject,
		Username: bounded(profile.username),
		Name:     bounded(profile.name),
		Email:    email,
		Groups:   profile.groups,
		AMR:      amr,
	}, nil
}

// idTokenClaims are the ID token's claims authn leaves to the relying
// party.
type idTokenClaims struct {
	Nonce *string `json:"nonce"`
	AZP   *string `json:"azp"`
}

// profile is who the person is, from the ID token and perhaps userinfo.
type profile struct {
	username, name, email string
	emailVerified         bool
	hasEmail              bool // the claim was there, verified or not
	groups                []string
	hasGroups             bool
}

// missesSome says whether the ID token left out claims userinfo may have
// (some providers keep the profile there unless asked otherwise).
func (p *profile) missesSome() bool { return !p.hasEmail && p.username == "" && p.name == "" }

// claimSource is a verified ID token or a userinfo answer.
type claimSource interface{ Decode(any) error }

// parseProfile reads the profile claims: strings where they are strings,
// email_verified true or "true", the groups claim as a list of strings or
// one string. A claim of the wrong type is ignored, as if absent, except
// the groups claim and email_verified, whose wrong type refuses.
func parseProfile(src claimSource, groupsClaim string) (profile, error) {
	var m map[string]json.RawMessage
	if err := src.Decode(&m); err != nil {
		return profile{}, Refused(ReasonMalformed, "the provider's claims do not parse")
	}
	var p profile
	str := func(name string) string {
		var s string
		if raw, ok := m[name]; ok && json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	}
	p.username, p.name, p.email = str("preferred_username"), str("name"), str("email")
	p.hasEmail = p.email != ""
	if raw, ok := m["email_verified"]; ok {
		switch strings.TrimSpace(string(raw)) {
		case "true", `"true"`:
			p.emailVerified = true
		case "false", `"false"`, "null":
		default:
			return profile{}, Refused(ReasonMalformed, "the provider's email_verified claim is not a boolean")
		}
	}
	if raw, ok := m[groupsClaim]; ok && string(raw) != "null" {
		var one string
		var list []string
		switch {
		case json.Unmarshal(raw, &list) == nil:
		case json.Unmarshal(raw, &one) == nil:
			list = []string{one}
		default:
			return profile{}, Refused(ReasonMalformed, "the provider's groups claim is not a list of strings")
		}
		groups, err := checkGroups(list)
		if err != nil {
			return profile{}, err
		}
		p.groups, p.hasGroups = groups, true
	}
	return p, nil
}

// checkGroups bounds the upstream's groups and drops empty and repeated
// names.
func checkGroups(list []string) ([]string, error) {
	if len(list) > maxGroups {
		return nil, Refused(ReasonMalformed, fmt.Sprintf("the provider lists more than %d groups", maxGroups))
	}
	out := make([]string, 0, len(list))
	for _, g := range list {
		if len(g) > maxGroupLen {
			return nil, Refused(ReasonMalformed, "the provider names a group that is too long")
		}
		if g != "" && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out, nil
}

// userinfo fills what the ID token left out from the userinfo endpoint,
// whose sub must be the ID token's (OpenID Connect Core §5.3.2). An email
// is taken with its email_verified, from one source.
func (c *oidcConnector) userinfo(ctx context.Context, p *oidcProvider, tok *oauth2.Token, subject string, into *profile) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.md.UserinfoEndpoint, nil)
	if err != nil {
		return fmt.Errorf("connector: userinfo request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "application/json")
	body, err := getJSON(c.env.HTTPClient, req, "userinfo")
	if err != nil {
		return err
	}
	var sub struct {
		Sub string `json:"sub"`
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || json.Unmarshal(body, &sub) != nil {
		return Refused(ReasonMalformed, "the provider's userinfo answer does not parse")
	}
	if sub.Sub != subject {
		return Refused(ReasonMalformed, "the provider's userinfo answer is about someone else")
	}
	more, err := parseProfile(rawClaims(body), c.s.GroupsClaim)
	if err != nil {
		return err
	}
	if into.username == "" {
		into.username = more.username
	}
	if into.name == "" {
		into.name = more.name
	}
	if !into.hasEmail {
		into.email, into.emailVerified, into.hasEmail = more.email, more.emailVerified, more.hasEmail
	}
	if !into.hasGroups {
		into.groups, into.hasGroups = more.groups, more.hasGroups
	}
	return nil
}

type rawClaims []byte

func (r rawClaims) Decode(v any) error { return json.Unmarshal(r, v) }

// getJSON does req and returns the body of a 200 JSON answer, at most
// maxResponseBytes. A redirect is not followed (Env's client) and counts
// as a failure, as do 5xx and 429 (the upstream is unavailable); other
// statuses refuse the sign-in. No error quotes the body.
func getJSON(client *http.Client, req *http.Request, what string) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("connector: %s: %w", what, unwrapURLError(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || (resp.StatusCode >= 300 && resp.StatusCode < 400):
		return nil, fmt.Errorf("connector: %s answered HTTP %d", what, resp.StatusCode)
	default:
		return nil, Refused(ReasonUpstreamError, fmt.Sprintf("the provider refused to tell who signed in (%s answered HTTP %d)", what, resp.StatusCode))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, Refused(ReasonMalformed, fmt.Sprintf("the provider's %s answer is not JSON", what))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("connector: reading %s: %w", what, err)
	}
	if len(body) > maxResponseBytes {
		return nil, Refused(ReasonMalformed, fmt.Sprintf("the provider's %s answer is larger than %d bytes", what, maxResponseBytes))
	}
	return body, nil
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the
// request's URL (a userinfo or API URL: no secret, but noise).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// tokenEndpointError turns a failed code redemption into a refusal when
// the provider refused (HTTP 4xx, or an error member), into a plain error
// (the upstream is unavailable) otherwise. Neither quotes the answer.
func tokenEndpointError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		if status >= 500 || status == http.StatusTooManyRequests || (status >= 300 && status < 400) {
			return fmt.Errorf("connector: the token endpoint answered HTTP %d", status)
		}
		return Refused(ReasonUpstreamError, "the provider refused to redeem the sign-in (it may have expired or been used already)")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("connector: token endpoint: %w", ue.Err)
	}
	// x/oauth2's own errors (a response without an access token, one that
	// does not parse) say nothing secret.
	if strings.HasPrefix(err.Error(), "oauth2: ") {
		return Refused(ReasonMalformed, "the provider's token answer is not usable")
	}
	return fmt.Errorf("connector: token endpoint: %w", err)
}

// idTokenError maps authn's refusals to the reason categories; a
// provider whose keys cannot be had is unavailable, not a refusal.
func idTokenError(err error) error {
	switch authn.RefusedCheck(err) {
	case "":
		return fmt.Errorf("connector: verifying the ID token: %w", err)
	case "issuer":
		return Refused(ReasonWrongIssuer, "the ID token was issued by another provider than this connector's")
	case "audience":
		return Refused(ReasonWrongAudience, "the ID token was issued to another client")
	case "expiry", "not yet valid":
		return Refused(ReasonExpired, "the ID token has expired or is not valid yet (check the clocks)")
	case "claims", "subject", "size":
		return Refused(ReasonMalformed, "the ID token does not parse")
	}
	// encoding (alg none has no signature), header, algorithm, token
	// type, key, signature
	return Refused(ReasonBadSignature, "the ID token is not signed by the provider's keys with an accepted algorithm")
}

// checkEmail returns the email to keep: only a verified one. With allowed
// domains a verified email of one of them is required.
func checkEmail(email string, verified bool, allowed []string) (string, error) {
	if len(email) > maxClaimLen || !strings.Contains(email, "@") {
		email = ""
	}
	if email != "" && !verified {
		email = ""
		if len(allowed) > 0 {
			return "", Refused(ReasonUnverifiedEmail, "the provider does not say the email address is verified, and this connector admits people by their email's domain")
		}
	}
	if len(allowed) == 0 {
		return email, nil
	}
	if email == "" {
		return "", Refused(ReasonUnverifiedEmail, "the provider gave no verified email address, which this connector needs to admit people by their domain")
	}
	domain := strings.ToLower(email[strings.LastIndex(email, "@")+1:])
	if !slices.Contains(allowed, domain) {
		return "", Refused(ReasonDomainNotAllowed, "the email address's domain is not one this connector admits")
	}
	return email, nil
}

// bounded drops a value too long to be a name.
func bounded(s string) string {
	if len(s) > maxClaimLen {
		return ""
	}
	return s
}
