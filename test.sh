#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit tests and the HTTP
# conformance suite. Each conformance test binary starts (and removes) its own
# private PostgreSQL cluster and fhirledger server on loopback; tests that sign
# in start the external OpenID Connect provider of conformance/smart (Node.js).
set -euo pipefail
cd "$(dirname "$0")"
. deploy/host-deps.sh
ensure_host_deps
ensure_node_deps
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo build --locked -p fhirledger
FHIRLEDGER_BIN="$PWD/target/debug/fhirledger" cargo test --locked --workspace
