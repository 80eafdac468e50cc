#!/usr/bin/env bash
# ci-helm.sh checks the Helm chart in deploy/helm/nsauth against Kubernetes
# itself, offline, in both of its modes and as a broker (deploy/helm/ci/:
# one replica on SQLite, several on PostgreSQL, several in front of an
# external provider):
#
#  1. helm lint --strict;
#  2. kubeconform -strict on every rendered document, with schemas generated
#     from the OpenAPI spec of the k8s.io/kubernetes module (no download);
#  3. a server-side dry run (?dryRun=All&fieldValidation=Strict) of every
#     document against a real kube-apiserver with an embedded etcd, built
#     from deploy/kube/apiserver/go.mod and started on loopback;
#  4. negative cases, which must be refused, or the checks above prove
#     nothing: a chart with misspelt fields (runAsUsr, pathh) must fail both
#     kubeconform and the apiserver; one whose Deployment selector does not
#     match its pod labels must fail the apiserver; one whose Service
#     selects no pods (which Kubernetes accepts) must fail kube-dryrun's
#     selector check, which runs on every rendering.
#
# The tools are cached (deploy/kube/build-*.sh). Run from any directory.
# Environment: NSAUTH_KUBE_CACHE (see the build scripts).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n--> helm: %s\n' "$*"; }
fail() { printf '\nHELM CHECK FAILED: %s\n' "$*" >&2; exit 1; }

chart=deploy/helm/nsauth
modes=(sqlite postgres-replicas broker)
namespace=nsauth
api_port=16443 etcd_client=127.0.0.1:12379 etcd_peer=127.0.0.1:12380
# The Prometheus Operator release whose ServiceMonitor CRD the chart's
# optional ServiceMonitor is checked against.
prom_operator=v0.85.0

command -v curl >/dev/null 2>&1 || fail "curl is not installed (Debian's curl package): the server start check needs it"

step "modules: deploy/kube/tools and deploy/kube/apiserver"
for m in deploy/kube/tools deploy/kube/apiserver; do
  (cd "$m" && go mod download && go mod verify >/dev/null && go mod tidy -diff && CGO_ENABLED=0 go vet -trimpath ./...) \
    || fail "$m/go.mod: modules missing, altered or not tidy, or go vet failed"
done
(cd deploy/kube/tools && go test -count=1 ./...) || fail "the tests of kube-schemagen or kube-dryrun failed"

