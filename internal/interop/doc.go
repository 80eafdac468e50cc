// Package interop tests nsauth against OpenID providers nobody here wrote:
//
//   - Ory Hydra v2, built from source through the Go module proxy by
//     interop/build-hydra.sh (its own module, so this module's go.mod never
//     sees Hydra's dependencies) and run on loopback ports with a
//     PostgreSQL database of its own: the code flow, refresh, revocation,
//     and the device RPCs' refusal (Hydra v2.3.0 has no device
//     authorization endpoint);
//   - zitadel/oidc's example provider (interop/zitadelop, its own module
//     too, built by interop/build-zitadelop.sh) with a device client: the
//     device authorization grant (RFC 8628) end to end, the user's side
//     played at the example's own pages.
//
// The tests carry the build tag "interop" because building Hydra the first
// time takes minutes; .ci/run runs them with
//
//	go test -tags interop ./internal/interop/
//
// They never skip: without a provider (no Go proxy, no PostgreSQL, a broken
// build) they fail.
package interop
