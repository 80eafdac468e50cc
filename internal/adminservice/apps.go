package adminservice

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/appsettings"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store"
)

// Apps: the clients people log in to. An app's name is its client id; the
// rules of its settings are appsettings', named as AppSettings' fields.

// ListApps lists every app, by name.
func (s *appsRPC) ListApps(ctx context.Context, _ *connect.Request[adminv1.ListAppsRequest]) (*connect.Response[adminv1.ListAppsResponse], error) {
	apps, err := s.cfg.Store.ListApps(ctx)
	if err != nil {
		return nil, toConnect(err, "apps")
	}
	out := make([]*adminv1.App, 0, len(apps))
	for i := range apps {
		broker, err := s.isBrokerApp(ctx, &apps[i])
		if err != nil {
			return nil, toConnect(err, "apps")
		}
		out = append(out, appProto(&apps[i], broker))
	}
	return connect.NewResponse(&adminv1.ListAppsResponse{Apps: out}), nil
}

// GetApp returns the app named.
func (s *appsRPC) GetApp(ctx context.Context, req *connect.Request[adminv1.GetAppRequest]) (*connect.Response[adminv1.GetAppResponse], error) {
	a, broker, err := s.findApp(ctx, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.GetAppResponse{App: appProto(a, broker)}), nil
}

// CreateApp registers an app and returns its client secret, the one time
// it is shown (none for a public app); only its digest is stored.
func (s *appsRPC) CreateApp(ctx context.Context, req *connect.Request[adminv1.CreateAppRequest]) (*connect.Response[adminv1.CreateAppResponse], error) {
	id, err := store.NormalizeClientName(req.Msg.GetName())
	if err != nil {
		return nil, invalid("name: %v", err)
	}
	settings, err := appSettings(req.Msg.GetSettings(), appsettings.All)
	if err != nil {
		return nil, err
	}
	a := &store.Client{ID: id, Public: req.Msg.GetSettings().GetPublic()}
	appsettings.Apply(settings, a, appsettings.All)
	if err := appsettings.CheckApp(a, appsettings.FieldName); err != nil {
		return nil, invalid("%v", err)
	}
	var secret string
	if !a.Public {
		secret = store.NewMachineClientSecret() // 256 random bits, like a machine client's
		a.SecretHash = store.HashSecret(secret)
	}
	if err := s.cfg.Store.AddApp(ctx, a); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("the name %q is taken by an app or a machine client", a.ID))
		}
		return nil, toConnect(err, quoted("app", a.ID))
	}
	// Unrecorded, the secret is never shown.
	if err := s.record(ctx, audit.Event{Type: audit.AppAdded, ClientID: a.ID}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.CreateAppResponse{App: appProto(a, false), ClientSecret: secret}), nil
}

