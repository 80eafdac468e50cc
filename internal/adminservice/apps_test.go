package adminservice_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/adminservice"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// overHTTP is an AdminService on a fresh store of backend b, served over
// real HTTP to a Connect client; every call is made as actor (the
// authorization interceptor's job, stood in for here).
type overHTTP struct {
	st  *store.Store
	api adminv1connect.AdminServiceClient
}

const testActor = "alice-admin"

func serveOverHTTP(t *testing.T, b storetest.Backend) *overHTTP {
	t.Helper()
	st := b.Open(t, store.Options{})
	rec, err := audit.New(audit.Config{Sink: st, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := adminservice.New(adminservice.Config{Store: st, Audit: rec, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	path, h := adminv1connect.NewAdminServiceHandler(svc)
	mux := http.NewServeMux()
	mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(adminservice.WithCaller(r.Context(), adminservice.Caller{Actor: testActor, Subject: "sub-alice"})))
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &overHTTP{st: st, api: adminv1connect.NewAdminServiceClient(srv.Client(), srv.URL)}
}

// wantCode fails unless err is a Connect error of code whose message
// holds every one of want.
func wantCode(t *testing.T, what string, err error, code connect.Code, want ...string) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Errorf("%s: %v, want %v", what, err, code)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %q does not say %q", what, err, w)
		}
	}
}

// events are the audit trail's events of the types given, each checked to
// name the caller as actor and to hold none of secrets.
func (h *overHTTP) events(t *testing.T, prefix string, secrets ...string) []string {
	t.Helper()
	evs, err := h.st.AuditEvents(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if !strings.HasPrefix(string(e.Type), prefix) {
			continue
		}
		out = append(out, string(e.Type)+" "+e.ClientID+e.Target+" "+e.Reason)
		if e.Actor != testActor {
			t.Errorf("%s: actor %q, want the caller %q", e.Type, e.Actor, testActor)
		}
		j, _ := json.Marshal(e)
		for _, s := range secrets {
			if s != "" && strings.Contains(string(j), s) {
				t.Errorf("an audit record holds a secret: %s", j)
			}
		}
	}
	return out
}

// noSecret fails if the JSON of m holds any of secrets.
func noSecret(t *testing.T, what string, m proto.Message, secrets ...string) {
	t.Helper()
	j, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(string(j), s) {
			t.Errorf("%s shows a secret: %s", what, j)
		}
	}
}

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

