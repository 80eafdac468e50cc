// Package interop tests nsauth against an OpenID provider nobody here wrote:
// Ory Hydra v2, built from source through the Go module proxy by
// interop/build-hydra.sh (its own module, so this module's go.mod never sees
// Hydra's dependencies) and run on loopback ports with a PostgreSQL
// database of its own.
//
// The tests carry the build tag "interop" because building Hydra the first
// time takes minutes; .ci/run runs them with
//
//	go test -tags interop ./internal/interop/
//
// They never skip: without Hydra (no Go proxy, no PostgreSQL, a broken
// build) they fail.
package interop
