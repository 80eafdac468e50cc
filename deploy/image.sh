#!/usr/bin/env bash
# Build nsauth's container image, for linux/amd64 and linux/arm64, as an OCI
# image layout archive holding one image index, without a container engine
# and without pulling a base image:
#
#   bash deploy/image.sh OUT.tar      then: podman load -i OUT.tar
#
# podman load keeps the image of the machine's platform; `podman pull
# --platform linux/arm64 oci-archive:OUT.tar` takes another one. Each image
# holds a static nsauth-server (CGO_ENABLED=0; SQLite is modernc's, pure Go)
# for its architecture, with nsauth as a link to it, Debian's CA
# certificates (/etc/ssl/certs/ca-certificates.crt from the ca-certificates
# package of the machine that builds), /etc/passwd and /etc/group with the
# user nonroot (65532), and /data owned by it. It runs `nsauth-server serve`
# as 65532, listening on 0.0.0.0:8080, with NSAUTH_DATA_DIR=/data; give it
# NSAUTH_ISSUER.
#
# Two builds of one commit give byte-identical archives: -trimpath, no build
# id, every time in the image set to the commit's time, fixed owners and
# modes, sorted entries. The labels org.opencontainers.image.version and
# .revision come from the binaries' build information, as `nsauth version`
# does. Environment: NSAUTH_IMAGE_TAG (default localhost/nsauth:latest). It
# prints the tag, the index's digest, version and revision, and for each
# architecture its image's digest (of its manifest) and id (of its config):
# amd64.digest=, amd64.id=, arm64.digest=, arm64.id=.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: bash deploy/image.sh OUT.tar" >&2; exit 2; }
out=$(realpath -m "$1")
cd "$(dirname "$0")/.."

certs=/etc/ssl/certs/ca-certificates.crt
[ -s "$certs" ] || { echo "image.sh: $certs is missing: install Debian's ca-certificates package" >&2; exit 1; }
commit=$(git rev-parse --verify HEAD) || { echo "image.sh: run it in a git checkout of nsauth" >&2; exit 1; }
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "image.sh: warning: uncommitted changes are not in the image: it is built from commit $commit" >&2
fi
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct "$commit")}
archs=(amd64 arm64)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The binaries are built from a clone of the commit: the image is the
# commit's whatever the working tree holds, and go build stamps the commit
# into it (it does not in a `git worktree`, whose .git is a file).
# -buildvcs=true overrides a GOFLAGS=-buildvcs=false; -trimpath and
# -buildid= keep this machine's paths and build ids out.
git clone --quiet --shared --no-checkout . "$work/src"
git -C "$work/src" checkout --quiet --detach "$commit"
binaries=()
for arch in "${archs[@]}"; do
  (cd "$work/src" && CGO_ENABLED=0 GOOS=linux GOARCH="$arch" \
    go build -trimpath -buildvcs=true -ldflags='-s -w -buildid=' -o "$work/$arch/nsauth-server" ./cmd/nsauth-server)
  binaries+=(-binary "$arch=$work/$arch/nsauth-server")
done
(cd "$work/src/deploy/imagebuild" && go run . "${binaries[@]}" -ca-certificates "$certs" -epoch "$epoch" \
  -tag "${NSAUTH_IMAGE_TAG:-localhost/nsauth:latest}" -o "$out")
