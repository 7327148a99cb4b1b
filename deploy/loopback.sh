#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The whole production topology on one machine, without Docker, on
# 127.0.0.1 only: the two-node Patroni PostgreSQL cluster of deploy/ha
# (synchronous replication, HAProxy to the leader), an anvil chain node with
# the AuditAnchor contract deployed on it, three `fhirledger serve` replicas,
# and an HAProxy in front of them configured like deploy/lb/haproxy.cfg.
# Everything lives in one run directory (argument, else
# $FHIRLEDGER_LOOPBACK_DIR, else /tmp/fhirledger-loopback): configuration,
# data, keys, logs, pids, and DIR/env (KEY=value lines) with what runs where.
#
#   deploy/loopback.sh up [DIR]               start it all, wait until it serves
#   deploy/loopback.sh status [DIR]           what runs (exit 0 when everything does)
#   deploy/loopback.sh down [--remove] [DIR]  stop it all; --remove deletes DIR
#
# `up` prints what runs where on stdout (progress goes to stderr). A run
# directory that holds a stopped topology starts again with its database,
# chain (anvil's state file), keys and contract. Settings (environment):
#   FHIRLEDGER_BIN                  the server binary (else target/release/fhirledger,
#       else built with `cargo build --release -p fhirledger`)
#   FHIRLEDGER_LOOPBACK_PORT        the balancer's port; must be free (default: the
#       one of an earlier `up` of DIR, else 8080, else a free port)
#   FHIRLEDGER_LOOPBACK_PORT_BASE   replicas on BASE, BASE+1, BASE+2, anvil on BASE+3
#       (default: free ports)
#   FHIRLEDGER_LOOPBACK_CHAIN_ID    the chain's id at creation (48879)
#   FHIRLEDGER_LOOPBACK_START_TIMEOUT  seconds for the chain, the replicas and the
#       balancer to be ready (120); the database cluster has its own
#       (FHIRLEDGER_HA_START_TIMEOUT, see deploy/ha/README.md)
#   FHIRLEDGER_LOOPBACK_KEEP_ON_FAILURE=1  leave what was started running when `up` fails
#   FHIRLEDGER_ANVIL                the anvil binary (else conformance/chain's npm package)
#   FHIRLEDGER_*                    any other server setting reaches the replicas as is
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# ha_python, ha_pid_of, ha_is_ours, ha_env_get: the cluster's helpers serve
# here too.
# shellcheck source=ha/lib.sh
. "$here/ha/lib.sh"
# shellcheck source=host-deps.sh
. "$here/host-deps.sh"

# Written into every run directory `up` creates; `down --remove` deletes
# only a directory that has it.
LB_MARKER=.fhirledger-loopback
REPLICAS=(1 2 3)
# deploy/ha/start.sh's processes, as DIR/ha/<part>.pid and .log.
HA_PARTS=(etcd/etcd node1/patroni node2/patroni haproxy/haproxy)

lb_log() { echo "loopback: $*" >&2; }
lb_die() {
    echo "loopback: error: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; /^# shellcheck/d; s/^# \{0,1\}//'
}

# --- arguments -------------------------------------------------------------
command="${1:-}"
[ $# -eq 0 ] || shift
remove=0
dir_arg=
case "$command" in
    up | down | status) ;;
    -h | --help | help)
        usage
        exit 0
        ;;
    *) lb_die "usage: $0 up|status|down [--remove] [DIR] ($0 --help says more)" ;;
esac
for arg in "$@"; do
    case "$arg" in
        --remove)
            [ "$command" = down ] || lb_die "--remove goes with down only"
            remove=1
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*) lb_die "unknown option $arg" ;;
        *)
            [ -z "$dir_arg" ] || lb_die "usage: $0 $command [DIR]"
            dir_arg="$arg"
            ;;
    esac
done

# The run directory as an absolute path, of plain characters only: it is
# written unquoted into haproxy.cfg, and deploy/ha/start.sh, which gets
# DIR/ha, allows no more.
dir="${dir_arg:-${FHIRLEDGER_LOOPBACK_DIR:-/tmp/fhirledger-loopback}}"
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
DIR="$(ha_python -c 'import os,sys; print(os.path.normpath(sys.argv[1]))' "$dir")"
[[ "$DIR" =~ ^/[A-Za-z0-9._/-]+$ ]] \
    || lb_die "run directory '$DIR': only letters, digits, '.', '_', '-' and '/' are allowed"
[ "$DIR" != / ] || lb_die "the run directory cannot be /"
HA_DIR="$DIR/ha"
SETTINGS="$DIR/settings"

