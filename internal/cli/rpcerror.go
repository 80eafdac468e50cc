package cli

import (
	"context"
	"errors"
	"net"

	"connectrpc.com/connect"
)

// describeError summarizes an RPC error for people. It never repeats what
// the server said: a misbehaving or hostile server could put anything in
// an error message, tokens included. Connection failures, which happen on
// this side, are described as they are.
func describeError(err error) string {
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return "cannot reach the server: " + opErr.Err.Error()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "the server did not answer in time"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	code := connect.CodeOf(err)
	var text string
	switch code {
	case connect.CodeUnauthenticated:
		text = "the server did not accept the credentials"
	case connect.CodePermissionDenied:
		text = "permission denied"
	case connect.CodeInvalidArgument:
		text = "the server rejected the request as invalid"
	case connect.CodeFailedPrecondition:
		text = "the server cannot do this in its current configuration (is authentication enabled?)"
	case connect.CodeUnimplemented:
		text = "the server does not implement this call (is this an nsauth or Neosync API URL?)"
	case connect.CodeUnavailable:
		text = "the server or its identity provider is unavailable"
	case connect.CodeDeadlineExceeded:
		text = "the server did not answer in time"
	case connect.CodeNotFound:
		text = "not found (is this an nsauth or Neosync API URL?)"
	case connect.CodeResourceExhausted:
		text = "the server is rate limiting; try again later"
	default:
		text = "the server failed"
	}
	return text + " (" + code.String() + ")"
}
