package adminservice

import (
	"context"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
)

// WhoAmI names the caller as the service sees it: the actor its audit
// records name.
func (s *callerRPC) WhoAmI(ctx context.Context, _ *connect.Request[adminv1.WhoAmIRequest]) (*connect.Response[adminv1.WhoAmIResponse], error) {
	c, _ := CallerFrom(ctx)
	return connect.NewResponse(&adminv1.WhoAmIResponse{Actor: c.Actor, Subject: c.Subject, Machine: c.Machine}), nil
}
