package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/cli/session"
	"github.com/nsauth/nsauth/pkg/issuerurl"
	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
	"github.com/nsauth/nsauth/pkg/tokensource"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// Machine credentials: `nsauth token` as a program rather than a person,
// with a machine client's ID and secret (the client credentials grant) or
// a CI job's ID token (token exchange). Secrets come from the environment,
// a file or standard input, never from the command line, which every user
// of the machine can read in the process list.

// Environment variables of machine credentials.
const (
	envClientID         = "NSAUTH_CLIENT_ID"
	envClientSecret     = "NSAUTH_CLIENT_SECRET"
	envClientSecretFile = "NSAUTH_CLIENT_SECRET_FILE"
	envIDToken          = "NSAUTH_ID_TOKEN"
	envIDTokenFile      = "NSAUTH_ID_TOKEN_FILE"
	envIssuer           = "NSAUTH_ISSUER"
)

// maxSecretBytes bounds a secret or ID token read from a file or standard
// input.
const maxSecretBytes = 64 << 10

// machineFlags are the flags of machine credentials.
type machineFlags struct {
	ClientSecretStdin bool
	IDTokenFile       string
	Issuer            string
	Scope             string
}

func (f *machineFlags) add(fs *pflag.FlagSet) {
	fs.BoolVar(&f.ClientSecretStdin, "client-secret-stdin", false, "read the machine client's secret from standard input (with $"+envClientID+")")
	fs.StringVar(&f.IDTokenFile, "id-token-file", "", "exchange the CI job's ID token in this file for an access token [$"+envIDTokenFile+"; or the token itself in $"+envIDToken+"]")
	fs.StringVar(&f.Issuer, "issuer", "", "the identity provider's issuer URL, for machine credentials (default: the one the API server's discovery document names) [$"+envIssuer+"]")
	fs.StringVar(&f.Scope, "scope", "", "space-separated scopes to ask for, with machine credentials (default: the provider's for the client)")
}

// machineMode is how `nsauth token` gets its token.
type machineMode int

const (
	storedLogin       machineMode = iota // the stored login, as `nsauth login` left it
	clientCredentials                    // a machine client's ID and secret
	tokenExchange                        // a CI job's ID token
)

// machineCredentials says where the machine credentials are; the secrets
// themselves are read when the token is needed.
type machineCredentials struct {
	Mode     machineMode
	ClientID string
	// Secret is where the client secret (clientCredentials) or the ID token
	// (tokenExchange) comes from: its environment variable, its file (and
	// which setting named it), or standard input.
	SecretEnv, SecretFile, SecretFileSetting string
	SecretStdin                              bool
	// Issuer is the provider's issuer URL, empty to discover it from the
	// API server.
	Issuer string
	Scopes []string
}

// secretSetting names the setting the secret came from, for messages.
func (m *machineCredentials) secretSetting() string {
	switch {
	case m.SecretStdin:
		return "--client-secret-stdin"
	case m.SecretFileSetting != "":
		return m.SecretFileSetting + " (" + m.SecretFile + ")"
	}
	return m.SecretEnv
}

