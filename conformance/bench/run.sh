#!/usr/bin/env bash
# Benchmark harness (not a test): a release build of fhirledger with its own
# private PostgreSQL cluster, loaded by wrk on loopback, plus the plain-SQL
# ceiling with pgbench. Prints a Markdown table and keeps the raw figures in
# bench-results/.
#
#   conformance/bench/run.sh                 # create, read, update at 1, 16, 64
#   BENCH_DURATION=5 conformance/bench/run.sh  # shorter runs
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BENCH_DIR=$ROOT/conformance/bench
. deploy/host-deps.sh
ensure_host_deps wrk

DURATION=${BENCH_DURATION:-20}
LEVELS=${BENCH_CONCURRENCY:-"1 16 64"}
OPS=${BENCH_OPS:-"create read update"}
SEED=${BENCH_SEED_COUNT:-5000}
PORT=${BENCH_PORT:-18080}

cargo build --release --locked -p fhirledger
WORK=$(mktemp -d /tmp/fhirledger-bench.XXXXXX)
chmod 755 "$WORK"
RESULTS=$ROOT/bench-results
mkdir -p "$RESULTS"

./target/release/fhirledger dev --data-dir "$WORK/data" --bind "127.0.0.1:$PORT" \
    >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER=$!
cleanup() {
    kill -TERM "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The banner on stdout says the server is ready (and where PostgreSQL is).
for _ in $(seq 1 600); do
    grep -q "FHIR base" "$WORK/server.out" 2>/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.2
done
PG_PORT=$(sed -n 's/.*PostgreSQL on 127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/server.out")
BASE=http://127.0.0.1:$PORT/fhir
echo "server up (pid $SERVER), PostgreSQL on $PG_PORT" >&2

python3 "$BENCH_DIR/seed.py" "$BASE" "$SEED" "$BENCH_DIR/document.json" >"$WORK/ids.txt"
echo "seeded $(wc -l <"$WORK/ids.txt") documents" >&2

mem_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$SERVER/status"; }

TABLE=$RESULTS/rest-core.md
{
    echo "| operation | concurrency | requests/s | p50 ms | p99 ms | errors | server RSS MiB (peak) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
} >"$TABLE"
for op in $OPS; do
    for c in $LEVELS; do
        threads=$(( c < 2 ? 1 : 2 ))
        out=$(BENCH_DIR=$BENCH_DIR BENCH_IDS=$WORK/ids.txt \
            wrk -t"$threads" -c"$c" -d"${DURATION}s" --timeout 10s -s "$BENCH_DIR/$op.lua" "http://127.0.0.1:$PORT" | tail -n 1)
        echo "$op c=$c $out" >&2
        echo "$op $c $out" >>"$RESULTS/raw.txt"
        rss=$(mem_kib VmRSS); hwm=$(mem_kib VmHWM)
        python3 - "$op" "$c" "$out" "$rss" "$hwm" >>"$TABLE" <<'PY'
import json, sys
op, c, raw, rss, hwm = sys.argv[1:6]
r = json.loads(raw)
errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
rps = r["requests"] / (r["duration_us"] / 1e6)
print(f"| {op} | {c} | {rps:,.0f} | {r['p50_us']/1000:.2f} | {r['p99_us']/1000:.2f} | {errors} | {int(rss)/1024:.0f} ({int(hwm)/1024:.0f}) |")
PY
    done
done

# The ceiling: the same create statements as plain SQL, straight into PostgreSQL.
PGPASSWORD=$(cat "$WORK/data/postgres-password")
export PGPASSWORD
PGBENCH=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pgbench
{
    echo
    echo "| plain SQL (pgbench) | clients | transactions/s | mean latency ms |"
    echo "|---|---:|---:|---:|"
} >>"$TABLE"
for c in $LEVELS; do
    threads=$(( c < 2 ? 1 : 2 ))
    out=$("$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared -c "$c" -j "$threads" -T "$DURATION" \
        -f "$BENCH_DIR/create.pgbench.sql" fhirledger 2>&1)
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    echo "| create statements | $c | ${tps%.*} | $lat |" >>"$TABLE"
done
echo >&2
cat "$TABLE"
