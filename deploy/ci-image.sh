#!/usr/bin/env bash
# The container image's CI step (run by .ci/run; runs alone too, as root on
# Debian: bash deploy/ci-image.sh). It builds the image index (linux/amd64
# and linux/arm64) twice and wants the same bytes, loads it into Debian's
# podman (which keeps the amd64 image) and checks, against the running
# container: the issuer rule, /healthz, /readyz, GetAuthStatus, that the
# server runs as 65532, that `nsauth version` in it says what the labels
# say, a whole login through the built-in provider with a volume on /data,
# a clean drain on `podman stop`, and a second start on the same volume.
# Any failure prints the container's logs. Then it has podman take the
# arm64 image (podman pull --arch arm64 oci-archive:), and takes the arm64
# nsauth-server out of the archive and runs it under qemu-aarch64 (Debian's
# qemu-user, no binfmt needed): `nsauth version`, and a short serve with
# /readyz, GetAuthStatus and a clean stop. It removes every container,
# volume and image it made.
#
# podman runs with --runtime runc (on these machines crun cannot raise the
# limits and the cgroup mode wants runc) and --ulimit nofile=1024:4096
# --ulimit nproc=4096:4096: without them runc fails with "error setting
# rlimit type 7: operation not permitted".
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { printf '\nIMAGE CHECK FAILED: %s\n' "$*" >&2; exit 1; }
note() { printf -- '--- %s\n' "$*"; }

# The host port the container's 8080 is published on (loopback only).
port=${NSAUTH_IMAGE_TEST_PORT:-18080}
api="http://127.0.0.1:$port"
podman_run=(podman run --runtime runc --ulimit nofile=1024:4096 --ulimit nproc=4096:4096)

if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  note "installing Debian's podman and runc"
  (apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 podman runc >/dev/null) \
    || fail "could not install podman and runc from Debian's packages (apt-get install podman runc, as root)"
fi
if ! command -v qemu-aarch64 >/dev/null 2>&1; then
  note "installing Debian's qemu-user (qemu-aarch64)"
  (apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 qemu-user >/dev/null) \
    || fail "could not install qemu-user from Debian's packages (apt-get install qemu-user, as root)"
fi
podman --version
runc --version | head -n1
qemu-aarch64 --version | head -n1
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  fail "127.0.0.1:$port is in use: stop what listens there, or set NSAUTH_IMAGE_TEST_PORT"
fi

note "the image tools module (deploy/imagebuild)"
(cd deploy/imagebuild && go mod download && go mod verify && go mod tidy -diff && go vet ./... \
  && go tool -modfile=../../tools/go.mod staticcheck ./... && go test -count=1 ./...) \
  || fail "deploy/imagebuild: modules missing, altered or not tidy, or go vet, staticcheck or its tests failed"

