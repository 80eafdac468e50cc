package appscmd

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/redirect"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/visible"
	"github.com/nsauth/nsauth/pkg/loopbackhost"
)

// An app's settings as nsauth apps add and update take them, and the
// checks they pass before the store is opened.

// The grant types an app may have.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
	grantDeviceCode        = store.DeviceCodeGrantType
)

// Bounds on an app's lists and texts: far above what an app needs, low
// enough that no registration makes pages or tokens large.
const (
	maxAppURIs        = 32
	maxAppScopes      = 64
	maxAppAudiences   = 16
	maxDisplayNameLen = 100
)

// appFlags are the settings of an app as add and update take them.
type appFlags struct {
	redirectURIs, postLogoutURIs    []string
	public, native, thirdParty      bool
	displayName                     string
	scopes, grantTypes, audiences   []string
	accessTokenTTL, refreshTokenTTL time.Duration
	backchannelLogoutURI            string
	asJSON                          bool
}

func (f *appFlags) register(fs *pflag.FlagSet, update bool) {
	replaces := ""
	if update {
		replaces = "; replaces the list"
	}
	fs.StringArrayVar(&f.redirectURIs, "redirect-uri", nil, "a redirect `URI` of the app (repeat the flag for several)"+replaces)
	fs.StringArrayVar(&f.postLogoutURIs, "post-logout-redirect-uri", nil, "a `URI` where end-session may send the browser after a logout (repeat for several)"+replaces)
	if !update {
		fs.BoolVar(&f.public, "public", false, "the app holds no secret (token_endpoint_auth_method none) and must use PKCE")
	}
	fs.BoolVar(&f.native, "native", false, "a native app: its loopback redirect URIs may use any port (RFC 8252)")
	fs.BoolVar(&f.thirdParty, "third-party", false, "show users a consent page listing the scopes, once per user")
	fs.StringVar(&f.displayName, "display-name", "", "the `name` the login and consent pages show (default: the app's name)")
	fs.StringSliceVar(&f.scopes, "scope", nil, "a `scope` the app may ask for (repeat or comma-separate; default: every scope the server offers)"+replaces)
	fs.StringSliceVar(&f.grantTypes, "grant-type", nil, "a `grant` type: authorization_code, refresh_token, device_code (repeat or comma-separate; default: authorization_code,refresh_token)"+replaces)
	fs.StringArrayVar(&f.audiences, "audience", nil, "an `audience` (RFC 8707 resource) the app's access tokens may be issued for besides nsauth's (repeat for several)"+replaces)
	fs.DurationVar(&f.accessTokenTTL, "access-token-ttl", 0, "lifetime of the app's access tokens (0: the server's access-token-ttl)")
	fs.DurationVar(&f.refreshTokenTTL, "refresh-token-ttl", 0, "lifetime of the app's refresh tokens (0: the server's)")
	fs.StringVar(&f.backchannelLogoutURI, "backchannel-logout-uri", "", "the `URI` to POST OpenID Connect back-channel logout tokens to (empty: none)")
	if !update {
		fs.BoolVar(&f.asJSON, "json", false, "print the client id and secret as JSON")
	}
}

// settingFlags are the flags that set an app's settings.
var settingFlags = []string{"redirect-uri", "post-logout-redirect-uri", "native", "third-party", "display-name", "scope",
	"grant-type", "audience", "access-token-ttl", "refresh-token-ttl", "backchannel-logout-uri"}

// anyGiven reports whether any setting was given on the command line.
func (f *appFlags) anyGiven(fs *pflag.FlagSet) bool {
	return slices.ContainsFunc(settingFlags, fs.Changed)
}

// newApp checks the flags of add and returns the app they describe.
func (f *appFlags) newApp(fs *pflag.FlagSet, name string) (*store.Client, error) {
	id, err := store.NormalizeClientName(name)
	if err != nil {
		return nil, cli.UsageErrorf("%v", err)
	}
	if err := f.check(fs); err != nil {
		return nil, err
	}
	a := &store.Client{ID: id, Public: f.public}
	f.apply(fs, a, true)
	if err := checkApp(a); err != nil {
		return nil, err
	}
	return a, nil
}

// check validates the flags given, each on its own; checkApp validates
// the app they make.
func (f *appFlags) check(fs *pflag.FlagSet) error {
	for _, l := range []struct {
		flag string
		uris []string
	}{{"--redirect-uri", f.redirectURIs}, {"--post-logout-redirect-uri", f.postLogoutURIs}} {
		if len(l.uris) > maxAppURIs {
			return cli.UsageErrorf("%s: at most %d URIs", l.flag, maxAppURIs)
		}
		for _, u := range l.uris {
			if err := checkAppURI(u); err != nil {
				return cli.UsageErrorf("%s %q: %v", l.flag, visible.Escape(u), err)
			}
		}
	}
	if f.backchannelLogoutURI != "" {
		if err := checkAppURI(f.backchannelLogoutURI); err != nil {
			return cli.UsageErrorf("--backchannel-logout-uri %q: %v", visible.Escape(f.backchannelLogoutURI), err)
		}
	}
	if len(f.displayName) > maxDisplayNameLen {
		return cli.UsageErrorf("--display-name: at most %d bytes", maxDisplayNameLen)
	}
	if err := visible.Check("--display-name", f.displayName); err != nil {
		return cli.UsageErrorf("%v", err)
	}
	if len(f.scopes) > maxAppScopes {
		return cli.UsageErrorf("--scope: at most %d scopes", maxAppScopes)
	}
	for _, s := range f.scopes {
		if s == "" || len(s) > 128 || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' || r > '~' }) {
			return cli.UsageErrorf("--scope %q: a scope is 1 to 128 printable ASCII characters without spaces, quotes or backslashes", visible.Escape(s))
		}
	}
	grants, err := normalizeGrantTypes(f.grantTypes)
	if err != nil {
		return err
	}
	f.grantTypes = grants
	if len(f.audiences) > maxAppAudiences {
		return cli.UsageErrorf("--audience: at most %d audiences", maxAppAudiences)
	}
	for _, a := range f.audiences {
		if err := checkAudience(a); err != nil {
			return cli.UsageErrorf("--audience %q: %v", visible.Escape(a), err)
		}
	}
	for _, d := range []struct {
		flag string
		ttl  time.Duration
	}{{"--access-token-ttl", f.accessTokenTTL}, {"--refresh-token-ttl", f.refreshTokenTTL}} {
		if d.ttl < 0 {
			return cli.UsageErrorf("%s cannot be negative", d.flag)
		}
		if d.ttl > 0 && d.ttl < time.Second {
			return cli.UsageErrorf("%s must be at least 1s (or 0 for the server's)", d.flag)
		}
	}
	return nil
}

