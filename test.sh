#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, cargo-deny (advisories,
# licenses, bans, sources), unit tests and the HTTP conformance suite. Each
# conformance test binary starts (and removes) its own private PostgreSQL
# cluster and fhirledger server on loopback; tests that sign in start the
# external OpenID Connect provider of conformance/smart (Node.js); the chain
# adapter's tests start their own anvil (conformance/chain's npm packages);
# the fault tests start a Patroni cluster (deploy/ha) and an HAProxy.
set -euo pipefail
cd "$(dirname "$0")"
. deploy/host-deps.sh
# haproxy: the balancer of the fault tests (conformance/tests/faults.rs; the
# Patroni cluster they start installs its own packages, deploy/ha/start.sh).
ensure_host_deps haproxy
ensure_node_deps
ensure_chain_deps
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings

# Known advisories, licenses, duplicate versions and sources (deny.toml),
# offline, against the RustSec snapshot in ../shared/advisory-db.
CARGO_DENY_VERSION=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
    cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi
# cargo-deny opens <db-path>/advisory-db-<hash of the db URL> (this name is
# cargo-deny 0.20's for deny.toml's db-urls) and reads its age from git, so
# the read-only snapshot is copied there as a one-commit repository.
advisory_snapshot=../shared/advisory-db
advisory_db=target/advisory-dbs/advisory-db-3157b0e258782691
if [ ! -d "$advisory_snapshot/crates" ]; then
    echo "the RustSec snapshot is missing: expected $PWD/$advisory_snapshot" >&2
    exit 1
fi
rm -rf "$advisory_db"
mkdir -p "$(dirname "$advisory_db")"
cp -R "$advisory_snapshot" "$advisory_db"
chmod -R u+w "$advisory_db"
git -C "$advisory_db" init -q
git -C "$advisory_db" add -A
git -C "$advisory_db" -c user.name=fhirledger -c user.email=test@fhirledger.invalid \
    commit -q -m "RustSec advisory-db snapshot (../shared/advisory-db)"
# --offline reads every package of Cargo.lock from disk, other platforms' too.
cargo fetch --locked
cargo deny --offline --locked check
# The deployment files, which no test runs: the Besu network's genesis, keys
# and allow-lists agree (and the check catches each kind of rot), the
# Kubernetes manifests validate against the Kubernetes schemas, the compose
# topology and its balancer agree (pinned PyPI tools in virtualenvs).
deploy/besu/check.sh
deploy/k8s/validate.sh
cargo build --locked -p fhirledger
FHIRLEDGER_BIN="$PWD/target/debug/fhirledger" cargo test --locked --workspace
