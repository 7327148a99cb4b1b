# Shared by the benchmark scripts: a release build of fhirledger with its own private
# PostgreSQL cluster, wrk runs summarised as Markdown rows. Source it from the repo root.

. deploy/host-deps.sh
ensure_host_deps wrk

BENCH_DIR=$PWD/conformance/bench
# Where cargo puts release builds (CARGO_TARGET_DIR moves it).
RELEASE=${CARGO_TARGET_DIR:-$PWD/target}/release
DURATION=${BENCH_DURATION:-20}
PORT=${BENCH_PORT:-18080}
RESULTS=$PWD/bench-results
mkdir -p "$RESULTS"

# Builds and starts the server on a fresh data directory; sets WORK, SERVER, PG_PORT, BASE,
# DATABASE_URL and stops everything on exit.
# BENCH_SERVER_BIN runs another build instead (to compare two versions).
# Every request carries BENCH_TOKEN, a real backend-services access token.
bench_start_server() {
    # One cargo call, so both share one feature resolution and nothing is built twice.
    cargo build --release --locked -p fhirledger --bin fhirledger -p conformance --example smart_bench
    local bin=${BENCH_SERVER_BIN:-$RELEASE/fhirledger}
    WORK=$(mktemp -d /tmp/fhirledger-bench.XXXXXX)
    chmod 755 "$WORK"
    FHIRLEDGER_BACKEND_TOKEN_SECONDS=14400 "$bin" dev --data-dir "$WORK/data" --bind "127.0.0.1:$PORT" \
        >"$WORK/server.out" 2>"$WORK/server.log" &
    SERVER=$!
    trap bench_stop_server EXIT
    # The banner on stdout says the server is ready (and where PostgreSQL is).
    for _ in $(seq 1 600); do
        grep -q "FHIR base" "$WORK/server.out" 2>/dev/null && break
        kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
        sleep 0.2
    done
    PG_PORT=$(sed -n 's/.*PostgreSQL on 127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/server.out")
    BASE=http://127.0.0.1:$PORT/fhir
    PGPASSWORD=$(cat "$WORK/data/postgres-password")
    export PGPASSWORD
    DATABASE_URL="postgres://postgres:$PGPASSWORD@127.0.0.1:$PG_PORT/fhirledger"
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    BENCH_TOKEN=
    if [ -z "${BENCH_NO_AUTH:-}" ]; then
        BENCH_TOKEN=$(FHIRLEDGER_BIN=$RELEASE/fhirledger $RELEASE/examples/smart_bench \
            token "$DATABASE_URL" "http://127.0.0.1:$PORT" "system/*.cruds")
    fi
    export BENCH_TOKEN
    echo "server up (pid $SERVER), PostgreSQL on $PG_PORT" >&2
}

bench_stop_server() {
    kill -TERM "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    rm -rf "$WORK"
}

bench_psql() {
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d fhirledger -At "$@"
}

mem_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$SERVER/status"; }

# wrk_row LABEL CONCURRENCY SCRIPT [ENV=VALUE...]: runs wrk and prints a table row
# | label | c | requests/s | p50 | p99 | errors | RSS |.
wrk_row() {
    local label=$1 c=$2 script=$3
    shift 3
    local threads=$(( c < 2 ? 1 : 2 ))
    local out
    out=$(env BENCH_DIR="$BENCH_DIR" "$@" \
        wrk -t"$threads" -c"$c" -d"${DURATION}s" --timeout 10s -s "$BENCH_DIR/$script" "http://127.0.0.1:$PORT" | tail -n 1)
    echo "$label c=$c $out" >&2
    echo "$label $c $out" >>"$RESULTS/raw.txt"
    python3 - "$label" "$c" "$out" "$(mem_kib VmRSS)" "$(mem_kib VmHWM)" <<'PY'
import json, sys
label, c, raw, rss, hwm = sys.argv[1:6]
r = json.loads(raw)
errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
rps = r["requests"] / (r["duration_us"] / 1e6)
print(f"| {label} | {c} | {rps:,.0f} | {r['p50_us']/1000:.2f} | {r['p99_us']/1000:.2f} | {errors} | {int(rss)/1024:.0f} ({int(hwm)/1024:.0f}) |")
PY
}
