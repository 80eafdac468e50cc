package authn_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

const (
	procReports = "/test.v1.TestService/Reports"
	procDelete  = "/test.v1.TestService/Delete"
)

// TestRequire serves procedures with requirements behind an interceptor on
// a real verifier, and calls them with signed tokens as callers send them:
// a token lacking a required scope or group is refused with
// PermissionDenied naming what is missing, one that has them all passes.
func TestRequire(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithES256())
	v, _ := newVerifier(t, p, nil)
	ic := authn.NewInterceptorFromConfig(v, authn.InterceptorConfig{
		// Named public by mistake: its requirements still hold.
		PublicProcedures: []string{procPublic, procDelete},
	},
		authn.Require(procReports, authn.Group("reporters")),
		authn.Require(procDelete, authn.Scope("reports:write")),
		authn.Require(procDelete, authn.Group("admins")),
		authn.Require(procStream, authn.Group("reporters")),
	)
	srv := startRequireService(t, ic)

	token := func(scope string, groups any) []string {
		c := p.AccessClaims("alice")
		c["scope"] = scope
		if groups != nil {
			c["groups"] = groups
		}
		return []string{"Bearer " + p.Sign(c, nil)}
	}
	tests := []struct {
		name      string
		procedure string
		auth      []string
		wantCode  connect.Code // 0: the call passes
		// wantMissing are the words the refusal must name.
		wantMissing []string
		// wantNot must not appear in the refusal.
		wantNot []string
	}{
		{name: "in the group", procedure: procReports, auth: token("openid", []string{"staff", "reporters"})},
		{name: "not in the group", procedure: procReports, auth: token("openid", []string{"staff"}),
			wantCode: connect.CodePermissionDenied, wantMissing: []string{`group "reporters"`}},
		{name: "no groups claim", procedure: procReports, auth: token("openid reporters", nil),
			wantCode: connect.CodePermissionDenied, wantMissing: []string{`group "reporters"`}},
		{name: "group named as a scope", procedure: procReports, auth: token("reporters groups", []string{}),
			wantCode: connect.CodePermissionDenied, wantMissing: []string{`group "reporters"`}},
		{name: "groups claim a string", procedure: procReports, auth: token("openid", "reporters"),
			wantCode: connect.CodePermissionDenied, wantMissing: []string{`group "reporters"`}},
		{name: "group differing in case", procedure: procReports, auth: token("openid", []string{"Reporters"}),
			wantCode: connect.CodePermissionDenied},
		{name: "too many groups", procedure: procReports, auth: token("openid", manyGroups("reporters")),
			wantCode: connect.CodePermissionDenied},
		{name: "scope and group", procedure: procDelete, auth: token("openid reports:write", []string{"admins"})},
		{name: "group without the scope", procedure: procDelete, auth: token("openid reports:read", []string{"admins"}),
			wantCode: connect.CodePermissionDenied, wantMissing: []string{`scope "reports:write"`}, wantNot: []string{"admins"}},
		{name: "scope without the group", procedure: procDelete, auth: token("reports:write", []string{"reporters"}),
			wantCode: connect.CodePermissionDenied, wantMissing: []string{`group "admins"`}, wantNot: []string{"reports:write"}},
		{name: "neither", procedure: procDelete, auth: token("openid", nil),
			wantCode: connect.CodePermissionDenied, wantMissing: []string{`scope "reports:write"`, `group "admins"`}},
		{name: "public and required, no token", procedure: procDelete,
			wantCode: connect.CodeUnauthenticated},
		{name: "required, invalid token", procedure: procReports, auth: []string{"Bearer not-a-token"},
			wantCode: connect.CodeUnauthenticated},
		{name: "stream, not in the group", procedure: procStream, auth: token("openid", []string{"staff"}),
			wantCode: connect.CodePermissionDenied, wantMissing: []string{`group "reporters"`}},
		{name: "stream, in the group", procedure: procStream, auth: token("openid", []string{"reporters"})},
		{name: "no requirements", procedure: procWhoami, auth: token("openid", nil)},
		{name: "public", procedure: procPublic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := call(t, srv, tt.procedure, tt.auth)
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if connect.CodeOf(err) != tt.wantCode {
				t.Fatalf("got %q, %v; want %v", got, err, tt.wantCode)
			}
			msg := err.Error()
			for _, w := range tt.wantMissing {
				if !strings.Contains(msg, w) {
					t.Errorf("refusal %q does not name %s", msg, w)
				}
			}
			for _, w := range append(tt.wantNot, "eyJ") {
				if strings.Contains(msg, w) {
					t.Errorf("refusal %q names %q", msg, w)
				}
			}
		})
	}
}

func startRequireService(t *testing.T, ic *authn.Interceptor) *httptest.Server {
	t.Helper()
	opts := connect.WithInterceptors(ic)
	unary := func(ctx context.Context, _ *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.StringValue], error) {
		return connect.NewResponse(wrapperspb.String(describeCaller(ctx))), nil
	}
	mux := http.NewServeMux()
	for _, proc := range []string{procWhoami, procPublic, procReports, procDelete} {
		mux.Handle(proc, connect.NewUnaryHandler(proc, unary, opts))
	}
	mux.Handle(procStream, connect.NewServerStreamHandler(procStream,
		func(ctx context.Context, _ *connect.Request[wrapperspb.StringValue], s *connect.ServerStream[wrapperspb.StringValue]) error {
			return s.Send(wrapperspb.String(describeCaller(ctx)))
		}, opts))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// manyGroups is a groups claim one longer than MaxGroups, ending with last.
func manyGroups(last string) []string {
	g := make([]string, authn.MaxGroups)
	for i := range g {
		g[i] = "g"
	}
	return append(g, last)
}

// TestClaimsGroups reads the groups claim of verified tokens: a list of
// strings is returned as a copy the caller may change; anything else is
// no group at all, and the token is still accepted.
func TestClaimsGroups(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithES256())
	v, _ := newVerifier(t, p, nil)
	tests := []struct {
		name   string
		groups any // nil: no claim
		want   []string
	}{
		{name: "absent"},
		{name: "list", groups: []string{"ops", "ldap:dev"}, want: []string{"ops", "ldap:dev"}},
		{name: "empty list", groups: []string{}, want: []string{}},
		{name: "null", groups: "null-marker"},
		{name: "string", groups: "ops"},
		{name: "number list", groups: []int{1, 2}},
		{name: "object", groups: map[string]any{"ops": true}},
		{name: "at the bound", groups: manyGroups("x")[1:], want: manyGroups("x")[1:]},
		{name: "over the bound", groups: manyGroups("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := p.AccessClaims("alice")
			switch tt.groups {
			case nil:
			case "null-marker":
				c["groups"] = nil
			default:
				c["groups"] = tt.groups
			}
			claims, err := v.Verify(context.Background(), p.Sign(c, nil))
			if err != nil {
				t.Fatalf("token refused for its groups claim: %v", err)
			}
			got := claims.Groups()
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Groups() = %v, want %v", got, tt.want)
			}
			if len(got) > 0 {
				got[0] = "changed"
				if claims.Groups()[0] == "changed" {
					t.Fatal("Groups() hands out its own slice")
				}
			}
		})
	}
	if g := (&authn.Claims{Subject: "by hand"}).Groups(); g != nil {
		t.Errorf("claims built by hand: Groups() = %v", g)
	}
}