// resolveMachine decides, from flags and environment, whether `nsauth
// token` uses machine credentials. Conflicting or incomplete settings are
// usage errors naming them. Empty variables count as unset.
func resolveMachine(f machineFlags, getenv func(string) (string, bool)) (*machineCredentials, error) {
	env := func(name string) string { v, _ := getenv(name); return strings.TrimSpace(v) }
	var secretSettings, exchangeSettings []string
	if env(envClientSecret) != "" {
		secretSettings = append(secretSettings, envClientSecret)
	}
	if env(envClientSecretFile) != "" {
		secretSettings = append(secretSettings, envClientSecretFile)
	}
	if f.ClientSecretStdin {
		secretSettings = append(secretSettings, "--client-secret-stdin")
	}
	if f.IDTokenFile != "" {
		exchangeSettings = append(exchangeSettings, "--id-token-file")
	}
	if env(envIDToken) != "" {
		exchangeSettings = append(exchangeSettings, envIDToken)
	}
	if env(envIDTokenFile) != "" {
		exchangeSettings = append(exchangeSettings, envIDTokenFile)
	}
	clientID := env(envClientID)
	m := &machineCredentials{ClientID: clientID, Issuer: strings.TrimSpace(f.Issuer), Scopes: strings.Fields(f.Scope)}
	if m.Issuer == "" {
		m.Issuer = env(envIssuer)
	}
	switch {
	case (clientID != "" || len(secretSettings) > 0) && len(exchangeSettings) > 0:
		both := append([]string{envClientID}, secretSettings...)
		if clientID == "" {
			both = secretSettings
		}
		return nil, UsageErrorf("both a machine client (%s) and an ID token to exchange (%s) are given; use one of them",
			strings.Join(both, ", "), strings.Join(exchangeSettings, ", "))
	case len(exchangeSettings) > 1:
		return nil, UsageErrorf("%s are all ID tokens to exchange; give one", strings.Join(exchangeSettings, ", "))
	case len(exchangeSettings) == 1:
		m.Mode = tokenExchange
		switch exchangeSettings[0] {
		case "--id-token-file":
			m.SecretFile, m.SecretFileSetting = f.IDTokenFile, "--id-token-file"
		case envIDTokenFile:
			m.SecretFile, m.SecretFileSetting = env(envIDTokenFile), envIDTokenFile
		default:
			m.SecretEnv = envIDToken
		}
	case clientID == "" && len(secretSettings) > 0:
		return nil, UsageErrorf("%s gives a client secret but %s is not set", strings.Join(secretSettings, ", "), envClientID)
	case clientID != "" && len(secretSettings) == 0:
		return nil, UsageErrorf("%s is set but no client secret is given: set %s or %s, or pass --client-secret-stdin (never the secret itself on the command line)",
			envClientID, envClientSecret, envClientSecretFile)
	case len(secretSettings) > 1:
		return nil, UsageErrorf("%s all give the client secret; give one", strings.Join(secretSettings, ", "))
	case clientID != "":
		m.Mode = clientCredentials
		switch secretSettings[0] {
		case "--client-secret-stdin":
			m.SecretStdin = true
		case envClientSecretFile:
			m.SecretFile, m.SecretFileSetting = env(envClientSecretFile), envClientSecretFile
		default:
			m.SecretEnv = envClientSecret
		}
	default:
		if len(m.Scopes) > 0 || f.Issuer != "" {
			return nil, UsageErrorf("--scope and --issuer apply to machine credentials only (%s, or an ID token to exchange); a stored login keeps the scopes it was given", envClientID)
		}
		return m, nil
	}
	if m.Issuer != "" {
		if err := checkIssuerURL(m.Issuer); err != nil {
			return nil, &usageError{Err: err}
		}
	}
	return m, nil
}

// checkIssuerURL checks the shape of an issuer URL given to the client;
// whether it may be plain http is tokenstore.CheckTransport's to say, with
// the client's own opt-in, once the document is read.
func checkIssuerURL(raw string) error {
	if _, err := issuerurl.Check(raw, issuerurl.Options{AllowPath: true, InsecureAllowHTTP: true}); err != nil {
		return fmt.Errorf("the issuer URL %q is not an absolute http(s) URL without user info, query or fragment", raw)
	}
	return nil
}

// readSecret reads the secret or ID token from where m says, bounded. Its
// content never appears in errors.
func (m *machineCredentials) readSecret(getenv func(string) (string, bool), stdin io.Reader) (string, error) {
	var (
		b   []byte
		err error
	)
	switch {
	case m.SecretStdin:
		b, err = io.ReadAll(io.LimitReader(stdin, maxSecretBytes+1))
	case m.SecretFile != "":
		var f *os.File
		if f, err = os.Open(m.SecretFile); err == nil {
			b, err = io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
			f.Close()
		}
	default:
		v, _ := getenv(m.SecretEnv)
		b = []byte(v)
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", m.secretSetting(), err)
	}
	if len(b) > maxSecretBytes {
		return "", fmt.Errorf("reading %s: more than %d bytes", m.secretSetting(), maxSecretBytes)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", m.secretSetting())
	}
	return s, nil
}

