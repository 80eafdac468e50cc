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
// and relying parties nobody here wrote against nsauth's own provider, run
// as an operator runs it (nsauth-server built from this module, apps added
// with `nsauth apps add`, on SQLite and on two PostgreSQL replicas behind a
// load balancer), the user's side played by headless Chromium at nsauth's
// pages:
//
//   - Neosync's web app: its Auth.js configuration on @auth/core from npm
//     (interop/js/neosync-web.mjs), from sign-in to sign-out, with single
//     sign-on to other apps and `nsauth login` in the same browser;
//   - oauth4webapi and openid-client (interop/js/rp-checks.mjs), zitadel/oidc's
//     rp and rs, and x/oauth2, the pages on one replica and the apps' back
//     channel on the other, each ending with a tally per backend
//     "RP checks: N passed of M (library, backend)".
//
// and the same deployments signing people in through connectors (issue 28),
// the upstream's callback served by the other replica than the start:
// Hydra and zitadel's example provider as OpenID Connect upstreams, Debian's
// slapd as an LDAP directory and connectortest's fake GitHub, into
// `nsauth login`, an app and a device login, with NSAUTH_MFA=required, the
// passkey offer and NSAUTH_PASSWORD_LOGIN=false; each ends with a tally
// "connector checks: N passed of M (upstream, backend)".
//
// The JavaScript packages are pinned by interop/js/package-lock.json and
// installed by `npm ci` (.ci/run does it); the tests never download.
//
// The tests carry the build tag "interop" because building Hydra the first
// time takes minutes; .ci/run runs them with
//
//	go test -tags interop ./internal/interop/
//
// They never skip: without a provider (no Go proxy, no PostgreSQL, a broken
// build), node, interop/js/node_modules or Chromium (in CI) they fail.
package interop
