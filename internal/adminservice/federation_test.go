package adminservice_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestFederationPoliciesOverHTTP: a policy added for a machine client
// (named by name), listed with the client's name, refused when it would
// trust this server's own issuer or names no client, deleted; audited
// with the caller as actor.
func TestFederationPoliciesOverHTTP(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := serveOverHTTP(t, b)
		ctx := context.Background()
		const own = "https://nsauth.example.com"
		if _, err := h.st.RecordServedIssuer(ctx, own); err != nil {
			t.Fatal(err)
		}
		c, err := h.api.CreateMachineClient(ctx, req(&adminv1.CreateMachineClientRequest{Name: "ci-deployer"}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.api.SetMachineClientDisabled(ctx, req(&adminv1.SetMachineClientDisabledRequest{Name: "ci-deployer", Disabled: true})); err != nil {
			t.Fatal(err)
		}
		policy := func(mod func(p *adminv1.FederationPolicy)) *adminv1.FederationPolicy {
			p := &adminv1.FederationPolicy{Name: "deploy-main", Issuer: "https://token.actions.githubusercontent.com", Audience: own,
				Subject: "repo:acme/app:ref:refs/heads/main", Client: "ci-deployer", MaxTtlSeconds: 600}
			mod(p)
			return p
		}
		refusals := []struct {
			name   string
			policy *adminv1.FederationPolicy
			code   connect.Code
			want   string
		}{
			{"this server's own issuer", policy(func(p *adminv1.FederationPolicy) { p.Issuer = own + "/" }), connect.CodeInvalidArgument, "this server's own"},
			{"wildcards alone", policy(func(p *adminv1.FederationPolicy) { p.Subject = "*:*" }), connect.CodeInvalidArgument, "subject pattern"},
			{"negative lifetime", policy(func(p *adminv1.FederationPolicy) { p.MaxTtlSeconds = -1 }), connect.CodeInvalidArgument, "max_ttl_seconds"},
			{"unknown client", policy(func(p *adminv1.FederationPolicy) { p.Client = "nobody" }), connect.CodeNotFound, `no machine client "nobody"`},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) {
				_, err := h.api.CreateFederationPolicy(ctx, req(&adminv1.CreateFederationPolicyRequest{Policy: tc.policy}))
				wantCode(t, tc.name, err, tc.code, tc.want)
			})
		}
		res, err := h.api.CreateFederationPolicy(ctx, req(&adminv1.CreateFederationPolicyRequest{Policy: policy(func(*adminv1.FederationPolicy) {})}))
		if err != nil || res.Msg.GetPolicy().GetClient() != "ci-deployer" || !res.Msg.GetClientDisabled() {
			t.Fatalf("CreateFederationPolicy = %v, %v", res, err)
		}
		_, err = h.api.CreateFederationPolicy(ctx, req(&adminv1.CreateFederationPolicyRequest{Policy: policy(func(*adminv1.FederationPolicy) {})}))
		wantCode(t, "the same policy again", err, connect.CodeAlreadyExists, `"deploy-main" already exists`)
		list, err := h.api.ListFederationPolicies(ctx, req(&adminv1.ListFederationPoliciesRequest{}))
		if err != nil || len(list.Msg.GetPolicies()) != 1 || list.Msg.GetPolicies()[0].GetClient() != "ci-deployer" || list.Msg.GetPolicies()[0].GetMaxTtlSeconds() != 600 {
			t.Fatalf("ListFederationPolicies = %v, %v", list, err)
		}
		if _, err := h.api.DeleteFederationPolicy(ctx, req(&adminv1.DeleteFederationPolicyRequest{Name: "deploy-main"})); err != nil {
			t.Fatal(err)
		}
		_, err = h.api.DeleteFederationPolicy(ctx, req(&adminv1.DeleteFederationPolicyRequest{Name: "deploy-main"}))
		wantCode(t, "deleted twice", err, connect.CodeNotFound, `no federation policy "deploy-main"`)
		trail := h.events(t, "admin.federation")
		want := []string{"admin.federation " + c.Msg.GetClient().GetId() + "deploy-main added", "admin.federation deploy-main deleted"}
		if strings.Join(trail, "\n") != strings.Join(want, "\n") {
			t.Errorf("events:\n  %s\nwant:\n  %s", strings.Join(trail, "\n  "), strings.Join(want, "\n  "))
		}
	})
}
