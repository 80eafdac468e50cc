// Package faults holds the fault test of the built-in provider's replicas
// (issue 11): two `nsauth serve` processes on one PostgreSQL database, each
// reaching it through a TCP proxy the test controls, driven by clients that
// loop RefreshCli and CheckToken while one replica is killed with SIGKILL
// and restarted and the database connections are cut and restored.
//
// It has no code of its own, only the test, so it can be run alone:
//
//	go test -run TestReplicaFaults -v ./internal/faults/
//
// NSAUTH_FAULTS_DURATION (a Go duration, default 2m) sets how long the
// clients loop; set it longer for a soak run on a developer's machine.
package faults