// UpdateApp changes the settings update_mask names; the others are kept.
func (s *appsRPC) UpdateApp(ctx context.Context, req *connect.Request[adminv1.UpdateAppRequest]) (*connect.Response[adminv1.UpdateAppResponse], error) {
	mask := req.Msg.GetUpdateMask()
	if len(mask) == 0 {
		return nil, invalid("update_mask: name the settings to change (%s)", fieldList())
	}
	for _, f := range mask {
		switch {
		case f == "public":
			return nil, invalid("update_mask: public cannot change: add the app anew to make it public or confidential")
		case !slices.Contains(appsettings.Fields, appsettings.Field(f)):
			return nil, invalid("update_mask: %q is not a setting (%s)", f, fieldList())
		}
	}
	given := func(f appsettings.Field) bool { return slices.Contains(mask, string(f)) }
	settings, err := appSettings(req.Msg.GetSettings(), given)
	if err != nil {
		return nil, err
	}
	a, broker, err := s.findApp(ctx, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	appsettings.Apply(settings, a, given)
	if !broker {
		if err := appsettings.CheckApp(a, appsettings.FieldName); err != nil {
			return nil, invalid("%v", err)
		}
	}
	if err := s.cfg.Store.UpdateApp(ctx, a); err != nil {
		return nil, toConnect(err, quoted("app", a.ID))
	}
	if err := s.record(ctx, audit.Event{Type: audit.AppUpdated, ClientID: a.ID}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.UpdateAppResponse{App: appProto(a, broker)}), nil
}

// SetAppDisabled disables an app, revoking its tokens, or enables it.
func (s *appsRPC) SetAppDisabled(ctx context.Context, req *connect.Request[adminv1.SetAppDisabledRequest]) (*connect.Response[adminv1.SetAppDisabledResponse], error) {
	a, _, err := s.findApp(ctx, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	disable := req.Msg.GetDisabled()
	changed := a.Disabled() != disable
	if err := s.cfg.Store.SetAppDisabled(ctx, a.ID, disable); err != nil {
		return nil, toConnect(err, quoted("app", a.ID))
	}
	t := audit.AppEnabled
	if disable {
		t = audit.AppDisabled
	}
	if err := s.record(ctx, audit.Event{Type: t, ClientID: a.ID}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.SetAppDisabledResponse{Changed: changed}), nil
}

// DeleteApp deletes an app, its consents and its tokens.
func (s *appsRPC) DeleteApp(ctx context.Context, req *connect.Request[adminv1.DeleteAppRequest]) (*connect.Response[adminv1.DeleteAppResponse], error) {
	a, broker, err := s.findApp(ctx, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	if broker {
		return nil, brokerAppRefused(a, "deleted")
	}
	if err := s.cfg.Store.DeleteApp(ctx, a.ID); err != nil {
		return nil, toConnect(err, quoted("app", a.ID))
	}
	if err := s.record(ctx, audit.Event{Type: audit.AppDeleted, ClientID: a.ID}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.DeleteAppResponse{}), nil
}

// RotateAppSecret replaces a confidential app's secret, revoking its
// tokens, and returns the new one, the one time it is shown.
func (s *appsRPC) RotateAppSecret(ctx context.Context, req *connect.Request[adminv1.RotateAppSecretRequest]) (*connect.Response[adminv1.RotateAppSecretResponse], error) {
	a, broker, err := s.findApp(ctx, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	if a.Public {
		return nil, precondition("%q is a public app: it has no secret to rotate", a.ID)
	}
	if broker {
		return nil, brokerAppRefused(a, "given another secret")
	}
	secret := store.NewMachineClientSecret() // 256 random bits, like a machine client's
	if err := s.cfg.Store.SetAppSecret(ctx, a.ID, store.HashSecret(secret)); err != nil {
		return nil, toConnect(err, quoted("app", a.ID))
	}
	// Unrecorded, the new secret is never shown: the app stays locked out
	// until a rotation is recorded.
	if err := s.record(ctx, audit.Event{Type: audit.AppSecretRotated, ClientID: a.ID}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.RotateAppSecretResponse{ClientId: a.ID, ClientSecret: secret}), nil
}

// findApp finds an app by its name (its client id), and says whether it is
// the broker's own.
func (s *appsRPC) findApp(ctx context.Context, name string) (*store.Client, bool, error) {
	id, err := store.NormalizeClientName(name)
	if err != nil {
		return nil, false, invalid("name: %v", err)
	}
	a, err := s.cfg.Store.ClientByID(ctx, id)
	if err != nil {
		return nil, false, toConnect(err, quoted("app", id))
	}
	broker, err := s.isBrokerApp(ctx, a)
	if err != nil {
		return nil, false, toConnect(err, quoted("app", id))
	}
	return a, broker, nil
}

// isBrokerApp reports whether a is the broker's own app (nsauth-cli): the
// one whose secret the server keeps and checks at every start. Its
// redirect URIs are the server's (any loopback URI, and
// NSAUTH_ALLOWED_REDIRECT_URIS), not its own.
func (s *appsRPC) isBrokerApp(ctx context.Context, a *store.Client) (bool, error) {
	_, err := s.cfg.Store.Value(ctx, issuer.BrokerSecretName(a.ID))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// brokerAppRefused refuses to delete the broker's own app or to rotate its
// secret: either would stop nsauth login from working.
func brokerAppRefused(a *store.Client, what string) error {
	return precondition("%q is the app nsauth's own login uses; its secret is the server's, and it cannot be %s (nsauth apps update changes its settings)", a.ID, what)
}

// appSettings are the settings of m that given names, checked and
// written canonically; errors name AppSettings' fields.
func appSettings(m *adminv1.AppSettings, given func(appsettings.Field) bool) (*appsettings.Settings, error) {
	s := &appsettings.Settings{}
	pick := func(f appsettings.Field, v []string) []string {
		if given(f) {
			return v
		}
		return nil
	}
	var err error
	if given(appsettings.AccessTokenTTL) {
		if s.AccessTokenTTL, err = lifetime(string(appsettings.AccessTokenTTL), m.GetAccessTokenTtlSeconds()); err != nil {
			return nil, err
		}
	}
	if given(appsettings.RefreshTokenTTL) {
		if s.RefreshTokenTTL, err = lifetime(string(appsettings.RefreshTokenTTL), m.GetRefreshTokenTtlSeconds()); err != nil {
			return nil, err
		}
	}
	if given(appsettings.DisplayName) {
		s.DisplayName = m.GetDisplayName()
	}
	if given(appsettings.BackchannelLogoutURI) {
		s.BackchannelLogoutURI = m.GetBackchannelLogoutUri()
	}
	s.Native, s.ThirdParty = m.GetNative(), m.GetThirdParty()
	s.RedirectURIs = pick(appsettings.RedirectURIs, m.GetRedirectUris())
	s.PostLogoutRedirectURIs = pick(appsettings.PostLogoutRedirectURIs, m.GetPostLogoutRedirectUris())
	s.Scopes = pick(appsettings.Scopes, m.GetScopes())
	s.GrantTypes = pick(appsettings.GrantTypes, m.GetGrantTypes())
	s.Audiences = pick(appsettings.Audiences, m.GetAudiences())
	if err := appsettings.Normalize(s, appsettings.FieldName); err != nil {
		return nil, invalid("%v", err)
	}
	return s, nil
}

func fieldList() string {
	names := make([]string, len(appsettings.Fields))
	for i, f := range appsettings.Fields {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}

// appProto is a as the API shows it: every setting, never the secret's
// digest.
func appProto(a *store.Client, broker bool) *adminv1.App {
	grants := a.GrantTypes
	if len(grants) == 0 {
		grants = store.DefaultAppGrantTypes
	}
	return &adminv1.App{
		Name: a.ID, DisplayName: a.DisplayName, Public: a.Public, Native: a.Native, ThirdParty: a.ThirdParty,
		RedirectUris: a.RedirectURIs, PostLogoutRedirectUris: a.PostLogoutRedirectURIs, Scopes: a.Scopes,
		GrantTypes: slices.Clone(grants), Audiences: a.Audiences,
		AccessTokenTtlSeconds: seconds(a.AccessTokenTTL), RefreshTokenTtlSeconds: seconds(a.RefreshTokenTTL),
		BackchannelLogoutUri: a.BackchannelLogoutURI,
		CreatedAt:            unix(a.CreatedAt), UpdatedAt: unix(a.UpdatedAt), DisabledAt: unix(a.DisabledAt),
		Broker: broker,
	}
}
