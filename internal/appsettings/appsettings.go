// Package appsettings is the one rule for an app's registration settings
// (redirect and logout URIs, scopes, grant types, audiences, display name,
// token lifetimes): what `nsauth apps add` and `update` check before they
// call the AdminService, and what the AdminService checks before it stores
// an app. Errors name the setting as the caller's user spells it: a flag
// for the commands ([Flag]), a field of nsauth.admin.v1.AppSettings for
// the API ([FieldName]).
package appsettings

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/redirect"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/stringset"
	"github.com/nsauth/nsauth/internal/visible"
	"github.com/nsauth/nsauth/pkg/loopbackhost"
)

// Field is one setting of an app, spelled as the field of
// nsauth.admin.v1.AppSettings that carries it.
type Field string

// The settings an update may change (Public is chosen once, when an app
// is added).
const (
	DisplayName            Field = "display_name"
	Native                 Field = "native"
	ThirdParty             Field = "third_party"
	RedirectURIs           Field = "redirect_uris"
	PostLogoutRedirectURIs Field = "post_logout_redirect_uris"
	Scopes                 Field = "scopes"
	GrantTypes             Field = "grant_types"
	Audiences              Field = "audiences"
	AccessTokenTTL         Field = "access_token_ttl_seconds"
	RefreshTokenTTL        Field = "refresh_token_ttl_seconds"
	BackchannelLogoutURI   Field = "backchannel_logout_uri"
)

// Fields are every setting an update may change, in the order of
// nsauth.admin.v1.AppSettings.
var Fields = []Field{DisplayName, Native, ThirdParty, RedirectURIs, PostLogoutRedirectURIs, Scopes, GrantTypes, Audiences,
	AccessTokenTTL, RefreshTokenTTL, BackchannelLogoutURI}

var flags = map[Field]string{
	DisplayName: "--display-name", Native: "--native", ThirdParty: "--third-party", RedirectURIs: "--redirect-uri",
	PostLogoutRedirectURIs: "--post-logout-redirect-uri", Scopes: "--scope", GrantTypes: "--grant-type", Audiences: "--audience",
	AccessTokenTTL: "--access-token-ttl", RefreshTokenTTL: "--refresh-token-ttl", BackchannelLogoutURI: "--backchannel-logout-uri",
}

// Names spells a field in an error.
type Names func(Field) string

// Flag spells f as the flag of nsauth apps that sets it (--redirect-uri).
func Flag(f Field) string { return flags[f] }

// FieldName spells f as the AdminService's field (redirect_uris).
func FieldName(f Field) string { return string(f) }

// Bounds on an app's lists and texts: far above what an app needs, low
// enough that no registration makes pages or tokens large.
const (
	maxAppURIs        = 32
	maxAppScopes      = 64
	maxAppAudiences   = 16
	maxDisplayNameLen = 100
)

// The grant types an app may have.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
	grantDeviceCode        = store.DeviceCodeGrantType
)

// Settings are an app's settings as a caller gives them.
type Settings struct {
	DisplayName                     string
	Native, ThirdParty              bool
	RedirectURIs                    []string
	PostLogoutRedirectURIs          []string
	Scopes, GrantTypes, Audiences   []string
	AccessTokenTTL, RefreshTokenTTL time.Duration
	BackchannelLogoutURI            string
}

// Error is a setting refused; its message names the setting as the
// caller's user spells it.
type Error struct {
	Field Field
	msg   string
}

func (e *Error) Error() string { return e.msg }

func fail(f Field, n Names, format string, args ...any) error {
	return &Error{Field: f, msg: n(f) + fmt.Sprintf(format, args...)}
}