# --- helpers ------------------------------------------------------------------
# True when PID is alive and was started here: its command line names DIR
# (haproxy -f DIR/…, anvil --state DIR/…) or it runs in a directory of DIR
# (the replicas, whose command line is only `fhirledger serve`). A pid file
# is never trusted on its own: the pid may have been reused.
lb_is_ours() {
    local pid="$1" cwd
    ha_is_ours "$pid" "$DIR" && return 0
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null)" || return 1
    case "$cwd/" in "$DIR"/*) return 0 ;; esac
    return 1
}

# The live pid recorded in PIDFILE, when it is one of ours.
running_pid() {
    local pid
    pid="$(ha_pid_of "$1" 2>/dev/null)" || return 1
    lb_is_ours "$pid" || return 1
    echo "$pid"
}

setting() { ha_env_get "$SETTINGS" "$1" 2>/dev/null || true; }

# set_setting KEY VALUE: DIR/settings keeps what a later `up` reuses.
set_setting() {
    local key="$1" value="$2"
    {
        grep -v "^$key=" "$SETTINGS" 2>/dev/null || true
        echo "$key=$value"
    } >"$SETTINGS.tmp"
    mv "$SETTINGS.tmp" "$SETTINGS"
}

# The processes `up` starts, as "NAME PIDFILE LOG" lines, in the order `down`
# stops them: the replicas first (the balancer answers 503 meanwhile rather
# than refusing connections), then the balancer, then the chain.
components() {
    local n
    for n in "${REPLICAS[@]}"; do
        echo "replica$n $DIR/replica$n/fhirledger.pid $DIR/replica$n/fhirledger.log"
    done
    echo "balancer $DIR/lb/haproxy.pid $DIR/lb/haproxy.log"
    echo "anvil $DIR/chain/anvil.pid $DIR/chain/anvil.log"
}

# --- down ---------------------------------------------------------------------
# stop_pids SECONDS NAME=PID…: SIGTERM to all at once (the replicas shut down
# in parallel), up to SECONDS for them to go, then SIGKILL. Only processes of
# ours are signalled.
stop_pids() {
    local limit="$1" item pid name left i failed=0
    shift
    for item in "$@"; do
        lb_log "stopping ${item%%=*} (pid ${item#*=})"
        kill -TERM "${item#*=}" 2>/dev/null || true
    done
    for ((i = 0; i < limit * 10; i++)); do
        left=0
        for item in "$@"; do lb_is_ours "${item#*=}" && left=1; done
        [ "$left" = 1 ] || return 0
        sleep 0.1
    done
    for item in "$@"; do
        name="${item%%=*}" pid="${item#*=}"
        lb_is_ours "$pid" || continue
        lb_log "$name (pid $pid) still runs after ${limit}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < 50; i++)); do
        left=0
        for item in "$@"; do lb_is_ours "${item#*=}" && left=1; done
        [ "$left" = 1 ] || return 0
        sleep 0.1
    done
    for item in "$@"; do
        lb_is_ours "${item#*=}" && lb_log "${item%%=*} (pid ${item#*=}) survived SIGKILL" && failed=1
    done
    return "$failed"
}

do_down() {
    local failed=0 name pidfile log pid replicas=() proc cmd prog
    while read -r name pidfile log; do
        pid="$(running_pid "$pidfile")" || continue
        case "$name" in replica*) replicas+=("$name=$pid") ;; esac
    done < <(components)
    # A replica finishes its requests in flight within its shutdown time
    # (FHIRLEDGER_SHUTDOWN_SECONDS, 25 by default) and exits 0.
    if [ ${#replicas[@]} -gt 0 ]; then
        stop_pids "$((${FHIRLEDGER_SHUTDOWN_SECONDS:-25} + 5))" "${replicas[@]}" || failed=1
    fi
    if pid="$(running_pid "$DIR/lb/haproxy.pid")"; then
        stop_pids 10 "balancer=$pid" || failed=1
    fi
    # SIGTERM lets anvil write its state file: the chain survives `down`.
    if pid="$(running_pid "$DIR/chain/anvil.pid")"; then
        stop_pids 20 "anvil=$pid" || failed=1
    fi
    # Anything else of ours (a replica whose pid file was never written).
    for proc in /proc/[0-9]*; do
        pid="${proc#/proc/}"
        if [ "$pid" = $$ ] || [ "$pid" = "$PPID" ]; then continue; fi
        cmd="$({ tr '\0' ' ' <"$proc/cmdline"; } 2>/dev/null)" || continue
        prog="${cmd%% *}"
        case "${prog##*/}" in fhirledger | haproxy | anvil) ;; *) continue ;; esac
        # The cluster's own HAProxy is deploy/ha/stop.sh's.
        case "$cmd" in *"$HA_DIR/"*) continue ;; esac
        if lb_is_ours "$pid"; then stop_pids 10 "leftover ${prog##*/}=$pid" || failed=1; fi
    done
    if [ -e "$HA_DIR/$HA_MARKER" ]; then
        "$here/ha/stop.sh" "$HA_DIR" || failed=1
    fi
    return "$failed"
}

