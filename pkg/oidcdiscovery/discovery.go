package oidcdiscovery

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
	"slices"
	"strings"
	"time"

	"github.com/nsauth/nsauth/pkg/noredirect"
)

// The names of the endpoint members of a discovery document, for
// [Options.Require].
const (
	AuthorizationEndpoint       = "authorization_endpoint"
	TokenEndpoint               = "token_endpoint"
	JWKSURI                     = "jwks_uri"
	UserinfoEndpoint            = "userinfo_endpoint"
	RevocationEndpoint          = "revocation_endpoint"
	IntrospectionEndpoint       = "introspection_endpoint"
	EndSessionEndpoint          = "end_session_endpoint"
	DeviceAuthorizationEndpoint = "device_authorization_endpoint"
)

// ProviderMetadata is what [Discover] reads from a discovery document.
// Every endpoint in it is empty or an absolute http(s) URL without user
// info or fragment, and https when the issuer is.
type ProviderMetadata struct {
	// Issuer is the document's `issuer`: exactly the issuer URL Discover
	// was given.
	Issuer string `json:"issuer"`

	AuthorizationEndpoint       string `json:"authorization_endpoint,omitempty"`
	TokenEndpoint               string `json:"token_endpoint,omitempty"`
	JWKSURI                     string `json:"jwks_uri,omitempty"`
	UserinfoEndpoint            string `json:"userinfo_endpoint,omitempty"`
	RevocationEndpoint          string `json:"revocation_endpoint,omitempty"`
	IntrospectionEndpoint       string `json:"introspection_endpoint,omitempty"`
	EndSessionEndpoint          string `json:"end_session_endpoint,omitempty"`
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint,omitempty"`

	// TokenEndpointAuthMethodsSupported is the document's list; empty
	// means client_secret_basic only (RFC 8414 §2).
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported,omitempty"`
	// IDTokenSigningAlgValuesSupported is the document's list as it is,
	// "none" and HMAC names included: a verifier filters it.
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported,omitempty"`
	// AuthorizationResponseIssParameterSupported says the provider puts
	// its issuer in the `iss` parameter of its authorization responses
	// (RFC 9207 §3): a client must then require it there.
	AuthorizationResponseIssParameterSupported bool `json:"authorization_response_iss_parameter_supported,omitempty"`
}

// endpoints returns the endpoint members by name, pointing into md.
func (md *ProviderMetadata) endpoints() []endpoint {
	return []endpoint{
		{AuthorizationEndpoint, &md.AuthorizationEndpoint},
		{TokenEndpoint, &md.TokenEndpoint},
		{JWKSURI, &md.JWKSURI},
		{UserinfoEndpoint, &md.UserinfoEndpoint},
		{RevocationEndpoint, &md.RevocationEndpoint},
		{IntrospectionEndpoint, &md.IntrospectionEndpoint},
		{EndSessionEndpoint, &md.EndSessionEndpoint},
		{DeviceAuthorizationEndpoint, &md.DeviceAuthorizationEndpoint},
	}
}

type endpoint struct {
	name  string
	value *string
}

// Options are how [Discover] reaches the document and what it requires.
// The zero value fetches from the issuer with [noredirect.NewClient] and a
// 10 s timeout, and requires no endpoint.
type Options struct {
	// HTTPClient makes the request. A client passed here is used as it
	// is: build it with [noredirect.NewClient] (or set
	// [noredirect.CheckRedirect]) so a redirected document stays an error.
	HTTPClient *http.Client
	// BaseURL, when set, is fetched instead of the issuer: the document is
	// read at BaseURL + "/.well-known/openid-configuration" and must still
	// name the issuer. It is for a provider reached by another URL than
	// the one it names itself with, such as one in the same process.
	BaseURL string
	// Require names the endpoints the caller cannot work without (the
	// constants of this package, such as [JWKSURI]). A required endpoint
	// that is missing or not an absolute http(s) URL fails discovery; an
	// optional one that is not such a URL is left out, as if absent.
	Require []string
}

// DefaultTimeout bounds the request of the default client.
const DefaultTimeout = 10 * time.Second