// TestAppsRefusedOverHTTP: each refusal of an app's settings is InvalidArgument
// naming the AppSettings field at fault, checked before anything is
// stored.
func TestAppsRefusedOverHTTP(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := serveOverHTTP(t, b)
		ctx := context.Background()
		const cb = "https://app.example.com/cb"
		ok := func(mod func(s *adminv1.AppSettings)) *adminv1.AppSettings {
			s := &adminv1.AppSettings{RedirectUris: []string{cb}}
			mod(s)
			return s
		}
		if _, err := h.api.CreateApp(ctx, req(&adminv1.CreateAppRequest{Name: "web", Settings: ok(func(*adminv1.AppSettings) {})})); err != nil {
			t.Fatal(err)
		}
		creates := []struct {
			name     string
			app      string
			settings *adminv1.AppSettings
			want     []string
		}{
			{"name starting with a digit", "9lives", ok(func(*adminv1.AppSettings) {}), []string{"name"}},
			{"no redirect URI for the code flow", "x", &adminv1.AppSettings{}, []string{"redirect_uris is required"}},
			{"http on a public host", "x", ok(func(s *adminv1.AppSettings) { s.RedirectUris = []string{"http://app.example.com/cb"} }), []string{"redirect_uris", "must use https"}},
			{"fragment", "x", ok(func(s *adminv1.AppSettings) { s.RedirectUris = []string{cb + "#x"} }), []string{"redirect_uris", "fragment"}},
			{"not canonical", "x", ok(func(s *adminv1.AppSettings) { s.RedirectUris = []string{"HTTPS://app.example.com/cb"} }), []string{"redirect_uris", "canonically"}},
			{"post-logout URI over http", "x", ok(func(s *adminv1.AppSettings) { s.PostLogoutRedirectUris = []string{"http://app.example.com/"} }), []string{"post_logout_redirect_uris"}},
			{"back-channel URI over http", "x", ok(func(s *adminv1.AppSettings) { s.BackchannelLogoutUri = "http://app.example.com/bc" }), []string{"backchannel_logout_uri"}},
			{"client credentials", "x", ok(func(s *adminv1.AppSettings) { s.GrantTypes = []string{"client_credentials"} }), []string{"grant_types", "machine client"}},
			{"refresh alone", "x", ok(func(s *adminv1.AppSettings) { s.GrantTypes = []string{"refresh_token"} }), []string{"grant_types refresh_token"}},
			{"negative access TTL", "x", ok(func(s *adminv1.AppSettings) { s.AccessTokenTtlSeconds = -60 }), []string{"access_token_ttl_seconds", "negative"}},
			{"relative audience", "x", ok(func(s *adminv1.AppSettings) { s.Audiences = []string{"api"} }), []string{"audiences"}},
			{"scope with a space", "x", ok(func(s *adminv1.AppSettings) { s.Scopes = []string{"a b"} }), []string{"scopes"}},
			{"display name with a bidirectional override", "x", ok(func(s *adminv1.AppSettings) { s.DisplayName = "Lap\u202Epotkcab" }), []string{"display_name", "U+202E"}},
		}
		for _, tc := range creates {
			t.Run("create/"+tc.name, func(t *testing.T) {
				_, err := h.api.CreateApp(ctx, req(&adminv1.CreateAppRequest{Name: tc.app, Settings: tc.settings}))
				wantCode(t, "CreateApp", err, connect.CodeInvalidArgument, tc.want...)
			})
		}
		updates := []struct {
			name     string
			mask     []string
			settings *adminv1.AppSettings
			want     []string
		}{
			{"no mask", nil, &adminv1.AppSettings{DisplayName: "Web"}, []string{"update_mask"}},
			{"public", []string{"public"}, &adminv1.AppSettings{Public: true}, []string{"update_mask", "public cannot change"}},
			{"unknown setting", []string{"secret"}, &adminv1.AppSettings{}, []string{"update_mask", `"secret"`}},
			{"code flow left without redirect URI", []string{"redirect_uris"}, &adminv1.AppSettings{}, []string{"redirect_uris is required"}},
			{"bad URI", []string{"redirect_uris"}, &adminv1.AppSettings{RedirectUris: []string{"http://app.example.com/cb"}}, []string{"redirect_uris"}},
		}
		for _, tc := range updates {
			t.Run("update/"+tc.name, func(t *testing.T) {
				_, err := h.api.UpdateApp(ctx, req(&adminv1.UpdateAppRequest{Name: "web", Settings: tc.settings, UpdateMask: tc.mask}))
				wantCode(t, "UpdateApp", err, connect.CodeInvalidArgument, tc.want...)
			})
		}
		got, err := h.api.GetApp(ctx, req(&adminv1.GetAppRequest{Name: "web"}))
		if err != nil || len(got.Msg.GetApp().GetRedirectUris()) != 1 {
			t.Errorf("after refused updates: %v, %v", got, err)
		}
		if apps, _ := h.st.ListApps(ctx); len(apps) != 1 {
			t.Errorf("refused creates stored apps: %+v", apps)
		}
		_, err = h.api.GetApp(ctx, req(&adminv1.GetAppRequest{Name: "nobody"}))
		wantCode(t, "GetApp of an unknown app", err, connect.CodeNotFound, `no app "nobody"`)
		_, err = h.api.CreateApp(ctx, req(&adminv1.CreateAppRequest{Name: "Web", Settings: ok(func(*adminv1.AppSettings) {})}))
		wantCode(t, "CreateApp of a taken name", err, connect.CodeAlreadyExists, "taken")
	})
}

