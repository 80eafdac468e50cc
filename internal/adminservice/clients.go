package adminservice

import (
	"context"
	"errors"
	"strings"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
)

// Machine clients: programs that obtain tokens for themselves with the
// client-credentials grant. A client is named by its name or its client
// id; its secret is returned once, when created or rotated, and only its
// digest is stored.

// ListMachineClients lists every machine client, by name.
func (s *clientsRPC) ListMachineClients(ctx context.Context, _ *connect.Request[adminv1.ListMachineClientsRequest]) (*connect.Response[adminv1.ListMachineClientsResponse], error) {
	clients, err := s.cfg.Store.ListMachineClients(ctx)
	if err != nil {
		return nil, toConnect(err, "machine clients")
	}
	out := make([]*adminv1.MachineClient, 0, len(clients))
	for i := range clients {
		out = append(out, machineClientProto(&clients[i]))
	}
	return connect.NewResponse(&adminv1.ListMachineClientsResponse{Clients: out}), nil
}

// CreateMachineClient creates a machine client and returns its secret,
// the one time it is shown.
func (s *clientsRPC) CreateMachineClient(ctx context.Context, req *connect.Request[adminv1.CreateMachineClientRequest]) (*connect.Response[adminv1.CreateMachineClientResponse], error) {
	name, err := store.NormalizeClientName(req.Msg.GetName())
	if err != nil {
		return nil, invalid("name: %v", err)
	}
	ttl, err := lifetime("token_ttl_seconds", req.Msg.GetTokenTtlSeconds())
	if err != nil {
		return nil, err
	}
	secret := store.NewMachineClientSecret()
	c := &store.MachineClient{Name: name, SecretHash: store.HashSecret(secret), Scopes: req.Msg.GetScopes(), TokenTTL: ttl}
	if err := s.cfg.Store.CreateMachineClient(ctx, c); err != nil {
		return nil, toConnect(err, quoted("machine client", name))
	}
	if err := s.clientChanged(ctx, c, "added"); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.CreateMachineClientResponse{Client: machineClientProto(c), ClientSecret: secret}), nil
}

// RotateMachineClientSecret replaces a client's secret, revoking its
// tokens, and returns the new one, the one time it is shown.
func (s *clientsRPC) RotateMachineClientSecret(ctx context.Context, req *connect.Request[adminv1.RotateMachineClientSecretRequest]) (*connect.Response[adminv1.RotateMachineClientSecretResponse], error) {
	c, err := s.findMachineClient(ctx, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	secret := store.NewMachineClientSecret()
	if err := s.cfg.Store.SetMachineClientSecret(ctx, c.ID, store.HashSecret(secret)); err != nil {
		return nil, toConnect(err, quoted("machine client", c.Name))
	}
	// Unrecorded, the new secret is never shown: the client stays locked
	// out until a rotation is recorded.
	if err := s.clientChanged(ctx, c, "secret_rotated"); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.RotateMachineClientSecretResponse{ClientId: c.ID, ClientSecret: secret, Name: c.Name}), nil
}

// SetMachineClientDisabled disables a client, revoking its tokens, or
// enables it.
func (s *clientsRPC) SetMachineClientDisabled(ctx context.Context, req *connect.Request[adminv1.SetMachineClientDisabledRequest]) (*connect.Response[adminv1.SetMachineClientDisabledResponse], error) {
	c, err := s.findMachineClient(ctx, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	disable := req.Msg.GetDisabled()
	changed := c.Disabled() != disable
	if err := s.cfg.Store.SetMachineClientDisabled(ctx, c.ID, disable); err != nil {
		return nil, toConnect(err, quoted("machine client", c.Name))
	}
	action := "enabled"
	if disable {
		action = "disabled"
	}
	if err := s.clientChanged(ctx, c, action); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.SetMachineClientDisabledResponse{Changed: changed, Name: c.Name}), nil
}

// DeleteMachineClient deletes a client, its federation policies and its
// tokens.
func (s *clientsRPC) DeleteMachineClient(ctx context.Context, req *connect.Request[adminv1.DeleteMachineClientRequest]) (*connect.Response[adminv1.DeleteMachineClientResponse], error) {
	c, err := s.findMachineClient(ctx, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.DeleteMachineClient(ctx, c.ID); err != nil {
		return nil, toConnect(err, quoted("machine client", c.Name))
	}
	if err := s.clientChanged(ctx, c, "deleted"); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.DeleteMachineClientResponse{Name: c.Name}), nil
}

// findMachineClient finds a machine client by name, or else by client id.
func (s *clientsRPC) findMachineClient(ctx context.Context, ref string) (*store.MachineClient, error) {
	if ref == "" {
		return nil, invalid("name: name the machine client (its name or client id)")
	}
	c, err := s.cfg.Store.MachineClientByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) && strings.HasPrefix(ref, store.MachineClientIDPrefix) {
		c, err = s.cfg.Store.MachineClientByID(ctx, ref)
	}
	if err != nil {
		return nil, toConnect(err, quoted("machine client", strings.ToLower(ref)))
	}
	return c, nil
}

// clientChanged records the audit.ClientChanged event of action on c. The
// secret is never part of it.
func (s *clientsRPC) clientChanged(ctx context.Context, c *store.MachineClient, action string) error {
	return s.record(ctx, audit.Event{Type: audit.ClientChanged, Subject: c.ID, ClientID: c.ID, Target: c.Name, Reason: action})
}

// lifetime is a lifetime given in seconds (field names it): never
// negative, zero for the default.
func lifetime(field string, sec int64) (time.Duration, error) {
	if sec < 0 {
		return 0, invalid("%s cannot be negative", field)
	}
	return duration(sec), nil
}

// machineClientProto is c as the API shows it, never the secret's digest.
func machineClientProto(c *store.MachineClient) *adminv1.MachineClient {
	return &adminv1.MachineClient{Id: c.ID, Name: c.Name, Scopes: c.Scopes, TokenTtlSeconds: seconds(c.TokenTTL),
		CreatedAt: unix(c.CreatedAt), UpdatedAt: unix(c.UpdatedAt), DisabledAt: unix(c.DisabledAt)}
}
