package rpcfailure

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"connectrpc.com/connect"
)

func TestDescribeNeverRepeatsTheServer(t *testing.T) {
	t.Parallel()
	const bait = "LEAKBAIT refresh_token=rt-secret"
	tests := []struct {
		err  error
		want string
	}{
		{connect.NewError(connect.CodeUnauthenticated, errors.New(bait)), "the server did not accept the credentials (unauthenticated)"},
		{connect.NewError(connect.CodePermissionDenied, errors.New(bait)), "permission denied (permission_denied)"},
		{connect.NewError(connect.CodeInvalidArgument, errors.New(bait)), "rejected the request as invalid (invalid_argument)"},
		{connect.NewError(connect.CodeFailedPrecondition, errors.New(bait)), "is authentication enabled?) (failed_precondition)"},
		{connect.NewError(connect.CodeUnimplemented, errors.New(bait)), "does not offer this call"},
		{connect.NewError(connect.CodeUnavailable, errors.New(bait)), "unavailable (unavailable)"},
		{connect.NewError(connect.CodeDeadlineExceeded, errors.New(bait)), "did not answer in time (deadline_exceeded)"},
		{connect.NewError(connect.CodeNotFound, errors.New(bait)), "does not offer this call (is this an nsauth or Neosync API URL?) (not_found)"},
		{connect.NewError(connect.CodeResourceExhausted, errors.New(bait)), "rate limiting"},
		{connect.NewError(connect.CodeInternal, errors.New(bait)), "the server failed (internal)"},
		{errors.New(bait), "the server failed (unknown)"},
		{fmt.Errorf("calling: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), "cannot reach the server: connection refused"},
		{fmt.Errorf("calling: %w", context.DeadlineExceeded), "the server did not answer in time"},
		{fmt.Errorf("calling: %w", context.Canceled), "canceled"},
	}
	for _, tt := range tests {
		got := Describe(tt.err, "")
		if !strings.Contains(got, tt.want) {
			t.Errorf("Describe(%v) = %q, want it to say %q", tt.err, got, tt.want)
		}
		if strings.Contains(got, "LEAKBAIT") || strings.Contains(got, "rt-secret") {
			t.Errorf("Describe(%v) = %q repeats the server", tt.err, got)
		}
	}
}