work=$(mktemp -d)
tag="localhost/nsauth:ci-$$"
name="nsauth-ci-image-$$"
volume="nsauth-ci-image-$$"
loaded=false
arm_pid=
cleanup() {
  if [ -n "$arm_pid" ]; then kill "$arm_pid" 2>/dev/null || true; fi
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  podman volume rm -f "$volume" >/dev/null 2>&1 || true
  podman secret rm "$name" >/dev/null 2>&1 || true
  if $loaded; then
    podman rmi -f "$tag" >/dev/null 2>&1 || true
    # The amd64 image, once the arm64 one took its tag (no -f: by id alone,
    # it goes only when no other name refers to it).
    podman rmi "${id#sha256:}" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
logs_and_fail() {
  printf '\n--- container logs (%s)\n' "$name" >&2
  podman logs "$name" >&2 2>&1 || true
  fail "$*"
}

note "build the image twice: the same commit must give the same bytes"
NSAUTH_IMAGE_TAG=$tag bash deploy/image.sh "$work/a.tar" > "$work/a.txt" || fail "deploy/image.sh failed"
NSAUTH_IMAGE_TAG=$tag bash deploy/image.sh "$work/b.tar" > "$work/b.txt" || fail "deploy/image.sh failed the second time"
cat "$work/a.txt"
sum_a=$(sha256sum < "$work/a.tar" | cut -d' ' -f1)
sum_b=$(sha256sum < "$work/b.tar" | cut -d' ' -f1)
cmp -s "$work/a.txt" "$work/b.txt" || { diff "$work/a.txt" "$work/b.txt" >&2 || true; fail "two builds gave different image digests"; }
[ "$sum_a" = "$sum_b" ] || fail "two builds gave different archives: sha256 $sum_a and $sum_b"
echo "archive: $(stat -c %s "$work/a.tar") bytes, sha256 $sum_a (both builds)"
field() { sed -n "s/^$1=//p" "$work/a.txt"; }
id=$(field 'amd64\.id') version=$(field version) revision=$(field revision)
[ -n "$id" ] && [ -n "$(field 'arm64\.id')" ] || fail "image.sh did not build an amd64 and an arm64 image"
[ "$revision" = "$(git rev-parse HEAD)" ] || fail "the image's revision label $revision is not HEAD ($(git rev-parse HEAD))"

note "podman load"
podman load -i "$work/a.tar"
loaded=true
[ "sha256:$(podman image inspect --format '{{.Id}}' "$tag")" = "$id" ] || fail "podman loaded another image id than image.sh's amd64 image ($id)"
[ "$(podman image inspect --format '{{.Os}}/{{.Architecture}}' "$tag")" = linux/amd64 ] || fail "podman did not load the linux/amd64 image"
podman image ls "$tag"

note "the issuer rule: on 0.0.0.0 without NSAUTH_ISSUER the server refuses to start"
status=0
refusal=$("${podman_run[@]}" --rm "$tag" 2>&1) || status=$?
[ "$status" -ne 0 ] || fail "the container started without NSAUTH_ISSUER"
grep -q 'NSAUTH_ISSUER (--issuer): is required when listening on "0.0.0.0:8080"' <<<"$refusal" \
  || fail "the refusal does not name NSAUTH_ISSUER: $refusal"
echo "refused (exit $status): $(grep -m1 -o 'NSAUTH_ISSUER (--issuer): is required.*' <<<"$refusal")"

note "run it: volume $volume on /data, $api -> 8080"
# The first administrator's password is given, from a podman secret as the
# docs/deployment.md shows: a generated one would be printed to standard output, which
# in a container is the log. (The secret keeps it out of argv; podman 4.3
# still shows it in `podman inspect`'s Config.Env.)
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s' "$password" | podman secret create "$name" - >/dev/null || fail "podman secret create failed"
podman volume create "$volume" >/dev/null
"${podman_run[@]}" -d --name "$name" \
  -p "127.0.0.1:$port:8080" -v "$volume:/data" \
  --secret "$name,type=env,target=NSAUTH_ADMIN_PASSWORD" \
  -e NSAUTH_ISSUER="$api" -e NSAUTH_LOG_FORMAT=json \
  "$tag" >/dev/null || logs_and_fail "podman run failed"
ready=false
for _ in $(seq 1 60); do
  if curl -fsS -o /dev/null "$api/readyz" 2>/dev/null; then ready=true; break; fi
  [ "$(podman inspect --format '{{.State.Running}}' "$name")" = true ] || logs_and_fail "the container exited"
  sleep 0.5
done
$ready || logs_and_fail "$api/readyz did not answer 200 within 30 s"

note "/healthz, /readyz, GetAuthStatus"
for path in healthz readyz; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' "$api/$path") || logs_and_fail "GET /$path failed"
  [ "$code" = 200 ] || logs_and_fail "GET /$path answered $code"
  echo "/$path: $code"
done
got=$(curl -sS -H 'Content-Type: application/json' -d '{}' "$api/mgmt.v1alpha1.AuthService/GetAuthStatus") \
  || logs_and_fail "GetAuthStatus failed"
[ "$got" = '{"isEnabled":true}' ] || logs_and_fail "GetAuthStatus answered $got, want {\"isEnabled\":true}"
echo "GetAuthStatus: $got"

note "the server runs as 65532"
podman top "$name" user group pid args
[ "$(podman top "$name" user | tail -n +2 | tr -d ' ')" = nonroot ] || logs_and_fail "the server does not run as nonroot"
hostpid=$(podman inspect --format '{{.State.Pid}}' "$name")
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$hostpid/status")
gids=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$hostpid/status")
[ "$uids" = "65532 65532 65532 65532" ] && [ "$gids" = "65532 65532 65532 65532" ] \
  || logs_and_fail "the server's uids are $uids and gids $gids, want 65532"
echo "uid/gid (real, effective, saved, fs): $uids / $gids"

note "nsauth version in the container says what the labels say"
inside=$(podman exec "$name" nsauth version) || logs_and_fail "nsauth version failed in the container"
echo "$inside"
committed=$(TZ=UTC0 git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD)
[ "$inside" = "nsauth $version commit ${revision:0:12} $committed" ] \
  || logs_and_fail "nsauth version says '$inside'; the labels say version $version, revision $revision"
[ "$(podman image inspect --format '{{index .Labels "org.opencontainers.image.version"}}' "$tag")" = "$version" ] \
  || logs_and_fail "podman sees another version label"

note "log in through the built-in provider: nsauth login (the image's binary) and a form-filling browser"
podman cp "$name:/usr/local/bin/nsauth-server" "$work/nsauth" || logs_and_fail "podman cp failed"
(cd deploy/imagebuild && go build -o "$work/browserlogin" ./browserlogin) || fail "building deploy/imagebuild/browserlogin"
timeout 120 "$work/nsauth" login --api-url "$api" --no-browser --config-dir "$work/config" >"$work/login.out" 2>"$work/login.err" &
login_pid=$!
url=
for _ in $(seq 1 50); do
  url=$(grep -o "$api/authorize?[^ ]*" "$work/login.err" | head -n1 || true)
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || { kill "$login_pid" 2>/dev/null || true; cat "$work/login.err" >&2; logs_and_fail "nsauth login printed no authorize URL"; }
NSAUTH_LOGIN_USER=admin NSAUTH_LOGIN_PASSWORD=$password "$work/browserlogin" -url "$url" \
  || { kill "$login_pid" 2>/dev/null || true; logs_and_fail "the login page did not log admin in"; }
login_status=0
wait "$login_pid" || login_status=$?
[ "$login_status" -eq 0 ] || { cat "$work/login.err" >&2; logs_and_fail "nsauth login exited $login_status"; }
grep '^Logged in as' "$work/login.err" || true
"$work/nsauth" whoami --api-url "$api" --config-dir "$work/config" | tee "$work/whoami.out" || logs_and_fail "nsauth whoami failed"
grep -q '^Username: *admin$' "$work/whoami.out" || logs_and_fail "whoami does not name admin"
token=$("$work/nsauth" token --api-url "$api" --config-dir "$work/config") || logs_and_fail "nsauth token failed"
checked=$(curl -sSf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{}' \
  "$api/mgmt.v1alpha1.AuthService/CheckToken") || logs_and_fail "CheckToken failed"
grep -q "\"issuer\":\"$api\"" <<<"$checked" || logs_and_fail "CheckToken does not name the issuer $api: $checked"
echo "CheckToken with the login's access token: valid"

note "podman stop drains cleanly"
podman stop -t 30 "$name" >/dev/null || logs_and_fail "podman stop failed"
code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || logs_and_fail "the server exited $code on SIGTERM"
last=$(podman logs "$name" 2>&1 | tail -n1)
grep -q '"msg":"nsauth stopped"' <<<"$last" || logs_and_fail "the last log line is not 'nsauth stopped': $last"
echo "exit 0; $last"

note "a second start on the same volume keeps the data"
podman start "$name" >/dev/null || logs_and_fail "podman start failed"
ready=false
for _ in $(seq 1 60); do
  if curl -fsS -o /dev/null "$api/readyz" 2>/dev/null; then ready=true; break; fi
  sleep 0.5
done
$ready || logs_and_fail "the second start did not become ready"
starts=$(podman logs "$name" 2>&1 | grep -c 'First start' || true)
[ "$starts" = 1 ] || logs_and_fail "'First start' logged $starts times: the volume did not keep the data"
# The access token from before is still accepted: the signing keys were kept.
checked=$(curl -sSf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{}' \
  "$api/mgmt.v1alpha1.AuthService/CheckToken") || logs_and_fail "CheckToken after the restart failed"
unset token
grep -q "\"issuer\":\"$api\"" <<<"$checked" || logs_and_fail "after the restart CheckToken answered: $checked"
podman stop -t 30 "$name" >/dev/null
echo "second start: ready, no new administrator, the access token from before still valid"

note "podman pull --arch arm64 oci-archive: takes the index's other image"
podman pull -q --arch arm64 "oci-archive:$work/a.tar" >/dev/null || fail "podman pull --arch arm64 oci-archive: failed"
[ "sha256:$(podman image inspect --format '{{.Id}}' "$tag")" = "$(field 'arm64\.id')" ] \
  || fail "podman pull --arch arm64 gave another image id than image.sh's arm64 image ($(field 'arm64\.id'))"
[ "$(podman image inspect --format '{{.Os}}/{{.Architecture}}' "$tag")" = linux/arm64 ] || fail "podman did not take the linux/arm64 image"
echo "$tag is now $(podman image inspect --format '{{.Os}}/{{.Architecture}} {{.Id}}' "$tag")"

note "the arm64 image's nsauth-server under qemu-aarch64 (no binfmt: qemu runs the binary itself)"
mkdir "$work/arm64"
(cd deploy/imagebuild && go run ./ocifile -arch arm64 -file usr/local/bin/nsauth-server -o "$work/arm64/nsauth-server" "$work/a.tar") \
  || fail "could not take the arm64 nsauth-server out of the image"
ln -s nsauth-server "$work/arm64/nsauth" # as in the image
armv=$(qemu-aarch64 "$work/arm64/nsauth" version) || fail "nsauth version failed under qemu-aarch64"
echo "$armv"
[ "$armv" = "nsauth $version commit ${revision:0:12} $committed" ] \
  || fail "the arm64 nsauth version says '$armv'; the labels say version $version, revision $revision"
# A short serve on the loopback, the first start of a fresh data directory
# (signing keys, the administrator with a given password: a generated one
# would be printed). Under emulation everything is some times slower.
mkdir -m 0700 "$work/arm64/data"
HOST=127.0.0.1 PORT=$port NSAUTH_ISSUER="$api" NSAUTH_DATA_DIR="$work/arm64/data" NSAUTH_LOG_FORMAT=json \
  NSAUTH_ADMIN_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" \
  qemu-aarch64 "$work/arm64/nsauth-server" serve >"$work/arm64/serve.log" 2>&1 &
arm_pid=$!
arm_fail() {
  kill "$arm_pid" 2>/dev/null || true
  printf '\n--- the arm64 server'"'"'s log\n' >&2
  cat "$work/arm64/serve.log" >&2
  fail "$*"
}
ready=false
started=$SECONDS
for _ in $(seq 1 240); do
  if curl -fsS -o /dev/null "$api/readyz" 2>/dev/null; then ready=true; break; fi
  kill -0 "$arm_pid" 2>/dev/null || arm_fail "the arm64 server exited"
  sleep 0.5
done
$ready || arm_fail "the arm64 server's $api/readyz did not answer 200 within 120 s"
echo "/readyz: 200 after $((SECONDS - started)) s under qemu-aarch64"
got=$(curl -sS -H 'Content-Type: application/json' -d '{}' "$api/mgmt.v1alpha1.AuthService/GetAuthStatus") \
  || arm_fail "GetAuthStatus failed"
[ "$got" = '{"isEnabled":true}' ] || arm_fail "GetAuthStatus answered $got, want {\"isEnabled\":true}"
echo "GetAuthStatus: $got"
kill -TERM "$arm_pid"
arm_status=0
wait "$arm_pid" || arm_status=$?
arm_pid=
[ "$arm_status" -eq 0 ] || arm_fail "the arm64 server exited $arm_status on SIGTERM"
last=$(tail -n1 "$work/arm64/serve.log")
grep -q '"msg":"nsauth stopped"' <<<"$last" || arm_fail "the arm64 server's last log line is not 'nsauth stopped': $last"
echo "exit 0; $last"

printf '\nimage check passed: %s, index digest %s, amd64 id %s, arm64 id %s\n' "$tag" "$(field digest)" "$id" "$(field 'arm64\.id')"
