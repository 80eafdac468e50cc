package appscmd

import (
	"slices"
	"time"

	"github.com/spf13/pflag"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/appsettings"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/store"
)

// An app's settings as nsauth apps add and update take them. Their rule is
// appsettings', checked here before the AdminService is called (errors
// naming the flags) and again by the service.

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

// given reports which settings were given on the command line.
func given(fs *pflag.FlagSet) func(appsettings.Field) bool {
	return func(f appsettings.Field) bool { return fs.Changed(appsettings.Flag(f)[2:]) }
}

// anyGiven reports whether any setting was given on the command line.
func anyGiven(fs *pflag.FlagSet) bool {
	return slices.ContainsFunc(appsettings.Fields, given(fs))
}

// settings checks the settings given, each on its own, and returns them
// written canonically.
func (f *appFlags) settings() (*appsettings.Settings, error) {
	s := &appsettings.Settings{
		DisplayName: f.displayName, Native: f.native, ThirdParty: f.thirdParty,
		RedirectURIs: f.redirectURIs, PostLogoutRedirectURIs: f.postLogoutURIs,
		Scopes: f.scopes, GrantTypes: f.grantTypes, Audiences: f.audiences,
		AccessTokenTTL: f.accessTokenTTL, RefreshTokenTTL: f.refreshTokenTTL,
		BackchannelLogoutURI: f.backchannelLogoutURI,
	}
	if err := appsettings.Normalize(s, appsettings.Flag); err != nil {
		return nil, cli.UsageErrorf("%v", err)
	}
	return s, nil
}

// newApp checks the flags of add, and the app they describe.
func (f *appFlags) newApp(name string) (string, *appsettings.Settings, error) {
	id, err := store.NormalizeClientName(name)
	if err != nil {
		return "", nil, cli.UsageErrorf("%v", err)
	}
	s, err := f.settings()
	if err != nil {
		return "", nil, err
	}
	a := &store.Client{ID: id, Public: f.public}
	appsettings.Apply(s, a, appsettings.All)
	if err := appsettings.CheckApp(a, appsettings.Flag); err != nil {
		return "", nil, cli.UsageErrorf("%v", err)
	}
	return id, s, nil
}

// settingsProto is s as the AdminService takes it.
func settingsProto(s *appsettings.Settings, public bool) *adminv1.AppSettings {
	return &adminv1.AppSettings{
		DisplayName: s.DisplayName, Public: public, Native: s.Native, ThirdParty: s.ThirdParty,
		RedirectUris: s.RedirectURIs, PostLogoutRedirectUris: s.PostLogoutRedirectURIs,
		Scopes: s.Scopes, GrantTypes: s.GrantTypes, Audiences: s.Audiences,
		AccessTokenTtlSeconds: int64(s.AccessTokenTTL / time.Second), RefreshTokenTtlSeconds: int64(s.RefreshTokenTTL / time.Second),
		BackchannelLogoutUri: s.BackchannelLogoutURI,
	}
}

// appFromProto is the app the AdminService returned, as the listings
// print it.
func appFromProto(a *adminv1.App) *store.Client {
	return &store.Client{
		ID: a.GetName(), DisplayName: a.GetDisplayName(), Public: a.GetPublic(), Native: a.GetNative(), ThirdParty: a.GetThirdParty(),
		RedirectURIs: a.GetRedirectUris(), PostLogoutRedirectURIs: a.GetPostLogoutRedirectUris(), Scopes: a.GetScopes(),
		GrantTypes: a.GetGrantTypes(), Audiences: a.GetAudiences(),
		AccessTokenTTL:       time.Duration(a.GetAccessTokenTtlSeconds()) * time.Second,
		RefreshTokenTTL:      time.Duration(a.GetRefreshTokenTtlSeconds()) * time.Second,
		BackchannelLogoutURI: a.GetBackchannelLogoutUri(),
		CreatedAt:            fromUnix(a.GetCreatedAt()), UpdatedAt: fromUnix(a.GetUpdatedAt()), DisabledAt: fromUnix(a.GetDisabledAt()),
	}
}

// fromUnix is the time s seconds after the epoch, the zero time for 0.
func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}
