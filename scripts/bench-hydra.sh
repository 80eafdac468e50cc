#!/usr/bin/env bash
# Compare nsauth's built-in provider with Ory Hydra v2.3.0 (issue 27): both
# on SQLite with JWT access tokens, the client-credentials grant at the
# token endpoint and RFC 7662 introspection, concurrency 16, in
# alternating rounds; prints a Markdown table (docs/performance.md,
# "Against Ory Hydra"). Builds Hydra with SQLite (cgo, so a C compiler)
# through interop/build-hydra.sh and its cache (minutes the first time),
# and nsauth-server from this tree. Everything listens on loopback only.
#
#   bash scripts/bench-hydra.sh                       # 5 rounds of 10 s per cell, both Hydra configurations
#   bash scripts/bench-hydra.sh -duration 3s -rounds 2
#
# Flags go to internal/tools/hydrabench (-h lists them): -duration,
# -warmup, -rounds, -concurrency, -hydra-configs defaults,tuned,
# -scenarios client_credentials,introspection, -work-dir, -keep.
# NSAUTH_HYDRA_BIN runs a Hydra binary you built yourself (with the sqlite tag).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT

hydra="${NSAUTH_HYDRA_BIN:-}"
if [ -z "$hydra" ]; then
  hydra=$(NSAUTH_HYDRA_TAGS=sqlite,sqlite_omit_load_extension bash interop/build-hydra.sh)
fi
go build -o "$bin/" ./cmd/nsauth-server ./internal/tools/hydrabench
"$bin/hydrabench" -hydra "$hydra" -nsauth-server "$bin/nsauth-server" "$@"