step "build the tools (cached after the first build)"
tools=$(bash deploy/kube/build-tools.sh) || fail "could not build helm, kubeconform, kube-schemagen and kube-dryrun"
apiserver=$(bash deploy/kube/build-apiserver.sh) || fail "could not build kube-apiserver and etcd from deploy/kube/apiserver"
helm="$tools/bin/helm" kubeconform="$tools/bin/kubeconform" dryrun="$tools/bin/kube-dryrun"
k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' deploy/kube/apiserver/go.mod)
k8s_version=${k8s_version#v}

work=$(mktemp -d "${TMPDIR:-/tmp}/nsauth-helm.XXXXXX")
api_pid="" server_pid="" replica_pids="" pg_db=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  if [ -n "$replica_pids" ]; then
    # shellcheck disable=SC2086 # a list of pids
    kill $replica_pids 2>/dev/null || true
    sleep 1
  fi
  if [ -n "$pg_db" ]; then psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true; fi
  if [ -n "$api_pid" ] && kill -0 "$api_pid" 2>/dev/null; then
    kill "$api_pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$api_pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$api_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# render CHART MODE OUT renders CHART with deploy/helm/ci/MODE.yaml.
render() {
  "$helm" template nsauth "$1" --namespace "$namespace" --kube-version "$k8s_version" \
    -f "deploy/helm/ci/$2.yaml" > "$3"
}
kubeconform_check() {
  "$kubeconform" -strict -summary -output text -kubernetes-version "$k8s_version" \
    -schema-location "$tools/schemas" "$@"
}

step "the chart refuses values that cannot work"
# Each case: what is wrong, the --set flags, a piece of the message.
refusals=(
  "no issuer|--set issuer=|issuer is required"
  "http issuer|--set issuer=http://auth.example.com|must be an https:// URL"
  "SQLite with replicas|--set issuer=https://a.example --set replicaCount=3|SQLite runs one replica"
  "PostgreSQL without a database URL|--set issuer=https://a.example --set database.type=postgres --set replicaCount=3 --set secrets.secretKey=$(head -c 32 /dev/zero | base64)|needs a database URL"
  "a misspelt value (values.schema.json)|--set issuer=https://a.example --set database.typ=postgres|additional properties 'typ' not allowed"
  "PostgreSQL without a secret key|--set issuer=https://a.example --set database.type=postgres --set database.url=postgres://db/nsauth|needs secrets.secretKey"
)
for case in "${refusals[@]}"; do
  IFS='|' read -r what flags want <<<"$case"
  # shellcheck disable=SC2086 # flags are words
  if out=$("$helm" template nsauth "$chart" --kube-version "$k8s_version" $flags 2>&1); then
    fail "the chart rendered with $what; it must refuse"
  fi
  grep -qF "$want" <<<"$out" || fail "the chart refused $what, but not with '$want': $out"
  echo "refused, as it must: $what: $(grep -oE "execution error.*|additional properties.*" <<<"$out" | head -n1)"
done

for mode in "${modes[@]}"; do
  step "$mode: helm lint --strict"
  "$helm" lint --strict "$chart" -f "deploy/helm/ci/$mode.yaml" || fail "helm lint --strict failed for $mode"
  step "$mode: render and validate with kubeconform -strict (Kubernetes $k8s_version schemas)"
  render "$chart" "$mode" "$work/$mode.yaml" || fail "helm template failed for $mode"
  kubeconform_check "$work/$mode.yaml" || fail "kubeconform refused the $mode rendering ($work/$mode.yaml)"
  step "$mode: every Service and PodDisruptionBudget selects the Deployment's pods, the autoscaler scales it"
  "$dryrun" selectors "$work/$mode.yaml" || fail "in the $mode rendering a selector misses the pods (above)"
done

step "every variable the chart sets is one the server reads (internal/config)"
# Neither a schema nor the apiserver knows nsauth's variables: a misspelt
# name would be ignored by the server without a word.
known=$(cat $(git ls-files 'internal/config/*.go' | grep -v '_test.go$') | grep -oE '"(NSAUTH_|AUTH_)[A-Z_]*"|"HOST"|"PORT"' | tr -d '"' | sort -u)
[ -n "$known" ] || fail "found no variable names in internal/config"
for mode in "${modes[@]}"; do
  for name in $(grep -oE -- '- name: (NSAUTH_[A-Z_]*|AUTH_[A-Z_]*|HOST|PORT)$' "$work/$mode.yaml" | awk '{print $3}' | sort -u); do
    grep -qx "$name" <<<"$known" || fail "the $mode rendering sets $name, which internal/config does not read"
  done
  echo "$mode: $(grep -cE -- '- name: (NSAUTH_|AUTH_|HOST$|PORT$)' "$work/$mode.yaml") variables, all read by the server"
done

step "sqlite: nsauth-server starts with the rendered Deployment's environment (on loopback)"
# The same variables and Secret values the pod gets, but listening on
# loopback and with a temporary data directory; the server must become
# ready, publish the chart's issuer, keep the administrator's password out of
# its log and drain on SIGTERM.
go build -o "$work/nsauth-server" ./cmd/nsauth-server || fail "could not build cmd/nsauth-server"
server_port=16480
"$dryrun" exec -set HOST=127.0.0.1 -set PORT="$server_port" -set NSAUTH_DATA_DIR="$work/data" \
  "$work/sqlite.yaml" -- "$work/nsauth-server" serve > "$work/server.log" 2>&1 &
server_pid=$!
ready=""
for _ in $(seq 1 60); do
  if curl -fsS "http://127.0.0.1:$server_port/readyz" >/dev/null 2>&1; then ready=yes; break; fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$ready" ]; then
  cat "$work/server.log" >&2
  fail "nsauth-server did not become ready with the sqlite rendering's environment (its log is above)"
fi
want_issuer=$(awk '$1 == "issuer:" { print $2 }' deploy/helm/ci/sqlite.yaml)
[ -n "$want_issuer" ] || fail "deploy/helm/ci/sqlite.yaml sets no issuer"
discovery=$(curl -fsS "http://127.0.0.1:$server_port/.well-known/openid-configuration")
grep -qF "\"issuer\":\"$want_issuer\"" <<<"$discovery" || fail "the server's issuer is not the chart's ($want_issuer): $discovery"
kill -TERM "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=""
admin_password=$(awk '$1 == "adminPassword:" { print $2 }' deploy/helm/ci/sqlite.yaml)
[ -n "$admin_password" ] || fail "deploy/helm/ci/sqlite.yaml sets no secrets.adminPassword"
if grep -qF "$admin_password" "$work/server.log"; then fail "the server's log holds the administrator's password"; fi
[ "$server_status" -eq 0 ] || { cat "$work/server.log" >&2; fail "nsauth-server exited with status $server_status on SIGTERM"; }
echo "nsauth-server was ready with issuer $want_issuer, kept the password out of its log and drained on SIGTERM"

step "postgres-replicas: two nsauth-servers start at once on one new PostgreSQL database with the rendered environment"
# As two replicas would: the same variables, the existing Secret's keys
# filled in here (a fresh database on the CI's PostgreSQL and a new secret
# key); both must become ready and serve the same signing keys.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  [ "${CI:-}" != true ] || fail "PostgreSQL is not answering on 127.0.0.1:5432"
  echo "not run: PostgreSQL is not answering on 127.0.0.1:5432 (outside CI only; CI fails here)"
else
  pg_db="nsauth_helm_$$_$RANDOM"
  psql -h 127.0.0.1 -U postgres -d test -qc "CREATE DATABASE $pg_db" || fail "could not create database $pg_db"
  b64() { printf '%s' "$1" | base64 -w0; }
  cat > "$work/nsauth-secrets.yaml" <<SECRET
apiVersion: v1
kind: Secret
metadata:
  name: nsauth-secrets
data:
  database-url: $(b64 "postgres://postgres@127.0.0.1:5432/$pg_db?sslmode=disable")
  secret-key: $(b64 "$(head -c 32 /dev/urandom | base64 -w0)")
  admin-password: $(b64 "$(head -c 18 /dev/urandom | base64 -w0)")
SECRET
  pids=()
  for port in 16481 16482; do
    "$dryrun" exec -set HOST=127.0.0.1 -set PORT="$port" \
      "$work/postgres-replicas.yaml" "$work/nsauth-secrets.yaml" -- "$work/nsauth-server" serve > "$work/server-$port.log" 2>&1 &
    pids+=($!)
  done
  replica_pids="${pids[*]}"
  for port in 16481 16482; do
    ready=""
    for _ in $(seq 1 60); do
      if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then ready=yes; break; fi
      sleep 0.5
    done
    [ -n "$ready" ] || { cat "$work/server-$port.log" >&2; fail "the replica on port $port did not become ready on PostgreSQL (its log is above)"; }
  done
  keys_a=$(curl -fsS http://127.0.0.1:16481/keys) keys_b=$(curl -fsS http://127.0.0.1:16482/keys)
  [ -n "$keys_a" ] && [ "$keys_a" = "$keys_b" ] || fail "the two replicas serve different signing keys: $keys_a / $keys_b"
  curl -fsS http://127.0.0.1:16482/.well-known/openid-configuration | grep -qF "\"issuer\":\"$want_issuer\"" \
    || fail "the PostgreSQL replica's issuer is not the chart's ($want_issuer)"
  kill -TERM "${pids[@]}"
  for pid in "${pids[@]}"; do wait "$pid" || fail "a PostgreSQL replica did not exit cleanly on SIGTERM"; done
  replica_pids=""
  admin_password=$(grep 'admin-password:' "$work/nsauth-secrets.yaml" | awk '{print $2}' | base64 -d)
  if grep -qF "$admin_password" "$work"/server-1648*.log; then fail "a replica's log holds the administrator's password"; fi
  echo "both replicas were ready on database $pg_db with the same signing keys, and drained on SIGTERM"
fi

# The negative cases: copies of the chart with one fault each.
cp -r "$chart" "$work/typo"
sed -i 's/runAsUser: 65532/runAsUsr: 65532/; s|path: /healthz|pathh: /healthz|' "$work/typo/values.yaml"
grep -q runAsUsr "$work/typo/values.yaml" && grep -q pathh "$work/typo/values.yaml" || fail "could not plant the typos in the chart copy"
cp -r "$chart" "$work/selector"
# The Deployment selects a label its pods do not carry.
sed -i '/^  selector:$/,/^  template:$/ s/{{- include "nsauth.selectorLabels" . | nindent 6 }}/{{- include "nsauth.selectorLabels" . | nindent 6 }}\n      app.kubernetes.io\/component: server/' \
  "$work/selector/templates/deployment.yaml"
grep -q 'component: server' "$work/selector/templates/deployment.yaml" || fail "could not plant the selector mismatch in the chart copy"
cp -r "$chart" "$work/service"
# The Service selects a label its pods do not carry: Kubernetes accepts it.
sed -i 's/{{- include "nsauth.selectorLabels" . | nindent 4 }}/{{- include "nsauth.selectorLabels" . | nindent 4 }}\n    app.kubernetes.io\/component: server/' \
  "$work/service/templates/service.yaml"
grep -q 'component: server' "$work/service/templates/service.yaml" || fail "could not plant the Service selector mismatch in the chart copy"
render "$work/service" sqlite "$work/service.yaml" || fail "helm template failed on the chart with the Service mismatch"
render "$work/typo" sqlite "$work/typo.yaml" || fail "helm template failed on the typo'd chart"
render "$work/selector" postgres-replicas "$work/selector.yaml" || fail "helm template failed on the mismatched chart"

step "negative: a chart with typos (runAsUsr, pathh) must fail kubeconform"
echo "(helm lint --strict on it: $("$helm" lint --strict "$work/typo" -f deploy/helm/ci/sqlite.yaml >/dev/null 2>&1 && echo passes, which is why the checks below exist || echo fails))"
if out=$(kubeconform_check "$work/typo.yaml" 2>&1); then
  printf '%s\n' "$out"
  fail "kubeconform accepted a Deployment with runAsUsr and pathh: the schemas are not strict"
fi
printf '%s\n' "$out"
grep -q "runAsUsr" <<<"$out" && grep -q "pathh" <<<"$out" || fail "kubeconform refused the typo'd chart, but did not name runAsUsr and pathh"

step "negative: a Service whose selector misses the pods must be caught by the selector check"
if out=$("$dryrun" selectors "$work/service.yaml" 2>&1); then
  printf '%s\n' "$out"
  fail "the selector check accepted a Service that selects no pods"
fi
printf '%s\n' "$out"
grep -q 'MISMATCH Service/nsauth' <<<"$out" || fail "the selector check failed, but not on the Service"

step "start kube-apiserver $k8s_version and etcd on loopback (127.0.0.1:$api_port, etcd $etcd_client)"
"$dryrun" prepare -dir "$work/api"
"$apiserver" -etcd-dir "$work/api/etcd" -etcd-client "$etcd_client" -etcd-peer "$etcd_peer" -- \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
  --cert-dir="$work/api/certs" \
  --etcd-servers="http://$etcd_client" \
  --token-auth-file="$work/api/tokens.csv" --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$work/api/sa.key" --service-account-signing-key-file="$work/api/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --endpoint-reconciler-type=none \
  > "$work/apiserver.log" 2>&1 &
api_pid=$!
start=$(date +%s)
if ! "$dryrun" wait -server "https://127.0.0.1:$api_port" -dir "$work/api" -timeout 180s; then
  tail -n 40 "$work/apiserver.log" >&2
  fail "kube-apiserver did not become ready (its log's end is above)"
fi
echo "kube-apiserver ready in $(( $(date +%s) - start ))s"

for mode in "${modes[@]}"; do
  step "$mode: server-side dry run of every document (dryRun=All, fieldValidation=Strict)"
  "$dryrun" apply -server "https://127.0.0.1:$api_port" -dir "$work/api" -namespace "$namespace" "$work/$mode.yaml" \
    || fail "the apiserver refused the $mode rendering (above: which document and what it said)"
done

step "ServiceMonitor: the Prometheus Operator's CRD ($prom_operator, a Go module) installed, the chart's ServiceMonitor dry-run against it"
# The Operator's module holds its CRDs; the Go checksum database vouches for it.
prom_dir=$(cd deploy/kube/tools && go mod download -json "github.com/prometheus-operator/prometheus-operator@$prom_operator" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
crd="$prom_dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
[ -f "$crd" ] || fail "no ServiceMonitor CRD at $crd"
"$dryrun" apply -dry-run=false -server "https://127.0.0.1:$api_port" -dir "$work/api" -namespace "$namespace" "$crd" \
  || fail "the apiserver refused the ServiceMonitor CRD"
"$helm" template nsauth "$chart" --namespace "$namespace" --kube-version "$k8s_version" \
  -f deploy/helm/ci/sqlite.yaml --set metrics.serviceMonitor.enabled=true --show-only templates/servicemonitor.yaml \
  > "$work/servicemonitor.yaml" || fail "helm template failed with metrics.serviceMonitor.enabled=true"
"$dryrun" apply -server "https://127.0.0.1:$api_port" -dir "$work/api" -namespace "$namespace" "$work/servicemonitor.yaml" \
  || fail "the apiserver refused the chart's ServiceMonitor (above: what it said)"
sed 's/^      interval:/      intervall:/' "$work/servicemonitor.yaml" > "$work/servicemonitor-typo.yaml"
grep -q intervall "$work/servicemonitor-typo.yaml" || fail "could not plant a typo in the ServiceMonitor"
if out=$("$dryrun" apply -server "https://127.0.0.1:$api_port" -dir "$work/api" -namespace "$namespace" "$work/servicemonitor-typo.yaml" 2>&1); then
  printf '%s\n' "$out"
  fail "the apiserver accepted a ServiceMonitor with 'intervall': strict validation does not reach the CRD"
fi
grep -q 'REFUSED  ServiceMonitor/nsauth.*intervall' <<<"$out" || { printf '%s\n' "$out"; fail "the apiserver refused the typo'd ServiceMonitor, but not for 'intervall'"; }
echo "and refused, as it must, a ServiceMonitor with a typo: $(grep -o 'HTTP.*' <<<"$out")"

step "negative: the chart with typos must be refused by the apiserver"
if out=$("$dryrun" apply -server "https://127.0.0.1:$api_port" -dir "$work/api" -namespace "$namespace" "$work/typo.yaml" 2>&1); then
  printf '%s\n' "$out"
  fail "the apiserver accepted a Deployment with runAsUsr and pathh: strict field validation is not working"
fi
printf '%s\n' "$out"
grep -q 'REFUSED  Deployment/nsauth.*runAsUsr' <<<"$out" || fail "the apiserver refused the typo'd chart, but not its Deployment for runAsUsr"

step "negative: a Deployment whose selector does not match its pod labels must be refused by the apiserver"
kubeconform_check "$work/selector.yaml" >/dev/null 2>&1 \
  && echo "(kubeconform accepts it: a schema cannot compare two fields, which is why the dry run exists)"
if out=$("$dryrun" apply -server "https://127.0.0.1:$api_port" -dir "$work/api" -namespace "$namespace" "$work/selector.yaml" 2>&1); then
  printf '%s\n' "$out"
  fail "the apiserver accepted a Deployment whose selector does not match its template's labels"
fi
printf '%s\n' "$out"
grep -q 'REFUSED  Deployment/nsauth.*selector' <<<"$out" || fail "the apiserver refused the mismatched chart, but not its Deployment's selector"

printf '\nhelm: the chart passed lint, kubeconform, the selector and variable checks, the server start and the apiserver dry run in both modes and as a broker, and the faulty charts were refused\n'
