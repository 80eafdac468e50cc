package e2e_test

import (
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
)

// healthStatus asks grpc.health.v1.Health/Check over gRPC.
func healthStatus(t *testing.T, base string) grpchealth.Status {
	t.Helper()
	resp, err := grpchealth.NewClient(h2cClient(), base, connect.WithGRPC()).Check(t.Context(), &grpchealth.CheckRequest{})
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	return resp.Status
}