// apply sets on a the settings given: every one when adding, those whose
// flag was given when updating.
func (f *appFlags) apply(fs *pflag.FlagSet, a *store.Client, adding bool) {
	given := func(name string) bool { return adding || fs.Changed(name) }
	if given("redirect-uri") {
		a.RedirectURIs = dedupe(f.redirectURIs)
	}
	if given("post-logout-redirect-uri") {
		a.PostLogoutRedirectURIs = dedupe(f.postLogoutURIs)
	}
	if given("native") {
		a.Native = f.native
	}
	if given("third-party") {
		a.ThirdParty = f.thirdParty
	}
	if given("display-name") {
		a.DisplayName = f.displayName
	}
	if given("scope") {
		a.Scopes = dedupe(f.scopes)
	}
	if given("grant-type") {
		a.GrantTypes = dedupe(f.grantTypes)
	}
	if given("audience") {
		a.Audiences = dedupe(f.audiences)
	}
	if given("access-token-ttl") {
		a.AccessTokenTTL = f.accessTokenTTL
	}
	if given("refresh-token-ttl") {
		a.RefreshTokenTTL = f.refreshTokenTTL
	}
	if given("backchannel-logout-uri") {
		a.BackchannelLogoutURI = f.backchannelLogoutURI
	}
}

// checkApp checks what only the whole app tells: an app that uses the
// code flow has somewhere to send its codes.
func checkApp(a *store.Client) error {
	grants := a.GrantTypes
	if len(grants) == 0 {
		grants = store.DefaultAppGrantTypes
	}
	if slices.Contains(grants, grantAuthorizationCode) && len(a.RedirectURIs) == 0 {
		return cli.UsageErrorf("--redirect-uri is required for an app that uses the authorization_code grant")
	}
	if len(grants) == 1 && grants[0] == grantRefreshToken {
		return cli.UsageErrorf("--grant-type refresh_token needs a grant that issues refresh tokens: authorization_code or device_code")
	}
	return nil
}

func dedupe(l []string) []string {
	var out []string
	for _, s := range l {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// normalizeGrantTypes checks the grant types given and spells
// device_code as its URN.
func normalizeGrantTypes(in []string) ([]string, error) {
	var out []string
	for _, g := range in {
		switch g {
		case grantAuthorizationCode, grantRefreshToken, grantDeviceCode:
		case "device_code":
			g = grantDeviceCode
		case "client_credentials":
			return nil, cli.UsageErrorf("--grant-type client_credentials: an app acts for people; a program that acts for itself is a machine client (nsauth clients add)")
		default:
			return nil, cli.UsageErrorf("--grant-type %q: not one of authorization_code, refresh_token, device_code", visible.Escape(g))
		}
		out = append(out, g)
	}
	return out, nil
}

// checkAppURI is the rule for the URIs an app registers (redirect,
// post-logout, back-channel logout): absolute, https, or http on a loopback
// host, without user info or fragment, spelled canonically, since they
// are compared as strings.
func checkAppURI(raw string) error {
	if err := redirect.RequireText("the URI", raw, redirect.MaxURILen); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "the URI "))
	}
	if err := visible.Check("it", raw); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "it "))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" {
		return errors.New("must be an absolute URI (https://host/path)")
	}
	if u.User != nil {
		return errors.New("must not contain user info")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("must not contain a fragment (#)")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackhost.Is(u.Hostname()) {
			return errors.New("must use https (http only on a loopback host: 127.0.0.1, [::1], localhost)")
		}
	default:
		return errors.New("must use https (http only on a loopback host)")
	}
	if u.String() != raw {
		return fmt.Errorf("is not written canonically (compared as a string, it would never match): write %q", u.String())
	}
	return nil
}

// checkAudience accepts an RFC 8707 resource: an absolute URI without a
// fragment.
func checkAudience(raw string) error {
	if err := redirect.RequireText("the audience", raw, redirect.MaxURILen); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "the audience "))
	}
	if err := visible.Check("it", raw); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "it "))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || strings.ContainsAny(raw, " \t") {
		return errors.New("must be an absolute URI (such as https://api.example.com)")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("must not contain a fragment (#)")
	}
	return nil
}
