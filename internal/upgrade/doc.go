// Package upgrade holds the rolling-upgrade test of the built-in provider
// (issue 26): an nsauth-server built from git history, of the schema
// before the newest migration, serves on a PostgreSQL database while
// today's nsauth-server starts on the same database and migrates it. The
// older one keeps serving what it had (CheckToken, RefreshCli, logins),
// and once restarted it refuses the newer schema with a message that says
// to upgrade nsauth.
//
// It has no code of its own, only the test, so it can be run alone:
//
//	go test -run TestRollingUpgrade -v ./internal/upgrade/
//
// It needs the clone's history (git) and the go command; without history
// it skips, except in CI ($CI=true), where it fails.
package upgrade