// maxDocumentBytes bounds the document; real ones are a few KiB.
const maxDocumentBytes = 1 << 20

// maxMembers bounds the document's top-level members; real ones have
// fewer than a hundred.
const maxMembers = 1024

// WellKnownPath is the path of the discovery document under an issuer
// (OpenID Connect Discovery 1.0 §4).
const WellKnownPath = "/.well-known/openid-configuration"

// URL returns where the discovery document of the provider at base is:
// base + [WellKnownPath], one slash between them.
func URL(base string) string {
	return strings.TrimSuffix(base, "/") + WellKnownPath
}

// Discover fetches and checks the discovery document of issuer, which
// must be an absolute http(s) URL without user info, query or fragment,
// spelled exactly as the provider spells its `issuer` (a trailing slash
// counts). Discover does not judge whether http is acceptable for issuer:
// a caller taking the URL from a person checks it with package issuerurl
// first.
//
// Errors: [ErrUnavailable] when the provider cannot answer now,
// [*IssuerMismatchError] (matching [ErrIssuerMismatch]) when the document
// names another issuer, [ErrInsecureEndpoint] when an https issuer's
// document names an http endpoint; anything else is a wrong issuer URL or
// a document that cannot be used.
func Discover(ctx context.Context, issuer string, opts Options) (*ProviderMetadata, error) {
	if err := checkURL(issuer); err != nil {
		return nil, fmt.Errorf("issuer %w", err)
	}
	if strings.Contains(issuer, "?") {
		return nil, fmt.Errorf("issuer %q must not contain a query", issuer)
	}
	for _, name := range opts.Require {
		if !slices.ContainsFunc((&ProviderMetadata{}).endpoints(), func(e endpoint) bool { return e.name == name }) {
			return nil, fmt.Errorf("%q is not an endpoint of a discovery document", name)
		}
	}
	base := issuer
	if opts.BaseURL != "" {
		if err := checkURL(opts.BaseURL); err != nil {
			return nil, fmt.Errorf("base URL %w", err)
		}
		base = opts.BaseURL
	}
	client := opts.HTTPClient
	if client == nil {
		client = noredirect.NewClient(nil, DefaultTimeout)
	}
	docURL := URL(base)
	body, contentType, err := fetch(ctx, client, docURL, issuer)
	if err != nil {
		return nil, err
	}
	md, err := parse(body)
	if err != nil {
		mediaType, _, _ := mime.ParseMediaType(contentType)
		return nil, fmt.Errorf("discovery at %s: the answer is not a discovery document: %w (Content-Type %q)", docURL, err, mediaType)
	}
	if md.Issuer != issuer {
		return nil, &IssuerMismatchError{URL: issuer, Named: md.Issuer, DocumentURL: docURL}
	}
	if err := md.checkEndpoints(opts.Require); err != nil {
		return nil, fmt.Errorf("discovery at %s: %w", docURL, err)
	}
	return md, nil
}

// fetch returns the document's bytes and Content-Type.
func fetch(ctx context.Context, client *http.Client, docURL, issuer string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return nil, "", fmt.Errorf("discovery at %s: building the request: %w", docURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", &unavailableError{fmt.Errorf("discovery at %s: %w", docURL, unwrapURLError(err))}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, "", &unavailableError{fmt.Errorf("discovery at %s: HTTP %d", docURL, resp.StatusCode)}
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, "", fmt.Errorf("discovery at %s: HTTP %d, a redirect, which is not followed; give the issuer URL the provider names itself with", docURL, resp.StatusCode)
	default:
		return nil, "", fmt.Errorf("discovery at %s: HTTP %d; is %s the issuer URL?", docURL, resp.StatusCode, issuer)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, "", &unavailableError{fmt.Errorf("discovery at %s: reading the answer: %w", docURL, err)}
	}
	if len(body) > maxDocumentBytes {
		return nil, "", fmt.Errorf("discovery at %s: the answer is larger than %d bytes", docURL, maxDocumentBytes)
	}
	return body, resp.Header.Get("Content-Type"), nil
}

// unwrapURLError drops the *url.Error wrapper, which repeats the URL the
// message already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

