// Package appscmd is nsauth-server's `apps` and `sessions` commands: the
// applications that people log in to with the built-in provider (their
// settings, secrets and users' consents), and the browser sessions that
// sign people in to them ([NewAppsCommand], [NewSessionsCommand]).
package appscmd
