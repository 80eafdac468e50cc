//go:build !unix

package tokenstore_test

import "testing"

func mkfifo(t *testing.T, _ string) { t.Skip("no FIFOs on this platform") }
