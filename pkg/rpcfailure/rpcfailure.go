// Package rpcfailure says, for people, why a call to an AuthService server
// (nsauth's or Neosync's mgmt.v1alpha1.AuthService) failed, in words safe
// to print and log: it names the Connect code and what it usually means,
// and never repeats the server's own message, which a misbehaving server
// could fill with anything, tokens included. The nsauth terminal client and
// package tokensource use it; so can any other client of the API.
package rpcfailure

import (
	"context"
	"errors"
	"net"

	"connectrpc.com/connect"
)

// Describe summarizes err, the failure of the call named call (such as
// "RefreshCli"; empty for "this call"), and ends with its Connect code. It
// never repeats what the server said: a misbehaving or hostile server could
// put anything in an error message, tokens included. Connection failures,
// which happen on this side, are described as they are.
func Describe(err error, call string) string {
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
	if call == "" {
		call = "this call"
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
	case connect.CodeUnimplemented, connect.CodeNotFound:
		text = "the server does not offer " + call + " (is this an nsauth or Neosync API URL?)"
	case connect.CodeUnavailable:
		text = "the server or its identity provider is unavailable"
	case connect.CodeDeadlineExceeded:
		text = "the server did not answer in time"
	case connect.CodeResourceExhausted:
		text = "the server is rate limiting; try again later"
	default:
		text = "the server failed"
	}
	return text + " (" + code.String() + ")"
}
