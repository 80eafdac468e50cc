#!/usr/bin/env bash
# build-tools.sh builds the chart's checking tools from deploy/kube/tools/go.mod
# (helm, kubeconform, kube-schemagen, kube-dryrun) into a cache directory,
# generates kubeconform's strict schemas from the OpenAPI spec in the
# k8s.io/kubernetes module, and prints the directory on stdout: its bin/
# holds the tools and schemas/ the schemas. A second run with the same
# go.mod, go.sum, sources and Go version prints the cached directory at once.
#
# Environment:
#   NSAUTH_KUBE_CACHE  cache directory (default: nsauth-kube beside $(go env GOCACHE))
set -euo pipefail
cd "$(dirname "$0")/tools"

# The release whose OpenAPI spec the schemas come from: the kube-apiserver
# the dry run uses (deploy/kube/apiserver/go.mod).
k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' ../apiserver/go.mod)
[ -n "$k8s_version" ] || { echo "no k8s.io/kubernetes requirement in deploy/kube/apiserver/go.mod" >&2; exit 1; }

cache="${NSAUTH_KUBE_CACHE:-$(dirname "$(go env GOCACHE)")/nsauth-kube}"
key=$( { cat go.mod go.sum; find cmd -name '*.go' ! -name '*_test.go' | sort | xargs cat; go version; echo "$k8s_version"; } | sha256sum | cut -c1-16)
out="$cache/tools-$key"

if [ ! -f "$out/done" ]; then
  rm -rf "$out"
  mkdir -p "$out/bin"
  echo "building helm, kubeconform, kube-schemagen and kube-dryrun into $out/bin" >&2
  start=$(date +%s)
  CGO_ENABLED=0 go build -trimpath -o "$out/bin/" \
    helm.sh/helm/v3/cmd/helm github.com/yannh/kubeconform/cmd/kubeconform ./cmd/kube-schemagen ./cmd/kube-dryrun
  echo "built the tools in $(( $(date +%s) - start ))s" >&2
  # The spec is in the k8s.io/kubernetes module zip (read-only in GOMODCACHE).
  k8s_dir=$(cd ../apiserver && go mod download -json "k8s.io/kubernetes@$k8s_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  spec="$k8s_dir/api/openapi-spec/swagger.json"
  [ -f "$spec" ] || { echo "no OpenAPI spec at $spec" >&2; exit 1; }
  "$out/bin/kube-schemagen" -spec "$spec" -version "${k8s_version#v}" -out "$out/schemas" >&2
  touch "$out/done"
fi
for tool in helm kubeconform kube-schemagen kube-dryrun; do
  [ -x "$out/bin/$tool" ] || { echo "$out/bin/$tool is missing" >&2; exit 1; }
done
echo "$out"
