#!/usr/bin/env bash
# build-hydra.sh builds Ory Hydra from interop/go.mod (through the Go module
# proxy, from source) into a cache directory and prints the binary's path on
# stdout. A second run with the same go.mod, go.sum, Go version and tags
# prints the cached path at once.
#
# Hydra is built without the sqlite tag (no cgo) by default: the interop tests
# run it on the PostgreSQL that CI already starts, which is what a deployment
# would use. NSAUTH_HYDRA_TAGS=sqlite,sqlite_omit_load_extension (the tags of
# Hydra's own Makefile) builds it with cgo and SQLite, for the comparison of
# scripts/bench-hydra.sh; each set of tags has its own cached binary.
#
# Environment:
#   NSAUTH_HYDRA_CACHE  cache directory (default: nsauth-hydra beside $(go env GOCACHE))
#   NSAUTH_HYDRA_TAGS   build tags (default: none); a sqlite tag turns cgo on
set -euo pipefail
cd "$(dirname "$0")"

tags="${NSAUTH_HYDRA_TAGS:-}"
cgo=0
case ",$tags," in *,sqlite,*) cgo=1 ;; esac
cache="${NSAUTH_HYDRA_CACHE:-$(dirname "$(go env GOCACHE)")/nsauth-hydra}"
key=$( { cat go.mod go.sum; go version; echo "tags=$tags"; } | sha256sum | cut -c1-16)
bin="$cache/$key/hydra"

if [ ! -x "$bin" ]; then
  mkdir -p "$cache/$key"
  tmp=$(mktemp "$cache/$key/hydra.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  echo "building Ory Hydra into $bin (slow the first time)" >&2
  start=$(date +%s)
  CGO_ENABLED=$cgo go build -trimpath -tags "$tags" -o "$tmp" github.com/ory/hydra/v2
  chmod 0755 "$tmp"
  mv -f "$tmp" "$bin"
  trap - EXIT
  echo "built Ory Hydra in $(( $(date +%s) - start ))s" >&2
fi
"$bin" version >/dev/null 2>&1 || { echo "$bin does not run" >&2; exit 1; }
echo "$bin"