// Normalize checks each setting of s on its own and writes it
// canonically: lists without repeats, device_code as its URN. [CheckApp]
// checks what only the whole app tells.
func Normalize(s *Settings, n Names) error {
	for _, l := range []struct {
		field Field
		uris  []string
	}{{RedirectURIs, s.RedirectURIs}, {PostLogoutRedirectURIs, s.PostLogoutRedirectURIs}} {
		if len(l.uris) > maxAppURIs {
			return fail(l.field, n, ": at most %d URIs", maxAppURIs)
		}
		for _, u := range l.uris {
			if err := checkAppURI(u); err != nil {
				return fail(l.field, n, " %q: %v", visible.Escape(u), err)
			}
		}
	}
	if s.BackchannelLogoutURI != "" {
		if err := checkAppURI(s.BackchannelLogoutURI); err != nil {
			return fail(BackchannelLogoutURI, n, " %q: %v", visible.Escape(s.BackchannelLogoutURI), err)
		}
	}
	if len(s.DisplayName) > maxDisplayNameLen {
		return fail(DisplayName, n, ": at most %d bytes", maxDisplayNameLen)
	}
	if err := visible.Check(n(DisplayName), s.DisplayName); err != nil {
		return &Error{Field: DisplayName, msg: err.Error()}
	}
	if len(s.Scopes) > maxAppScopes {
		return fail(Scopes, n, ": at most %d scopes", maxAppScopes)
	}
	for _, sc := range s.Scopes {
		if sc == "" || len(sc) > 128 || strings.ContainsFunc(sc, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' || r > '~' }) {
			return fail(Scopes, n, " %q: a scope is 1 to 128 printable ASCII characters without spaces, quotes or backslashes", visible.Escape(sc))
		}
	}
	grants, err := normalizeGrantTypes(s.GrantTypes, n)
	if err != nil {
		return err
	}
	s.GrantTypes = grants
	if len(s.Audiences) > maxAppAudiences {
		return fail(Audiences, n, ": at most %d audiences", maxAppAudiences)
	}
	for _, a := range s.Audiences {
		if err := checkAudience(a); err != nil {
			return fail(Audiences, n, " %q: %v", visible.Escape(a), err)
		}
	}
	for _, d := range []struct {
		field Field
		ttl   time.Duration
	}{{AccessTokenTTL, s.AccessTokenTTL}, {RefreshTokenTTL, s.RefreshTokenTTL}} {
		switch {
		case d.ttl < 0:
			return fail(d.field, n, " cannot be negative")
		case d.ttl > 0 && d.ttl < time.Second:
			return fail(d.field, n, " must be at least 1s (or 0 for the server's)")
		case d.ttl%time.Second != 0:
			return fail(d.field, n, " must be a whole number of seconds")
		}
	}
	s.RedirectURIs, s.PostLogoutRedirectURIs = stringset.Unique(s.RedirectURIs), stringset.Unique(s.PostLogoutRedirectURIs)
	s.Scopes, s.GrantTypes, s.Audiences = stringset.Unique(s.Scopes), stringset.Unique(s.GrantTypes), stringset.Unique(s.Audiences)
	return nil
}

// Apply sets on a the settings of s that given reports (every one when
// adding an app).
func Apply(s *Settings, a *store.Client, given func(Field) bool) {
	if given(RedirectURIs) {
		a.RedirectURIs = s.RedirectURIs
	}
	if given(PostLogoutRedirectURIs) {
		a.PostLogoutRedirectURIs = s.PostLogoutRedirectURIs
	}
	if given(Native) {
		a.Native = s.Native
	}
	if given(ThirdParty) {
		a.ThirdParty = s.ThirdParty
	}
	if given(DisplayName) {
		a.DisplayName = s.DisplayName
	}
	if given(Scopes) {
		a.Scopes = s.Scopes
	}
	if given(GrantTypes) {
		a.GrantTypes = s.GrantTypes
	}
	if given(Audiences) {
		a.Audiences = s.Audiences
	}
	if given(AccessTokenTTL) {
		a.AccessTokenTTL = s.AccessTokenTTL
	}
	if given(RefreshTokenTTL) {
		a.RefreshTokenTTL = s.RefreshTokenTTL
	}
	if given(BackchannelLogoutURI) {
		a.BackchannelLogoutURI = s.BackchannelLogoutURI
	}
}

// All is the given of [Apply] for an app being added.
func All(Field) bool { return true }

// CheckApp checks what only the whole app tells: an app that uses the
// code flow has somewhere to send its codes, and refresh tokens come from
// a grant that issues them. The broker's own app (nsauth-cli), whose
// redirect URIs are the server's, is not checked.
func CheckApp(a *store.Client, n Names) error {
	grants := a.GrantTypes
	if len(grants) == 0 {
		grants = store.DefaultAppGrantTypes
	}
	if slices.Contains(grants, grantAuthorizationCode) && len(a.RedirectURIs) == 0 {
		return fail(RedirectURIs, n, " is required for an app that uses the authorization_code grant")
	}
	if len(grants) == 1 && grants[0] == grantRefreshToken {
		return fail(GrantTypes, n, " refresh_token needs a grant that issues refresh tokens: authorization_code or device_code")
	}
	return nil
}

// normalizeGrantTypes checks the grant types given and spells
// device_code as its URN.
func normalizeGrantTypes(in []string, n Names) ([]string, error) {
	var out []string
	for _, g := range in {
		switch g {
		case grantAuthorizationCode, grantRefreshToken, grantDeviceCode:
		case "device_code":
			g = grantDeviceCode
		case "client_credentials":
			return nil, fail(GrantTypes, n, " client_credentials: an app acts for people; a program that acts for itself is a machine client (nsauth clients add)")
		default:
			return nil, fail(GrantTypes, n, " %q: not one of authorization_code, refresh_token, device_code", visible.Escape(g))
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