// TestAppsOverHTTP: an app's life through the API: the secret returned
// once (by CreateApp and RotateAppSecret) and only its digest stored,
// never in a listing or the audit trail, whose every event names the
// caller as actor; update changes only the masked settings.
func TestAppsOverHTTP(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := serveOverHTTP(t, b)
		ctx := context.Background()
		created, err := h.api.CreateApp(ctx, req(&adminv1.CreateAppRequest{Name: "Neosync", Settings: &adminv1.AppSettings{
			DisplayName: "Neosync", RedirectUris: []string{"https://neosync.example.com/cb", "https://neosync.example.com/cb"},
			Scopes: []string{"openid", "profile"}, GrantTypes: []string{"authorization_code", "device_code"}, AccessTokenTtlSeconds: 600,
		}}))
		if err != nil {
			t.Fatal(err)
		}
		first := created.Msg.GetClientSecret()
		a := created.Msg.GetApp()
		if a.GetName() != "neosync" || len(first) < 43 || len(a.GetRedirectUris()) != 1 ||
			strings.Join(a.GetGrantTypes(), " ") != "authorization_code "+store.DeviceCodeGrantType {
			t.Fatalf("CreateApp = %v", created.Msg)
		}
		if stored, err := h.st.ClientByID(ctx, "neosync"); err != nil || !stored.CheckSecret(first) || stored.AccessTokenTTL != 10*time.Minute {
			t.Fatalf("stored %+v, %v", stored, err)
		}
		public, err := h.api.CreateApp(ctx, req(&adminv1.CreateAppRequest{Name: "desktop", Settings: &adminv1.AppSettings{
			Public: true, Native: true, RedirectUris: []string{"http://127.0.0.1/callback"}}}))
		if err != nil || public.Msg.GetClientSecret() != "" || !public.Msg.GetApp().GetPublic() {
			t.Fatalf("public CreateApp = %v, %v", public, err)
		}
		_, err = h.api.RotateAppSecret(ctx, req(&adminv1.RotateAppSecretRequest{Name: "desktop"}))
		wantCode(t, "RotateAppSecret of a public app", err, connect.CodeFailedPrecondition, "public app")

		if _, err := h.api.UpdateApp(ctx, req(&adminv1.UpdateAppRequest{Name: "neosync", UpdateMask: []string{"third_party", "access_token_ttl_seconds"},
			Settings: &adminv1.AppSettings{ThirdParty: true, DisplayName: "ignored: not in the mask"}})); err != nil {
			t.Fatal(err)
		}
		got, err := h.api.GetApp(ctx, req(&adminv1.GetAppRequest{Name: "neosync"}))
		if err != nil {
			t.Fatal(err)
		}
		if g := got.Msg.GetApp(); !g.GetThirdParty() || g.GetAccessTokenTtlSeconds() != 0 || g.GetDisplayName() != "Neosync" || g.GetBroker() {
			t.Errorf("after UpdateApp: %v, %v", got, err)
		}

		for _, disabled := range []bool{true, false} {
			res, err := h.api.SetAppDisabled(ctx, req(&adminv1.SetAppDisabledRequest{Name: "neosync", Disabled: disabled}))
			if stored, _ := h.st.ClientByID(ctx, "neosync"); err != nil || !res.Msg.GetChanged() || stored.Disabled() != disabled {
				t.Errorf("SetAppDisabled(%v) = %v, %v", disabled, res, err)
			}
		}
		rotated, err := h.api.RotateAppSecret(ctx, req(&adminv1.RotateAppSecretRequest{Name: "neosync"}))
		if err != nil {
			t.Fatal(err)
		}
		second := rotated.Msg.GetClientSecret()
		if stored, _ := h.st.ClientByID(ctx, "neosync"); stored.CheckSecret(first) || !stored.CheckSecret(second) {
			t.Error("RotateAppSecret did not replace the secret")
		}
		list, err := h.api.ListApps(ctx, req(&adminv1.ListAppsRequest{}))
		if err != nil || len(list.Msg.GetApps()) != 2 {
			t.Fatalf("ListApps = %v, %v", list, err)
		}
		noSecret(t, "ListApps", list.Msg, first, second)
		noSecret(t, "GetApp", got.Msg, first, second)
		if _, err := h.api.DeleteApp(ctx, req(&adminv1.DeleteAppRequest{Name: "desktop"})); err != nil {
			t.Fatal(err)
		}
		_, err = h.api.DeleteApp(ctx, req(&adminv1.DeleteAppRequest{Name: "desktop"}))
		wantCode(t, "DeleteApp twice", err, connect.CodeNotFound, `no app "desktop"`)

		trail := h.events(t, "app.", first, second)
		want := []string{"app.added neosync ", "app.added desktop ", "app.updated neosync ", "app.disabled neosync ", "app.enabled neosync ",
			"app.secret_rotated neosync ", "app.deleted desktop "}
		if strings.Join(trail, "\n") != strings.Join(want, "\n") {
			t.Errorf("events:\n  %s\nwant:\n  %s", strings.Join(trail, "\n  "), strings.Join(want, "\n  "))
		}
	})
}
