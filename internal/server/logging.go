package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
)

// deviceLoginErrorType is the type name of PollDeviceLogin's error detail.
var deviceLoginErrorType = string((&mgmtv1alpha1.DeviceLoginError{}).ProtoReflect().Descriptor().FullName())

// devicePending reports whether err is a device login's "not approved
// yet", which a client hears every few seconds until its user decides: the
// normal course of a login, logged at debug level like a success rather
// than as a failure.
func devicePending(err error) bool {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return false
	}
	for _, d := range ce.Details() {
		if d.Type() == deviceLoginErrorType {
			return true
		}
	}
	return false
}

// loggingInterceptor writes one line per call: procedure, protocol, code
// and duration. Request and response contents, headers and error details
// from the client are never logged; they may hold tokens.
type loggingInterceptor struct{ logger *slog.Logger }

func (i loggingInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		resp, err := next(ctx, req)
		i.log(ctx, req.Spec().Procedure, req.Peer().Protocol, start, err)
		return resp, err
	}
}

func (i loggingInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i loggingInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		i.log(ctx, conn.Spec().Procedure, conn.Peer().Protocol, start, err)
		return err
	}
}

func (i loggingInterceptor) log(ctx context.Context, procedure, protocol string, start time.Time, err error) {
	level, code := slog.LevelDebug, "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
		switch connect.CodeOf(err) {
		case connect.CodeInternal, connect.CodeUnknown, connect.CodeDataLoss:
			level = slog.LevelError
		case connect.CodeUnavailable:
			level = slog.LevelInfo
			if devicePending(err) {
				level = slog.LevelDebug
			}
		default:
			level = slog.LevelInfo
		}
	}
	if !i.logger.Enabled(ctx, level) {
		return // the common case: successful calls logged at debug level
	}
	i.logger.Log(ctx, level, "rpc", "procedure", procedure, "protocol", protocol, "code", code, "duration", time.Since(start))
}
