package authservice

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
)

// StartDeviceLogin is not implemented yet: the API of issue 12 is declared
// so that the provider, the broker and the client can be built against it.
func (s *Service) StartDeviceLogin(context.Context, *connect.Request[mgmtv1alpha1.StartDeviceLoginRequest]) (*connect.Response[mgmtv1alpha1.StartDeviceLoginResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, errors.New("device login is not implemented yet"))
}

// PollDeviceLogin is not implemented yet (see StartDeviceLogin).
func (s *Service) PollDeviceLogin(context.Context, *connect.Request[mgmtv1alpha1.PollDeviceLoginRequest]) (*connect.Response[mgmtv1alpha1.PollDeviceLoginResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, errors.New("device login is not implemented yet"))
}
