#!/usr/bin/env bash
# Before/after benchmark (not a test): the REST (run.sh), SMART (auth.sh) and
# search (search.sh) harnesses run on a baseline build and on this checkout,
# one after the other on the same machine, and their figures are written side
# by side to bench-results/compare.md. Each harness runs the baseline first,
# then this checkout, so both see the same machine state.
#
#   conformance/bench/compare.sh                      # baseline: BENCH_BASELINE_REF
#   BENCH_BASELINE_REF=5bffaa3 conformance/bench/compare.sh
#   BENCH_BASELINE=/path/to/fhirledger conformance/bench/compare.sh   # a prebuilt baseline
#   BENCH_HARNESSES="run auth" BENCH_DOCS=100000 conformance/bench/compare.sh
#
# The baseline is built from BENCH_BASELINE_REF in a git worktree under
# target/, into a target directory of its own: cargo decides whether a path
# crate is fresh by comparing its files' times with the last build, so a
# shared target directory would take this checkout's (older) files for the
# baseline's already-built crates and benchmark the baseline twice.
set -euo pipefail
cd "$(dirname "$0")/../.."
. conformance/bench/lib.sh

REF=${BENCH_BASELINE_REF:-HEAD~1}
HARNESSES=${BENCH_HARNESSES:-"run auth search"}
BASELINE=${BENCH_BASELINE:-}
if [ -z "$BASELINE" ]; then
    src=${CARGO_TARGET_DIR:-$PWD/target}/baseline-src
    rm -rf "$src"
    git worktree prune
    git worktree add -f --detach "$src" "$REF" >/dev/null
    baseline_target=${CARGO_TARGET_DIR:-$PWD/target}/baseline-target
    (cd "$src" && CARGO_TARGET_DIR=$baseline_target cargo build --release --locked -p fhirledger)
    BASELINE=${CARGO_TARGET_DIR:-$PWD/target}/baseline-fhirledger
    cp "$baseline_target/release/fhirledger" "$BASELINE"
    git worktree remove --force "$src"
fi
echo "baseline: $BASELINE ($("$BASELINE" --version 2>/dev/null || echo "$REF"))" >&2

table_of() {
    case $1 in
        run) echo rest-core.md ;;
        auth) echo auth.md ;;
        search) echo search.md ;;
    esac
}

for harness in $HARNESSES; do
    table=$(table_of "$harness")
    BENCH_SERVER_BIN=$BASELINE "conformance/bench/$harness.sh"
    mv "$RESULTS/$table" "$RESULTS/before-$table"
    "conformance/bench/$harness.sh"
    mv "$RESULTS/$table" "$RESULTS/after-$table"
done

python3 - "$RESULTS" $HARNESSES >"$RESULTS/compare.md" <<'PY'
import re, sys
results, harnesses = sys.argv[1], sys.argv[2:]
names = {"run": "rest-core.md", "auth": "auth.md", "search": "search.md"}
row = re.compile(r"^\| (.+?) \| (\d+) \| ([\d,]+) \| ([\d.]+) \| ([\d.]+) \| (\d+) \|")

def rows(path):
    out = {}
    for line in open(path):
        m = row.match(line)
        if m:
            out[(m[1], m[2])] = (float(m[3].replace(",", "")), float(m[5]), int(m[6]))
    return out

print("| operation | concurrency | before req/s | after req/s | change | before p99 ms | after p99 ms | errors (before/after) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for h in harnesses:
    before = rows(f"{results}/before-{names[h]}")
    after = rows(f"{results}/after-{names[h]}")
    for key, (b_rps, b_p99, b_err) in before.items():
        if key not in after:
            continue
        a_rps, a_p99, a_err = after[key]
        change = (a_rps - b_rps) / b_rps * 100 if b_rps else 0.0
        print(f"| {key[0]} | {key[1]} | {b_rps:,.0f} | {a_rps:,.0f} | {change:+.1f} % | {b_p99:.2f} | {a_p99:.2f} | {b_err}/{a_err} |")
PY
echo >&2
cat "$RESULTS/compare.md"
