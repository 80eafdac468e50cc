package authservice

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/upstream"
)

// DeviceBroker is a [Broker] that can also run device logins (RFC 8628).
// *upstream.Provider implements it; a Broker that does not makes both
// device RPCs answer FailedPrecondition.
type DeviceBroker interface {
	StartDevice(ctx context.Context, scope string) (*upstream.DeviceAuthorization, error)
	PollDevice(ctx context.Context, deviceCode string) (*upstream.Token, error)
}

// DefaultDeviceScope is what StartDeviceLogin asks for when the client
// names no scope.
const DefaultDeviceScope = "openid profile email offline_access"

// RFC 8628 §3.5's error codes, as DeviceLoginError.error carries them.
const (
	deviceErrPending  = "authorization_pending"
	deviceErrSlowDown = "slow_down"
	deviceErrDenied   = "access_denied"
	deviceErrExpired  = "expired_token"
)

// StartDeviceLogin starts a device login at the provider with the
// server's client, and hands its codes to the client.
func (s *Service) StartDeviceLogin(ctx context.Context, req *connect.Request[mgmtv1alpha1.StartDeviceLoginRequest]) (*connect.Response[mgmtv1alpha1.StartDeviceLoginResponse], error) {
	broker, err := s.deviceBroker()
	if err != nil {
		return nil, err
	}
	scope := req.Msg.GetScope()
	if scope == "" {
		scope = DefaultDeviceScope
	}
	if scope, err = normalizeScope(scope, s.scopes); err != nil {
		return nil, invalidArgument(err)
	}
	da, err := broker.StartDevice(ctx, scope)
	var re *upstream.RejectedError
	switch {
	case errors.As(err, &re) && re.Code == "invalid_scope":
		s.logger.WarnContext(ctx, "provider call failed", "method", "StartDeviceLogin", "code", connect.CodeInvalidArgument.String(), "error", err)
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("the identity provider refused the requested scope"))
	case errors.As(err, &re):
		// The server's client may not start device logins (unauthorized_client,
		// invalid_client): the server's configuration, not the caller's
		// doing.
		s.logger.WarnContext(ctx, "provider call failed", "method", "StartDeviceLogin", "code", connect.CodeFailedPrecondition.String(), "error", err)
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			errors.New("the identity provider refused to start a device login for this server's client; is the device grant allowed for it?"))
	case err != nil:
		return nil, s.deviceError(ctx, "StartDeviceLogin", err)
	}
	s.polls.started(da.DeviceCode, da.Interval, da.ExpiresIn)
	resp := &mgmtv1alpha1.StartDeviceLoginResponse{
		DeviceCode:      da.DeviceCode,
		UserCode:        da.UserCode,
		VerificationUri: da.VerificationURI,
		ExpiresIn:       da.ExpiresIn,
		Interval:        da.Interval,
	}
	if da.VerificationURIComplete != "" {
		resp.VerificationUriComplete = &da.VerificationURIComplete
	}
	return connect.NewResponse(resp), nil
}

// PollDeviceLogin asks the provider, once, whether the user approved a
// device login. A poll that comes before the login's interval is over is
// answered slow_down without asking the provider.
func (s *Service) PollDeviceLogin(ctx context.Context, req *connect.Request[mgmtv1alpha1.PollDeviceLoginRequest]) (*connect.Response[mgmtv1alpha1.PollDeviceLoginResponse], error) {
	broker, err := s.deviceBroker()
	if err != nil {
		return nil, err
	}
	deviceCode := req.Msg.GetDeviceCode()
	if err := requireVisibleASCII("device_code", deviceCode, upstream.MaxDeviceCodeBytes); err != nil {
		return nil, invalidArgument(err)
	}
	ok, interval := s.polls.admit(deviceCode)
	if !ok {
		return nil, deviceLoginError(connect.CodeResourceExhausted, deviceErrSlowDown, interval)
	}
	tok, err := broker.PollDevice(ctx, deviceCode)
	switch {
	case err == nil:
		s.polls.forget(deviceCode)
		return connect.NewResponse(&mgmtv1alpha1.PollDeviceLoginResponse{AccessToken: toProto(tok)}), nil
	case errors.Is(err, upstream.ErrAuthorizationPending):
		return nil, deviceLoginError(connect.CodeUnavailable, deviceErrPending, interval)
	case errors.Is(err, upstream.ErrSlowDown):
		return nil, deviceLoginError(connect.CodeResourceExhausted, deviceErrSlowDown, s.polls.slowDown(deviceCode))
	case errors.Is(err, upstream.ErrAccessDenied):
		s.polls.forget(deviceCode)
		return nil, deviceLoginError(connect.CodePermissionDenied, deviceErrDenied, 0)
	case errors.Is(err, upstream.ErrExpiredToken):
		s.polls.forget(deviceCode)
		return nil, deviceLoginError(connect.CodeFailedPrecondition, deviceErrExpired, 0)
	case errors.Is(err, upstream.ErrRejected), errors.Is(err, upstream.ErrNoDeviceEndpoint):
		s.polls.forget(deviceCode)
	}
	return nil, s.deviceError(ctx, "PollDeviceLogin", err)
}

// deviceBroker returns the broker's device side, or the refusal when
// there is none.
func (s *Service) deviceBroker() (DeviceBroker, error) {
	if err := s.requireEnabled(); err != nil {
		return nil, err
	}
	b, ok := s.cfg.Broker.(DeviceBroker)
	if !ok {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("this server's identity provider does not offer device login"))
	}
	return b, nil
}

// deviceError maps a failure of the device calls: a provider without a
// device endpoint is FailedPrecondition, the rest as for every provider
// call.
func (s *Service) deviceError(ctx context.Context, method string, err error) error {
	if errors.Is(err, upstream.ErrNoDeviceEndpoint) {
		return connect.NewError(connect.CodeFailedPrecondition,
			errors.New("the identity provider does not offer device login: its discovery document has no device_authorization_endpoint"))
	}
	return s.providerError(ctx, method, err)
}

// deviceLoginError is the answer to a poll that brought no tokens: code as
// the proto's DeviceLoginError comment fixes it, a fixed message, and the
// detail naming RFC 8628's answer (with the interval to keep, for pending
// and slow_down, also as Retry-After for slow_down).
func deviceLoginError(code connect.Code, rfcError string, interval int64) error {
	var msg string
	switch rfcError {
	case deviceErrPending:
		msg = fmt.Sprintf("the login has not been approved yet; poll again in %d s", interval)
	case deviceErrSlowDown:
		msg = fmt.Sprintf("polling too fast; poll again in %d s", interval)
	case deviceErrDenied:
		msg = "the login was denied at the identity provider"
	case deviceErrExpired:
		msg = "the device code expired before the login was approved; start a new device login"
	}
	cerr := connect.NewError(code, errors.New(msg))
	if detail, err := connect.NewErrorDetail(&mgmtv1alpha1.DeviceLoginError{Error: rfcError, Interval: interval}); err == nil {
		cerr.AddDetail(detail)
	}
	if rfcError == deviceErrSlowDown {
		cerr.Meta().Set("Retry-After", strconv.FormatInt(interval, 10))
	}
	return cerr
}
