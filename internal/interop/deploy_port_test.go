//go:build interop

package interop_test

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestReplicaStartsAgainWhenItsPortIsTaken: the address chosen for a
// replica is taken by another socket before the replica listens (as a
// client connection's local port may be, with many tests at once); the
// replica is started again on another port and the deployment serves
// under it. Without the harness's retry the test fails at startReplica.
func TestReplicaStartsAgainWhenItsPortIsTaken(t *testing.T) {
	t.Parallel()
	d, _ := newDeployment(t, buildNsauthServer(t), "sqlite")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	d.setReplica(t, 0, "http://"+addr)
	d.Issuer = d.Replicas[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d.startReplica(t, ctx, 0, addr)
	if d.Replicas[0] == "http://"+addr || d.Issuer != d.Replicas[0] {
		t.Fatalf("replica %s, issuer %s: not moved off the taken %s", d.Replicas[0], d.Issuer, addr)
	}
	var disc struct {
		Issuer string `json:"issuer"`
	}
	getJSONOrFail(t, d.Issuer+"/.well-known/openid-configuration", &disc)
	if disc.Issuer != d.Issuer {
		t.Errorf("the replica started again serves issuer %q, want %q", disc.Issuer, d.Issuer)
	}
}