if [ "$command" = down ]; then
    if [ ! -e "$DIR/$LB_MARKER" ]; then
        if [ ! -e "$DIR" ]; then
            lb_log "nothing to stop: $DIR does not exist"
            exit 0
        fi
        lb_die "$DIR was not made by $0 (no $LB_MARKER): not touching it"
    fi
    do_down || lb_die "some processes of $DIR could not be stopped; $DIR is kept"
    lb_log "nothing of $DIR runs any more"
    if [ "$remove" = 1 ]; then
        rm -rf -- "$DIR"
        lb_log "removed $DIR"
    fi
    exit 0
fi

# --- status ---------------------------------------------------------------------
if [ "$command" = status ]; then
    [ -e "$DIR/$LB_MARKER" ] || lb_die "$DIR holds no topology started by $0"
    all=1
    while read -r name pidfile log; do
        if pid="$(running_pid "$pidfile")"; then
            printf '%-10s running  pid %-8s log %s\n' "$name" "$pid" "$log"
        else
            printf '%-10s stopped                log %s\n' "$name" "$log"
            all=0
        fi
    done < <(components)
    for part in "${HA_PARTS[@]}"; do
        name="db-${part%%/*}"
        [ "$name" != db-haproxy ] || name=db-proxy
        if pid="$(ha_pid_of "$HA_DIR/$part.pid" 2>/dev/null)" && ha_is_ours "$pid" "$HA_DIR"; then
            printf '%-10s running  pid %-8s log %s\n' "$name" "$pid" "$HA_DIR/$part.log"
        else
            printf '%-10s stopped                log %s\n' "$name" "$HA_DIR/$part.log"
            all=0
        fi
    done
    members="$(ha_members "$(ha_env_get "$HA_DIR/env" NODE1_REST 2>/dev/null || echo none)" \
        "$(ha_env_get "$HA_DIR/env" NODE2_REST 2>/dev/null || echo none)" 2>/dev/null)" || members=
    [ -z "$members" ] || printf 'database members (name role state host port):\n%s\n' "$members"
    if base="$(ha_env_get "$DIR/env" FHIRLEDGER_BASE_URL 2>/dev/null)"; then
        if code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$base/health/ready")" && [ "$code" = 200 ]; then
            echo "balancer   $base/health/ready answers 200"
        else
            echo "balancer   $base/health/ready answers ${code:-nothing}"
            all=0
        fi
    fi
    [ "$all" = 1 ] || exit 1
    exit 0
fi

# --- up: 1. the run directory ---------------------------------------------------
if [ -e "$DIR/$LB_MARKER" ]; then
    while read -r name pidfile log; do
        if pid="$(running_pid "$pidfile")"; then
            lb_die "$DIR is already running ($name, pid $pid); stop it first: $0 down $DIR"
        fi
    done < <(components)
    # The cluster alone (its processes left when the others were killed):
    # deploy/ha/start.sh would refuse it, and the clean-up of the failed
    # start would then stop it.
    for part in "${HA_PARTS[@]}"; do
        if pid="$(ha_pid_of "$HA_DIR/$part.pid" 2>/dev/null)" && ha_is_ours "$pid" "$HA_DIR"; then
            lb_die "the database cluster of $DIR is running (pid $pid from $HA_DIR/$part.pid); stop it first: $0 down $DIR"
        fi
    done
    [ ! -e "$SETTINGS" ] || lb_log "starting the topology in $DIR again"
elif [ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
    lb_die "$DIR exists, is not empty and was not made by $0; choose another directory"
fi
umask 077
mkdir -p "$DIR" "$DIR/chain" "$DIR/lb" "$DIR/replica1" "$DIR/replica2" "$DIR/replica3"
touch "$DIR/$LB_MARKER"
# As root, deploy/ha/start.sh runs the cluster as the postgres account,
# which must pass through DIR to reach DIR/ha; nothing here is listed or
# readable by it (the keys and DIR/env are 0600).
[ "$(id -u)" -ne 0 ] || chmod 0711 "$DIR"
# A stale DIR/env must not describe a topology that failed to start.
rm -f "$DIR/env"

# --- 2. what it needs --------------------------------------------------------------
ensure_host_deps haproxy curl
# anvil (the chain node) and ethers (for the accounts of the keys) come with
# conformance/chain's npm packages.
ensure_chain_deps >&2
HAPROXY_BIN="$(command -v haproxy)"
if [ -n "${FHIRLEDGER_ANVIL:-}" ]; then
    ANVIL_BIN="$FHIRLEDGER_ANVIL"
else
    case "$(uname -m)" in aarch64 | arm64) arch=arm64 ;; *) arch=amd64 ;; esac
    ANVIL_BIN="$repo/conformance/chain/node_modules/@foundry-rs/anvil-linux-$arch/bin/anvil"
