//go:build nsauthsoak

// This file is only in the soak test's build of nsauth-server (go build
// -tags nsauthsoak); internal/faults checks that the shipped build has
// none of it.

package main

import (
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nsauth/nsauth/internal/cli"
)

// soakClockFileEnv names a file holding a Go duration that the server's
// clock runs ahead of the machine's: the soak test writes it to make the
// clock jump forward.
const soakClockFileEnv = "NSAUTH_SOAK_CLOCK_FILE"

// soakClockPoll is how often the file is read again.
const soakClockPoll = 50 * time.Millisecond

func init() {
	adjustApp = soakClock
}

// soakClock replaces the app's clock by the machine's plus the offset in
// the file named by NSAUTH_SOAK_CLOCK_FILE, read again every 50 ms; an
// unreadable or malformed file leaves the offset as it was.
func soakClock(a *cli.App) {
	path := os.Getenv(soakClockFileEnv)
	if path == "" {
		return
	}
	var offset atomic.Int64
	read := func() {
		b, err := os.ReadFile(path)
		if err != nil {
			return
		}
		if d, err := time.ParseDuration(strings.TrimSpace(string(b))); err == nil {
			offset.Store(int64(d))
		}
	}
	read()
	go func() {
		for range time.Tick(soakClockPoll) {
			read()
		}
	}()
	a.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
}
