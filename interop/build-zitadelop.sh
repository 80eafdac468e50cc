#!/usr/bin/env bash
# build-zitadelop.sh builds the zitadel/oidc example provider that the
# device-flow interop tests run (interop/zitadelop, its own module so that
# neither nsauth's go.mod nor Hydra's interop/go.mod sees its dependencies)
# into a cache directory, and prints the binary's path on stdout. A second
# run with the same sources and Go version prints the cached path at once.
#
# Environment:
#   NSAUTH_ZITADELOP_CACHE  cache directory (default: nsauth-zitadelop beside $(go env GOCACHE))
set -euo pipefail
cd "$(dirname "$0")/zitadelop"

cache="${NSAUTH_ZITADELOP_CACHE:-$(dirname "$(go env GOCACHE)")/nsauth-zitadelop}"
key=$( { cat go.mod go.sum ./*.go; go version; } | sha256sum | cut -c1-16)
bin="$cache/$key/zitadelop"

if [ ! -x "$bin" ]; then
  mkdir -p "$cache/$key"
  tmp=$(mktemp "$cache/$key/zitadelop.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  echo "building the zitadel/oidc example provider into $bin" >&2
  CGO_ENABLED=0 go build -trimpath -o "$tmp" .
  chmod 0755 "$tmp"
  mv -f "$tmp" "$bin"
  trap - EXIT
fi
"$bin" -h >/dev/null 2>&1 || { echo "$bin does not run" >&2; exit 1; }
echo "$bin"