fi
[ -x "$ANVIL_BIN" ] || lb_die "no anvil at $ANVIL_BIN (set FHIRLEDGER_ANVIL, or run npm ci in $repo/conformance/chain)"

release="${CARGO_TARGET_DIR:-$repo/target}"
case "$release" in /*) ;; *) release="$repo/$release" ;; esac
release="$release/release/fhirledger"
if [ -n "${FHIRLEDGER_BIN:-}" ]; then
    BIN="$FHIRLEDGER_BIN"
elif [ -x "$release" ]; then
    BIN="$release"
else
    lb_log "no FHIRLEDGER_BIN and no $release: building it (cargo build --release -p fhirledger; minutes the first time)"
    (cd "$repo" && cargo build --release -p fhirledger >&2) || lb_die "cargo build --release -p fhirledger failed (see above)"
    BIN="$release"
fi
[ -x "$BIN" ] || lb_die "the server binary $BIN is not an executable"
lb_log "server binary $BIN"

# --- 3. ports ------------------------------------------------------------------------
# ports_free PORT…: binds every port at once (0: any free one, so they all
# differ), releases them, and prints them. Fails naming a port that is taken.
ports_free() {
    ha_python - "$@" <<'PY'
import socket, sys
held = []
for want in map(int, sys.argv[1:]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", want))
    except OSError as e:
        sys.exit("port %d on 127.0.0.1 is not free: %s" % (want, e.strerror))
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}
port_number() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ] && [ "$1" -lt 65536 ]; }

# The balancer's port is the public base URL of the replicas (tokens name
# it): asked for, else kept from an earlier start, else 8080 if it is free.
if [ -n "${FHIRLEDGER_LOOPBACK_PORT:-}" ]; then
    port_number "$FHIRLEDGER_LOOPBACK_PORT" || lb_die "FHIRLEDGER_LOOPBACK_PORT must be a port number"
    ports_free "$FHIRLEDGER_LOOPBACK_PORT" >/dev/null \
        || lb_die "FHIRLEDGER_LOOPBACK_PORT=$FHIRLEDGER_LOOPBACK_PORT is taken (ss -ltnp 'sport = :$FHIRLEDGER_LOOPBACK_PORT' says by what); choose another"
    LB_PORT="$FHIRLEDGER_LOOPBACK_PORT"
else
    LB_PORT=
    for candidate in "$(setting LB_PORT)" 8080; do
        [ -n "$candidate" ] || continue
        if ports_free "$candidate" >/dev/null 2>&1; then
            LB_PORT="$candidate"
            break
        fi
        lb_log "port $candidate is taken (ss -ltnp 'sport = :$candidate' says by what)"
    done
    if [ -z "$LB_PORT" ]; then
        LB_PORT="$(ports_free 0)" || lb_die "no free port for the balancer"
        lb_log "the balancer takes the free port $LB_PORT instead (FHIRLEDGER_LOOPBACK_PORT chooses one)"
    fi
fi
if [ -n "${FHIRLEDGER_LOOPBACK_PORT_BASE:-}" ]; then
    base="$FHIRLEDGER_LOOPBACK_PORT_BASE"
    if ! port_number "$base" || [ "$base" -gt 65532 ]; then
        lb_die "FHIRLEDGER_LOOPBACK_PORT_BASE must be a port number below 65533"
    fi
    wanted=("$base" "$((base + 1))" "$((base + 2))" "$((base + 3))")
else
    wanted=(0 0 0 0)
fi
# Checked now, before the slow part; chosen for good once the cluster runs
# (below), so that its own free ports cannot be among them.
ports_free "$LB_PORT" "${wanted[@]}" >/dev/null || lb_die "cannot get the ports (see above)"
set_setting LB_PORT "$LB_PORT"
CHAIN_ID="$(setting CHAIN_ID)"
if [ -z "$CHAIN_ID" ]; then
    CHAIN_ID="${FHIRLEDGER_LOOPBACK_CHAIN_ID:-48879}"
    [[ "$CHAIN_ID" =~ ^[1-9][0-9]*$ ]] || lb_die "FHIRLEDGER_LOOPBACK_CHAIN_ID must be a positive number"
    set_setting CHAIN_ID "$CHAIN_ID"
fi
BASE_URL="http://127.0.0.1:$LB_PORT"
START_TIMEOUT="${FHIRLEDGER_LOOPBACK_START_TIMEOUT:-120}"
[[ "$START_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || lb_die "FHIRLEDGER_LOOPBACK_START_TIMEOUT must be a positive number of seconds"

# --- 4. from here, a failure stops what was started --------------------------------
started=0
completed=0
failed_log=
on_exit() {
    local rc=$? name pidfile log
    if [ "$completed" = 0 ] && [ "$started" = 1 ]; then
        # The end of the log of what failed, then of the others of ours that
        # exist (the cluster's start.sh shows its own when it fails).
        if [ -r "$failed_log" ]; then
            echo "----- last lines of $failed_log (what failed)" >&2
            tail -n 40 "$failed_log" >&2
        fi
        while read -r name pidfile log; do
            if [ ! -r "$log" ] || [ "$log" = "$failed_log" ]; then continue; fi
            echo "----- last lines of $log" >&2
            tail -n 10 "$log" >&2
        done < <(components; echo "migrate - $DIR/migrate.log"; echo "provision - $DIR/chain/provision.log")
        if [ "${FHIRLEDGER_LOOPBACK_KEEP_ON_FAILURE:-0}" = 1 ]; then
            lb_log "up failed; what was started is left running: $0 down $DIR"
        else
            lb_log "up failed; stopping what was started (logs kept in $DIR)"
            do_down || true
        fi
    fi
    exit "$rc"
}
trap on_exit EXIT

# start_bg PIDFILE LOG WORKDIR COMMAND…: in its own session (a Ctrl-C of the
# terminal that ran `up` does not reach it), in the background, with its
# output appended to LOG; prints the pid, which is the command's own (the
# inner shell records its pid and execs the command).
start_bg() {
    local pidfile="$1" log="$2" wd="$3" i pid
    shift 3
    rm -f "$pidfile"
    # shellcheck disable=SC2016 # $0, $$ and $@ belong to the inner shell
    (cd "$wd" && exec setsid sh -c 'echo $$ >"$0" && exec "$@"' "$pidfile" "$@") \
        </dev/null >>"$log" 2>&1 &
    for ((i = 0; i < 100; i++)); do
        if pid="$(ha_pid_of "$pidfile")"; then
            echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    lb_die "${1##*/} did not start (no $pidfile); see $log"
}

