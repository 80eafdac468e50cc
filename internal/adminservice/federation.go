package adminservice

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/federation"
	"github.com/nsauth/nsauth/internal/store"
)

// Federation policies (keyless CI): which foreign ID tokens are exchanged
// for tokens of which machine client. Their rule is federation.CheckPolicy.

// ListFederationPolicies lists every policy, each naming its machine
// client by name.
func (s *federationRPC) ListFederationPolicies(ctx context.Context, _ *connect.Request[adminv1.ListFederationPoliciesRequest]) (*connect.Response[adminv1.ListFederationPoliciesResponse], error) {
	policies, err := s.cfg.Store.FederationPolicies(ctx)
	if err != nil {
		return nil, toConnect(err, "federation policies")
	}
	clients, err := s.cfg.Store.ListMachineClients(ctx)
	if err != nil {
		return nil, toConnect(err, "federation policies")
	}
	names := make(map[string]string, len(clients))
	for _, c := range clients {
		names[c.ID] = c.Name
	}
	out := make([]*adminv1.FederationPolicy, 0, len(policies))
	for i := range policies {
		out = append(out, policyProto(&policies[i], names[policies[i].ClientID]))
	}
	return connect.NewResponse(&adminv1.ListFederationPoliciesResponse{Policies: out}), nil
}

// CreateFederationPolicy adds a policy. Its issuer must not be this
// server's own (as configured, or as its database records it).
func (s *federationRPC) CreateFederationPolicy(ctx context.Context, req *connect.Request[adminv1.CreateFederationPolicyRequest]) (*connect.Response[adminv1.CreateFederationPolicyResponse], error) {
	m := req.Msg.GetPolicy()
	maxTTL, err := lifetime("policy.max_ttl_seconds", m.GetMaxTtlSeconds())
	if err != nil {
		return nil, err
	}
	p := &federation.Policy{Name: m.GetName(), Issuer: m.GetIssuer(), Audience: m.GetAudience(), Subject: m.GetSubject(), ClientID: m.GetClient(), MaxTTL: maxTTL}
	served, err := s.cfg.Store.ServedIssuer(ctx)
	if err != nil {
		return nil, toConnect(err, "the served issuer")
	}
	if err := federation.CheckPolicy(p, s.cfg.Issuer, served); err != nil {
		return nil, invalid("%v", err)
	}
	c, err := s.findMachineClient(ctx, m.GetClient())
	if err != nil {
		return nil, err
	}
	sp := &store.FederationPolicy{Name: p.Name, Issuer: p.Issuer, Audience: p.Audience, Subject: p.Subject, ClientID: c.ID, MaxTTL: p.MaxTTL}
	if err := s.cfg.Store.CreateFederationPolicy(ctx, sp); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("a federation policy %q already exists", p.Name))
		}
		return nil, toConnect(err, quoted("federation policy", p.Name))
	}
	if err := s.record(ctx, audit.Event{Type: audit.FederationChanged, ClientID: c.ID, Target: sp.Name, Reason: "added"}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.CreateFederationPolicyResponse{Policy: policyProto(sp, c.Name), ClientDisabled: c.Disabled()}), nil
}

// DeleteFederationPolicy deletes a policy and revokes the tokens issued
// under it.
func (s *federationRPC) DeleteFederationPolicy(ctx context.Context, req *connect.Request[adminv1.DeleteFederationPolicyRequest]) (*connect.Response[adminv1.DeleteFederationPolicyResponse], error) {
	name := req.Msg.GetName()
	if name == "" {
		return nil, invalid("name: name the policy to delete")
	}
	if err := s.cfg.Store.DeleteFederationPolicy(ctx, name); err != nil {
		return nil, toConnect(err, quoted("federation policy", name))
	}
	if err := s.record(ctx, audit.Event{Type: audit.FederationChanged, Target: name, Reason: "deleted"}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.DeleteFederationPolicyResponse{}), nil
}

// policyProto is p as the API shows it; client is its machine client's
// name ("" when it has none any more).
func policyProto(p *store.FederationPolicy, client string) *adminv1.FederationPolicy {
	return &adminv1.FederationPolicy{Name: p.Name, Issuer: p.Issuer, Audience: p.Audience, Subject: p.Subject, Client: client,
		MaxTtlSeconds: seconds(p.MaxTTL), CreatedAt: unix(p.CreatedAt)}
}
