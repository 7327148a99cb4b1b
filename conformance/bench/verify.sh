#!/usr/bin/env bash
# `fhirledger audit verify` benchmark (not a test): leaves/s and peak memory
# over a log of BENCH_VERIFY_LEAVES synthetic but valid AuditEvents (default
# 1,000,000; each a real event's JSON under a fresh id), with a release build.
# The load and the timing are conformance/tests/audit_verify.rs's
# `verify_rate_on_a_larger_log` (a private cluster and anvil of its own); it
# fails when the rate is below BENCH_VERIFY_MIN_RATE (default 50,000).
#
#   conformance/bench/verify.sh
#   BENCH_VERIFY_LEAVES=200000 conformance/bench/verify.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

LEAVES=${BENCH_VERIFY_LEAVES:-1000000}
MIN_RATE=${BENCH_VERIFY_MIN_RATE:-50000}
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac

cargo build --locked --release -p fhirledger
BIN="$TARGET/release/fhirledger-verify-bench.$$"
trap 'rm -f "$BIN"' EXIT
# A link of its own (a copy where links fail): a build elsewhere in a shared
# target directory replaces the binary by a new file, not this one.
ln -f "$TARGET/release/fhirledger" "$BIN" 2>/dev/null || cp "$TARGET/release/fhirledger" "$BIN"

FHIRLEDGER_BIN="$BIN" \
FHIRLEDGER_VERIFY_LEAVES="$LEAVES" \
FHIRLEDGER_VERIFY_MIN_RATE="$MIN_RATE" \
    cargo test --locked -p conformance --test audit_verify verify_rate_on_a_larger_log \
    -- --exact --nocapture
