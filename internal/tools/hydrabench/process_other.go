//go:build !linux

package main

import "os/exec"

// dieWithHarness does nothing where the system cannot tie a child's life
// to its parent's: stop the servers by stopping the harness normally.
func dieWithHarness(*exec.Cmd) {}
