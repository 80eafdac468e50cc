package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestAdminAPIRefusesAppTokens: an administrator who signs in to an app
// gives it an access token that CheckToken accepts (it carries the
// server's audience), but the admin API refuses it with PermissionDenied:
// it takes the tokens of nsauth login (the terminal client) only, so an
// app cannot administer nsauth with the tokens its users bring. On both
// backends, over real HTTP.
func TestAdminAPIRefusesAppTokens(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s, st := serveWithStore(t, b, nil)
		admin, err := st.UserByUsername(ctx, "admin")
		if err != nil {
			t.Fatal(err)
		}
		// The first-start administrator is in the group admin already.
		if in, err := st.InGroup(ctx, admin.ID, "admin"); err != nil || !in {
			t.Fatalf("the first administrator in the group admin: %v, %v; want true", in, err)
		}
		if err := st.AddApp(ctx, &store.Client{ID: groupsAppID, SecretHash: store.HashSecret(groupsAppSecret),
			RedirectURIs: []string{groupsAppRedirect}, Scopes: []string{"openid", "profile"}}); err != nil {
			t.Fatal(err)
		}
		tok := appLogin(t, discover(t, s.URL), "admin", adminPassword, "openid profile")

		check := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
		check.Header().Set("Authorization", "Bearer "+tok.AccessToken)
		if _, err := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, s.URL).CheckToken(ctx, check); err != nil {
			t.Fatalf("CheckToken of the app's token: %v (the test needs a token the server accepts)", err)
		}
		req := connect.NewRequest(&adminv1.CreateUserRequest{Username: "mallory", Password: "mallory-password-1"})
		req.Header().Set("Authorization", "Bearer "+tok.AccessToken)
		_, err = adminv1connect.NewAdminServiceClient(http.DefaultClient, s.URL).CreateUser(ctx, req)
		if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "nsauth login") {
			t.Errorf("CreateUser with the app's token of an administrator: %v, want PermissionDenied", err)
		}
		if _, err := st.UserByUsername(ctx, "mallory"); err == nil {
			t.Error("the app's token created a user")
		}
	})
}