// tokenURL finds the provider's token endpoint: from the issuer given, or
// else from the discovery document at the API URL's origin (served there
// by the built-in provider), whose issuer must name itself in its own
// document.
func tokenEndpoint(ctx context.Context, d session.Deps, c session.Options, m *machineCredentials) (*oidcdiscovery.ProviderMetadata, error) {
	issuer := m.Issuer
	from := issuer
	if issuer == "" {
		u, err := url.Parse(c.APIURL)
		if err != nil {
			return nil, err
		}
		issuer = u.Scheme + "://" + u.Host
		from = "the API server " + issuer
	}
	client := d.HTTPClient
	if client == nil {
		client = tokensource.NewHTTPClient()
	}
	discover := func(issuer string) (*oidcdiscovery.ProviderMetadata, error) {
		return oidcdiscovery.Discover(ctx, issuer, oidcdiscovery.Options{HTTPClient: client, Require: []string{oidcdiscovery.TokenEndpoint}})
	}
	md, err := discover(issuer)
	var mismatch *oidcdiscovery.IssuerMismatchError
	if m.Issuer == "" && errors.As(err, &mismatch) && checkIssuerURL(mismatch.Named) == nil {
		// The API server serves its provider's document under the issuer
		// URL the provider was given (127.0.0.1 for localhost, say).
		md, err = discover(mismatch.Named)
	}
	if err != nil {
		if m.Issuer != "" {
			return nil, fmt.Errorf("finding the token endpoint of the issuer %s: %w; check %s", m.Issuer, err, envIssuer)
		}
		return nil, fmt.Errorf("finding the token endpoint from %s: %w; set %s to your identity provider's issuer URL", from, err, envIssuer)
	}
	for _, u := range []string{md.Issuer, md.TokenEndpoint} {
		if err := tokenstore.CheckTransport(u, c.InsecureAllowHTTP); err != nil {
			return nil, fmt.Errorf("the identity provider's token endpoint %s: %w", md.TokenEndpoint, err)
		}
	}
	return md, nil
}

// machineToken gets an access token with machine credentials. Nothing is
// stored.
func machineToken(ctx context.Context, d session.Deps, app *App, c session.Options, m *machineCredentials) (*oauth2.Token, error) {
	secret, err := m.readSecret(app.Getenv, app.In)
	if err != nil {
		return nil, err
	}
	md, err := tokenEndpoint(ctx, d, c, m)
	if err != nil {
		return nil, err
	}
	var ts interface {
		TokenContext(context.Context) (*oauth2.Token, error)
	}
	switch m.Mode {
	case clientCredentials:
		ts, err = tokensource.NewClientCredentials(tokensource.ClientCredentialsConfig{
			TokenURL: md.TokenEndpoint, AuthStyle: tokensource.AuthStyle(md.TokenEndpointAuthMethodsSupported), ClientID: m.ClientID, ClientSecret: secret, Scopes: m.Scopes,
			HTTPClient: d.HTTPClient, InsecureAllowHTTP: c.InsecureAllowHTTP, Now: d.Now,
		})
	case tokenExchange:
		ts, err = tokensource.NewTokenExchange(tokensource.TokenExchangeConfig{
			TokenURL:     md.TokenEndpoint,
			SubjectToken: func(context.Context) (string, error) { return secret, nil },
			Scopes:       m.Scopes,
			HTTPClient:   d.HTTPClient, InsecureAllowHTTP: c.InsecureAllowHTTP, Now: d.Now,
		})
	}
	if err != nil {
		return nil, err
	}
	tok, err := ts.TokenContext(ctx)
	if err != nil {
		return nil, m.tokenError(err)
	}
	return tok, nil
}

// tokenError explains the provider's refusals for people.
func (m *machineCredentials) tokenError(err error) error {
	var te *tokensource.TokenEndpointError
	if !errors.As(err, &te) {
		return err
	}
	switch {
	case te.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("the identity provider is limiting token requests from here; try again in a while (%w)", err)
	case m.Mode == clientCredentials && te.ErrorCode == "invalid_client":
		return fmt.Errorf("the identity provider refused the machine client's credentials: the client ID (%s=%s) or the secret (%s) is wrong",
			envClientID, session.DisplayText(m.ClientID), m.secretSetting())
	case m.Mode == clientCredentials && te.ErrorCode == "unauthorized_client":
		return fmt.Errorf("the identity provider does not allow the client %s the client credentials grant (%w)", session.DisplayText(m.ClientID), err)
	case m.Mode == tokenExchange && te.ErrorCode == "invalid_grant":
		return fmt.Errorf("the identity provider refused the ID token from %s: it has expired, or it is trusted for no machine client; get a fresh token from your CI system (%w)", m.secretSetting(), err)
	case m.Mode == tokenExchange && (te.ErrorCode == "unsupported_grant_type" || te.ErrorCode == "unauthorized_client"):
		return fmt.Errorf("the identity provider does not exchange ID tokens for access tokens (%w)", err)
	}
	return err
}
