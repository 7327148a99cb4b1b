#!/usr/bin/env bash
# Scale-out benchmark (not a test): one, two and three release replicas of
# fhirledger on one PostgreSQL behind HAProxy (as deploy/lb/haproxy.cfg sets
# it up: round robin, X-Forwarded-For), each load through the balancer:
# audited reads of DocumentReferences, audited creates, and audited searches
# (Patient?identifier, DocumentReference?patient&type). One replica straight,
# without the balancer, gives what the balancer costs. Around every run the
# CPU seconds each kind of process used are read from /proc (cpu.py), which
# says where the machine's cores went when the curve flattens.
# Writes bench-results/replicas.md.
#
#   conformance/bench/replicas.sh
#   BENCH_DURATION=10 BENCH_DOCS=20000 conformance/bench/replicas.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. conformance/bench/lib.sh
ensure_host_deps haproxy

LEVELS=${BENCH_CONCURRENCY:-"16 64"}
PATIENTS=${BENCH_PATIENTS:-10000}
DOCS=${BENCH_DOCS:-100000}
LB_PORT=${BENCH_LB_PORT:-18090}
LB=http://127.0.0.1:$LB_PORT
# Every replica answers as the deployment's one public URL (tokens name it as
# their issuer and audience) and believes X-Forwarded-For from the balancer.
export FHIRLEDGER_BASE_URL=$LB
export FHIRLEDGER_TRUSTED_PROXIES=127.0.0.1
# Replica 1 is `fhirledger dev` (it owns the private PostgreSQL); the token is
# minted through the balancer once it is up.
BENCH_NO_AUTH=1 bench_start_server
TABLE=$RESULTS/replicas.md
PIDS=("$SERVER")
HAPROXY=

stop_all() {
    if [ -n "$HAPROXY" ]; then
        kill "$HAPROXY" 2>/dev/null || true
        wait "$HAPROXY" 2>/dev/null || true
    fi
    for pid in "${PIDS[@]:1}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    bench_stop_server
}
trap stop_all EXIT

ready() { curl -fs -o /dev/null --max-time 3 "$1/health/ready"; }

# Replicas 2 and 3: `fhirledger serve` on the same database.
for i in 1 2; do
    FHIRLEDGER_DATABASE_URL=$DATABASE_URL FHIRLEDGER_BIND=127.0.0.1:$((PORT + i)) \
        "$RELEASE/fhirledger" serve >"$WORK/replica$i.log" 2>&1 &
    PIDS+=("$!")
done
for i in 0 1 2; do
    for _ in $(seq 1 300); do
        ready "http://127.0.0.1:$((PORT + i))" && break
        kill -0 "${PIDS[$i]}" 2>/dev/null || { cat "$WORK/replica$i.log"; exit 1; }
        sleep 0.2
    done
done

# HAProxy in front of the first N replicas, restarted for each N.
balance() {
    local n=$1
    [ -n "$HAPROXY" ] && { kill "$HAPROXY"; wait "$HAPROXY" 2>/dev/null || true; }
    {
        printf 'global\n    maxconn 4096\n'
        printf 'defaults\n    mode http\n    timeout connect 3s\n    timeout client 120s\n    timeout server 120s\n    timeout check 3s\n'
        printf '    retries 3\n    option redispatch 1\n    retry-on conn-failure empty-response response-timeout\n'
        printf 'frontend fhir\n    bind 127.0.0.1:%s\n    default_backend fhirledger\n' "$LB_PORT"
        printf 'backend fhirledger\n    balance roundrobin\n    option forwardfor\n'
        printf '    http-request disable-l7-retry unless METH_GET\n'
        printf '    option httpchk\n    http-check send meth GET uri /health/ready ver HTTP/1.1 hdr Host localhost\n'
        printf '    default-server check inter 2s fall 2 rise 2\n'
        for i in $(seq 0 $((n - 1))); do
            printf '    server r%s 127.0.0.1:%s\n' "$i" "$((PORT + i))"
        done
    } >"$WORK/haproxy.cfg"
    haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
    HAPROXY=$!
    for _ in $(seq 1 100); do
        ready "$LB" && break
        sleep 0.1
    done
    # HAProxy counts a server with checks as up from the start, so every
    # replica takes its share of the first run.
}

