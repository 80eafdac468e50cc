#!/usr/bin/env bash
# build-apiserver.sh builds kube-dryrun-apiserver (kube-apiserver and an
# embedded etcd in one program, from deploy/kube/apiserver/go.mod through the
# Go module proxy) into a cache directory and prints the binary's path on
# stdout. A second run with the same go.mod, go.sum, sources and Go version
# prints the cached path at once. The first build takes about 6 minutes on
# 2 cores.
#
# Environment:
#   NSAUTH_KUBE_CACHE  cache directory (default: nsauth-kube beside $(go env GOCACHE))
set -euo pipefail
cd "$(dirname "$0")/apiserver"

cache="${NSAUTH_KUBE_CACHE:-$(dirname "$(go env GOCACHE)")/nsauth-kube}"
key=$( { cat go.mod go.sum ./*.go; go version; } | sha256sum | cut -c1-16)
bin="$cache/$key/kube-dryrun-apiserver"

if [ ! -x "$bin" ]; then
  mkdir -p "$cache/$key"
  tmp=$(mktemp "$cache/$key/kube-dryrun-apiserver.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  echo "building kube-apiserver and etcd into $bin (about 6 minutes the first time)" >&2
  start=$(date +%s)
  CGO_ENABLED=0 go build -trimpath -o "$tmp" .
  chmod 0755 "$tmp"
  mv -f "$tmp" "$bin"
  trap - EXIT
  echo "built kube-apiserver and etcd in $(( $(date +%s) - start ))s" >&2
fi
"$bin" -h >/dev/null 2>&1 || [ $? -eq 2 ] || { echo "$bin does not run" >&2; exit 1; }
echo "$bin"