deadline_all=0
remaining() {
    local r=$((deadline_all - SECONDS))
    [ "$r" -gt 1 ] || r=1
    echo "$r"
}

# JSON-RPC to anvil; prints the "result" (a string), fails on an error.
rpc() {
    local method="$1" params="$2" body
    body="$(curl -fsS --max-time 5 -H 'Content-Type: application/json' \
        --data "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$method\",\"params\":$params}" "$RPC_URL")" || return 1
    printf '%s' "$body" | ha_python -c '
import json, sys
r = json.load(sys.stdin)
if "result" not in r:
    sys.exit(str(r.get("error")))
print(r["result"])'
}

# The fhirledger CLI, its JSON output on stdout, its log appended to LOG.
fhirledger_json() {
    local log="$1"
    shift
    echo "$(date -u +%FT%TZ) fhirledger $*" >>"$log"
    FHIRLEDGER_LOG=warn "$BIN" "$@" 2>>"$log"
}

# json_field KEY: the value of KEY in the JSON object on stdin.
json_field() { ha_python -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# --- 5. PostgreSQL: deploy/ha's cluster ---------------------------------------------
started=1
lb_log "PostgreSQL: two Patroni nodes with synchronous replication (deploy/ha/start.sh $HA_DIR)"
"$here/ha/start.sh" "$HA_DIR" >/dev/null || lb_die "deploy/ha/start.sh $HA_DIR failed (see above; its logs are in $HA_DIR)"
DB_URL="$(ha_env_get "$HA_DIR/env" FHIRLEDGER_DATABASE_URL)" || lb_die "$HA_DIR/env names no FHIRLEDGER_DATABASE_URL"
deadline_all=$((SECONDS + START_TIMEOUT))
# All bound at once (with the balancer's, so that none is the same), then
# released for the processes to take.
ports="$(ports_free "$LB_PORT" "${wanted[@]}")" || lb_die "cannot get the ports (see above)"
read -r _ R1_PORT R2_PORT R3_PORT ANVIL_PORT <<<"$ports"
REPLICA_PORTS=("$R1_PORT" "$R2_PORT" "$R3_PORT")
RPC_URL="http://127.0.0.1:$ANVIL_PORT"

# --- 6. the chain: anvil, the contract, the writer -----------------------------------
# One block a second and free gas (legacy transactions at gas price 0, base
# fee 0), as on the free-gas Besu network of deploy/besu and in the tests:
# the keys need no funds. The state file keeps the chain (and the contract)
# across `down` and `up`; --state-interval bounds what a kill -9 loses.
lb_log "anvil on $RPC_URL (chain id $CHAIN_ID, state $DIR/chain/anvil-state.json)"
failed_log="$DIR/chain/anvil.log"
ANVIL_PID="$(start_bg "$DIR/chain/anvil.pid" "$DIR/chain/anvil.log" "$DIR/chain" \
    "$ANVIL_BIN" --host 127.0.0.1 --port "$ANVIL_PORT" --chain-id "$CHAIN_ID" \
    --accounts 1 --block-time 1 --gas-price 0 --base-fee 0 \
    --state "$DIR/chain/anvil-state.json" --state-interval 5)"
want_id="$(printf '0x%x' "$CHAIN_ID")"
until [ "$(rpc eth_chainId '[]' 2>/dev/null)" = "$want_id" ]; do
    lb_is_ours "$ANVIL_PID" || lb_die "anvil exited; see $DIR/chain/anvil.log"
    [ "$SECONDS" -lt "$deadline_all" ] || lb_die "anvil did not answer eth_chainId $want_id on $RPC_URL; see $DIR/chain/anvil.log"
    sleep 0.2
done

# Two keys, made once: the owner's deploys the contract and manages its
# writers, the writer's is the only one the replicas hold (as in
# deploy/compose.yaml), so a replica's key cannot change who may anchor.
# A key is 32 random bytes as 0x hex; a valid secp256k1 key is not zero and
# below the group order (0xffff…4141): one whose first byte is not 0xff is.
new_key() {
    local file="$1" key
    [ -s "$file" ] && return 0
    while :; do
        key="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
        [[ "$key" != ff* ]] && [[ "$key" =~ [1-9a-f] ]] && break
    done
    printf '0x%s\n' "$key" >"$file.tmp"
    chmod 0600 "$file.tmp"
    mv "$file.tmp" "$file"
}
# The account of a key file, with ethers from conformance/chain.
account_of() {
    (cd "$repo/conformance/chain" && node -e '
const { Wallet } = require("ethers");
const text = require("fs").readFileSync(process.argv[1], "utf8").trim();
console.log(new Wallet(text).address);' "$1")
}
new_key "$DIR/owner.key"
new_key "$DIR/writer.key"
OWNER="$(account_of "$DIR/owner.key")" || lb_die "cannot read the account of $DIR/owner.key"
WRITER="$(account_of "$DIR/writer.key")" || lb_die "cannot read the account of $DIR/writer.key"

failed_log="$DIR/chain/provision.log"
chain_args=(--rpc-url "$RPC_URL" --chain-id "$CHAIN_ID" --key-file "$DIR/owner.key" --gas-price 0)
CONTRACT="$(setting CONTRACT)"
code=
[ -z "$CONTRACT" ] || code="$(rpc eth_getCode "[\"$CONTRACT\",\"latest\"]")" \
    || lb_die "eth_getCode of $CONTRACT failed on $RPC_URL"
if [ -n "$CONTRACT" ] && [ "$code" != 0x ] && [ -n "$code" ]; then
    lb_log "AuditAnchor contract at $CONTRACT (deployed by an earlier up)"
else
    if [ -n "$CONTRACT" ]; then
        # The state file was lost or removed: the replicas would find their
        # recorded checkpoints nowhere on this chain (chain-mismatch).
        lb_log "no code at $CONTRACT any more (the chain started afresh): deploying a new contract"
    fi
    deployed="$(fhirledger_json "$failed_log" chain deploy "${chain_args[@]}")" \
        || lb_die "fhirledger chain deploy failed; see $failed_log"
    CONTRACT="$(json_field contract <<<"$deployed")"
    set_setting CONTRACT "$CONTRACT"
    lb_log "deployed the AuditAnchor contract at $CONTRACT (owner $OWNER)"
fi
writer_hex="${WRITER#0x}"
# isWriter(address): bytes4(keccak256("isWriter(address)")) = 0x2b29ba23,
# then the address as a 32-byte word.
is_writer="$(rpc eth_call "[{\"to\":\"$CONTRACT\",\"data\":\"0x2b29ba23000000000000000000000000${writer_hex,,}\"},\"latest\"]")" \
    || lb_die "isWriter($WRITER) failed on $CONTRACT"
if [[ "$is_writer" =~ ^0x0*1$ ]]; then
    lb_log "$WRITER (writer.key) is a writer"
else
    fhirledger_json "$failed_log" chain add-writer "$WRITER" "${chain_args[@]}" --contract "$CONTRACT" >/dev/null \
        || lb_die "fhirledger chain add-writer $WRITER failed; see $failed_log"
    lb_log "made $WRITER (writer.key) a writer"
fi

# --- 7. the schema, then three replicas ------------------------------------------------
export FHIRLEDGER_DATABASE_URL="$DB_URL"
# Once, before the replicas: started together they would only take turns at
# the migration lock.
failed_log="$DIR/migrate.log"
lb_log "fhirledger migrate (log $DIR/migrate.log)"
"$BIN" migrate >>"$DIR/migrate.log" 2>&1 || lb_die "fhirledger migrate failed; see $DIR/migrate.log"

# start_replica N PORT, in the subshell of a command substitution: the
# settings stay out of this shell and, unlike `env K=V …`, off every command
# line (the database URL holds a password).
start_replica() {
    export FHIRLEDGER_BIND="127.0.0.1:$2"
    # Every absolute URL and every token names the balancer, so any replica
    # answers any request.
    export FHIRLEDGER_BASE_URL="$BASE_URL"
    # The balancer's X-Forwarded-For is believed, and only the balancer's:
    # AuditEvents record the client's address.
    export FHIRLEDGER_TRUSTED_PROXIES=127.0.0.1
    export FHIRLEDGER_CHAIN_RPC_URL="$RPC_URL" FHIRLEDGER_CHAIN_ID="$CHAIN_ID"
    export FHIRLEDGER_ANCHOR_CONTRACT="$CONTRACT" FHIRLEDGER_CHAIN_KEY_FILE="$DIR/writer.key"
    export FHIRLEDGER_CHAIN_GAS_PRICE=0 FHIRLEDGER_CHAIN_CONFIRMATIONS=0
    start_bg "$DIR/replica$1/fhirledger.pid" "$DIR/replica$1/fhirledger.log" "$DIR/replica$1" "$BIN" serve
}
declare -A REPLICA_PID
for n in "${REPLICAS[@]}"; do
    port="${REPLICA_PORTS[$((n - 1))]}"
    lb_log "replica$n on 127.0.0.1:$port (log $DIR/replica$n/fhirledger.log)"
    failed_log="$DIR/replica$n/fhirledger.log"
    REPLICA_PID[$n]="$(start_replica "$n" "$port")"
done
ready() { curl -fsS -o /dev/null --max-time 3 "$1/health/ready"; }
lb_log "waiting (at most $(remaining)s) for the replicas to be ready"
for n in "${REPLICAS[@]}"; do
    failed_log="$DIR/replica$n/fhirledger.log"
    until ready "http://127.0.0.1:${REPLICA_PORTS[$((n - 1))]}" 2>/dev/null; do
        lb_is_ours "${REPLICA_PID[$n]}" || lb_die "replica$n exited; see $failed_log"
        [ "$SECONDS" -lt "$deadline_all" ] || lb_die "replica$n was not ready within ${START_TIMEOUT}s; see $failed_log"
        sleep 0.5
    done
done

# --- 8. the balancer ----------------------------------------------------------------
# deploy/lb/haproxy.cfg without Docker's DNS resolver (the replicas' addresses
# are fixed here), on loopback, logging to its log file.
cat >"$DIR/lb/haproxy.cfg.tmp" <<EOF
# Generated by deploy/loopback.sh for $DIR; deploy/lb/haproxy.cfg explains
# every setting. Rewritten at every up (the replicas' ports change).
global
    log stdout format raw local0 info
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 3s
    timeout http-request 15s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 10s
    timeout queue 30s
    timeout client-fin 10s
    timeout server-fin 10s
    timeout check 3s

frontend fhir
    bind 127.0.0.1:$LB_PORT
    capture response header X-Request-Id len 200
    default_backend fhirledger

backend fhirledger
    balance roundrobin
    option forwardfor
    option httpchk
    http-check send meth GET uri /health/ready ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    # Every method is retried when the connection failed (the request never
    # reached a replica); an empty answer or a timeout only for GET and HEAD.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    http-request disable-l7-retry unless METH_GET
    # Checks every second; and a replica killed outright is marked down at
    # its first refused connection (observe layer4), as in the fault tests,
    # instead of after two failed checks.
    default-server check inter 1s fastinter 500ms downinter 1s fall 2 rise 2 slowstart 10s observe layer4 error-limit 1 on-error mark-down
    server fhirledger1 127.0.0.1:$R1_PORT
    server fhirledger2 127.0.0.1:$R2_PORT
    server fhirledger3 127.0.0.1:$R3_PORT
EOF
mv "$DIR/lb/haproxy.cfg.tmp" "$DIR/lb/haproxy.cfg"
"$HAPROXY_BIN" -c -q -f "$DIR/lb/haproxy.cfg" || lb_die "HAProxy refuses $DIR/lb/haproxy.cfg"
lb_log "balancer (HAProxy) on $BASE_URL (log $DIR/lb/haproxy.log)"
failed_log="$DIR/lb/haproxy.log"
LB_PID="$(start_bg "$DIR/lb/haproxy.pid" "$DIR/lb/haproxy.log" "$DIR/lb" \
    "$HAPROXY_BIN" -db -f "$DIR/lb/haproxy.cfg")"
# Ready when a round of answers through it, two per replica in a row, are
# all 200: every replica serves through the balancer.
lb_ready() {
    local i
    for ((i = 0; i < ${#REPLICAS[@]} * 2; i++)); do ready "$BASE_URL" || return 1; done
}
until lb_ready 2>/dev/null; do
    lb_is_ours "$LB_PID" || lb_die "HAProxy exited; see $DIR/lb/haproxy.log"
    [ "$SECONDS" -lt "$deadline_all" ] || lb_die "$BASE_URL/health/ready did not answer 200 within ${START_TIMEOUT}s; see $DIR/lb/haproxy.log"
    sleep 0.5
done

# --- 9. DIR/env, and what runs where --------------------------------------------------
# KEY=value lines without spaces or quotes: the tests read them as data, and
# `set -a; . DIR/env; set +a` gives the CLI (fhirledger client add …) its
# database, base URL and chain.
{
    echo "FHIRLEDGER_BASE_URL=$BASE_URL"
    echo "FHIR_BASE_URL=$BASE_URL/fhir"
    echo "FHIRLEDGER_DATABASE_URL=$DB_URL"
    echo "FHIRLEDGER_CHAIN_RPC_URL=$RPC_URL"
    echo "FHIRLEDGER_CHAIN_ID=$CHAIN_ID"
    echo "FHIRLEDGER_ANCHOR_CONTRACT=$CONTRACT"
    echo "FHIRLEDGER_CHAIN_KEY_FILE=$DIR/writer.key"
    echo "FHIRLEDGER_BIN=$BIN"
    echo "RUN_DIR=$DIR"
    echo "HA_DIR=$HA_DIR"
    echo "HA_ENV=$HA_DIR/env"
    echo "BALANCER_PORT=$LB_PORT"
    echo "BALANCER_PID=$LB_PID"
    echo "BALANCER_CONFIG=$DIR/lb/haproxy.cfg"
    echo "BALANCER_LOG=$DIR/lb/haproxy.log"
    for n in "${REPLICAS[@]}"; do
        echo "REPLICA${n}_URL=http://127.0.0.1:${REPLICA_PORTS[$((n - 1))]}"
        echo "REPLICA${n}_PID=${REPLICA_PID[$n]}"
        echo "REPLICA${n}_LOG=$DIR/replica$n/fhirledger.log"
    done
    echo "ANVIL_PID=$ANVIL_PID"
    echo "ANVIL_LOG=$DIR/chain/anvil.log"
    echo "ANVIL_STATE=$DIR/chain/anvil-state.json"
    echo "CHAIN_OWNER=$OWNER"
    echo "CHAIN_OWNER_KEY_FILE=$DIR/owner.key"
    echo "CHAIN_WRITER=$WRITER"
} >"$DIR/env.tmp"
mv "$DIR/env.tmp" "$DIR/env"
completed=1

ha() { ha_env_get "$HA_DIR/env" "$1" 2>/dev/null || echo '?'; }
cat <<EOF
fhirledger runs on loopback, everything in $DIR (values in $DIR/env):
  FHIR base         $BASE_URL/fhir   (HAProxy pid $LB_PID, log $DIR/lb/haproxy.log)
EOF
for n in "${REPLICAS[@]}"; do
    echo "  replica$n          http://127.0.0.1:${REPLICA_PORTS[$((n - 1))]}   (pid ${REPLICA_PID[$n]}, log $DIR/replica$n/fhirledger.log)"
done
cat <<EOF
  database          $DB_URL
                    HAProxy to the leader (pid $(ha HAPROXY_PID)); Patroni node1 $(ha NODE1_REST) (pid $(ha NODE1_PATRONI_PID)),
                    node2 $(ha NODE2_REST) (pid $(ha NODE2_PATRONI_PID)), etcd (pid $(ha ETCD_PID)); logs in $HA_DIR
  chain             $RPC_URL, chain id $CHAIN_ID, anvil pid $ANVIL_PID, log $DIR/chain/anvil.log
  contract          $CONTRACT (owner $OWNER, writer $WRITER)
  server binary     $BIN
The CLI against it:  set -a; . $DIR/env; set +a; $BIN client add --help
Stop:                $0 down $DIR   (down --remove also deletes $DIR)
EOF