// parse decodes the members Discover uses, as strictly as a token payload:
// one JSON object, no member repeated (in any letter case, which Go's
// decoder would otherwise merge), strings and lists of strings where the
// specifications say so. A member that is null counts as absent.
func parse(body []byte) (*ProviderMetadata, error) {
	members, err := decodeObject(body)
	if err != nil {
		return nil, errors.New("not a JSON object")
	}
	var md ProviderMetadata
	strs := append([]endpoint{{"issuer", &md.Issuer}}, md.endpoints()...)
	for _, m := range strs {
		raw, ok := members[m.name]
		if !ok || string(raw) == "null" {
			continue
		}
		if raw[0] != '"' || json.Unmarshal(raw, m.value) != nil {
			return nil, fmt.Errorf("member %q is not a string", m.name)
		}
	}
	for name, dst := range map[string]*[]string{
		"token_endpoint_auth_methods_supported": &md.TokenEndpointAuthMethodsSupported,
		"code_challenge_methods_supported":      &md.CodeChallengeMethodsSupported,
		"id_token_signing_alg_values_supported": &md.IDTokenSigningAlgValuesSupported,
	} {
		raw, ok := members[name]
		if !ok || string(raw) == "null" {
			continue
		}
		if raw[0] != '[' || json.Unmarshal(raw, dst) != nil || slices.Contains(*dst, "") {
			return nil, fmt.Errorf("member %q is not a list of strings", name)
		}
	}
	if raw, ok := members["authorization_response_iss_parameter_supported"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &md.AuthorizationResponseIssParameterSupported) != nil || (string(raw) != "true" && string(raw) != "false") {
			return nil, errors.New(`member "authorization_response_iss_parameter_supported" is not a boolean`)
		}
	}
	return &md, nil
}

// decodeObject returns the members of one JSON object, refusing repeated
// names and anything after the object.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	members := make(map[string]json.RawMessage)
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		folded := strings.ToLower(name)
		if !ok || seen[folded] || len(seen) >= maxMembers {
			return nil, errors.New("a member is repeated, or there are too many")
		}
		seen[folded] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		members[name] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	return members, nil
}

// checkEndpoints refuses the document when an https issuer names an http
// endpoint, and when a required endpoint is missing or unusable; it
// clears an unusable optional one.
func (md *ProviderMetadata) checkEndpoints(require []string) error {
	eps := md.endpoints()
	for _, ep := range eps {
		if err := CheckEndpointURL(*ep.value, md.Issuer); errors.Is(err, ErrInsecureEndpoint) {
			return fmt.Errorf("%s %w", ep.name, err)
		}
	}
	for _, ep := range eps {
		required := slices.Contains(require, ep.name)
		if err := CheckEndpointURL(*ep.value, md.Issuer); err != nil {
			if required {
				return fmt.Errorf("%s %w", ep.name, err)
			}
			*ep.value = ""
		}
	}
	return nil
}

// CheckEndpointURL returns an error, worded to follow the URL's name
// ("token_endpoint", "verification_uri"), unless raw is an absolute
// http(s) URL without user info or fragment, and https when issuer is: the
// rule [Discover] applies to every endpoint, for a caller given an
// endpoint by other means. The error for an http endpoint of an https
// issuer wraps [ErrInsecureEndpoint]. An empty issuer asks nothing of the
// scheme: whether http is acceptable is then the caller's to judge (see
// package issuerurl). The error quotes raw only when it has no user info.
func CheckEndpointURL(raw, issuer string) error {
	if err := checkURL(raw); err != nil {
		return err
	}
	if iss, err := url.Parse(issuer); err == nil && iss.Scheme == "https" {
		if u, _ := url.Parse(raw); u.Scheme != "https" {
			return fmt.Errorf("%q is %w", raw, ErrInsecureEndpoint)
		}
	}
	return nil
}

// checkURL is [CheckEndpointURL] without an issuer.
func checkURL(raw string) error {
	if raw == "" {
		return errors.New("is missing")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.User != nil {
		return errors.New("must not contain user info")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("%q must not contain a fragment", raw)
	}
	return nil
}
