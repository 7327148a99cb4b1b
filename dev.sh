#!/usr/bin/env bash
# Quick start: runs `fhirledger dev` (a release build, a private PostgreSQL
# cluster under ./.fhirledger, the server on http://127.0.0.1:8080).
# Extra arguments go to `fhirledger dev`, e.g. ./dev.sh --bind 127.0.0.1:9090
set -euo pipefail
cd "$(dirname "$0")"
. deploy/host-deps.sh
ensure_host_deps
# anvil for the dev chain (conformance/chain's npm packages); dev runs without it.
ensure_chain_deps || echo "dev.sh: anvil unavailable; fhirledger dev runs without the chain" >&2
cargo build --release --locked -p fhirledger
exec ./target/release/fhirledger dev "$@"