balance 1
BENCH_TOKEN=$(FHIRLEDGER_BIN=$RELEASE/fhirledger $RELEASE/examples/smart_bench \
    token "$DATABASE_URL" "$LB" "system/*.cruds")
export BENCH_TOKEN

echo "loading $PATIENTS patients and $DOCS documents through the balancer" >&2
python3 "$BENCH_DIR/load.py" "$LB/fhir" "$PATIENTS" "$DOCS" 4 1000 >/dev/null
python3 "$BENCH_DIR/seed.py" "$LB/fhir" 2000 "$BENCH_DIR/document.json" >"$WORK/ids.txt"
bench_psql -c "VACUUM ANALYZE" >/dev/null

{
    echo "| replicas | operation | concurrency | requests/s | p50 ms | p99 ms | errors | CPU s/s: fhirledger | postgres | haproxy | wrk and the rest | busy (of $(nproc)) | commits per request |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$TABLE"

# Transactions committed in the database so far (every replica's, the
# audit writers' batches among them).
commits() { bench_psql -c "SELECT xact_commit FROM pg_stat_database WHERE datname = 'fhirledger'"; }

# run LABEL REPLICAS URL CONCURRENCY SCRIPT [ENV=VALUE...]: one wrk run and its row.
run() {
    local label=$1 replicas=$2 url=$3 c=$4 script=$5
    shift 5
    local before after out commits_before commits_after
    commits_before=$(commits)
    before=$(python3 "$BENCH_DIR/cpu.py")
    out=$(env BENCH_DIR="$BENCH_DIR" BENCH_PATIENTS="$PATIENTS" "$@" \
        wrk -t2 -c"$c" -d"${DURATION}s" --timeout 10s -s "$BENCH_DIR/$script" "$url" | tail -n 1)
    after=$(python3 "$BENCH_DIR/cpu.py")
    commits_after=$(commits)
    echo "$replicas $label c=$c $out" >&2
    echo "replicas=$replicas $label $c $out" >>"$RESULTS/raw.txt"
    python3 - "$replicas" "$label" "$c" "$out" "$before" "$after" "$((commits_after - commits_before))" <<'PY' >>"$TABLE"
import json, sys
replicas, label, c, raw, before, after, commits = sys.argv[1:8]
r, b, a = json.loads(raw), json.loads(before), json.loads(after)
seconds = r["duration_us"] / 1e6
errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
rate = {k: (a[k] - b[k]) / seconds for k in ("fhirledger", "postgres", "haproxy", "busy")}
rest = rate["busy"] - rate["fhirledger"] - rate["postgres"] - rate["haproxy"]
print(f"| {replicas} | {label} | {c} | {r['requests'] / seconds:,.0f} | {r['p50_us']/1000:.2f} | {r['p99_us']/1000:.2f} | {errors} "
      f"| {rate['fhirledger']:.2f} | {rate['postgres']:.2f} | {rate['haproxy']:.2f} | {max(rest, 0):.2f} | {rate['busy']:.2f} "
      f"| {int(commits) / max(r['requests'], 1):.2f} |")
PY
}

operations() {
    local replicas=$1 url=$2
    for c in $LEVELS; do
        run "read" "$replicas" "$url" "$c" read.lua BENCH_IDS="$WORK/ids.txt"
        run "search Patient?identifier" "$replicas" "$url" "$c" search_patient_identifier.lua
        run "search DocumentReference?patient&type&date" "$replicas" "$url" "$c" search_type_date.lua
        run "create" "$replicas" "$url" "$c" create.lua
    done
}

operations "1, no balancer" "http://127.0.0.1:$PORT"
for n in 1 2 3; do
    balance "$n"
    operations "$n" "$LB"
done
echo "wrote $TABLE" >&2
