// Package e2e holds end-to-end tests of `nsauth serve`: the real command,
// started in-process on a loopback port, driven through the generated
// clients over every protocol, against the fake provider in
// internal/oidctest.
package e2e
