#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Starts, on loopback, a two-node PostgreSQL 15 cluster managed by Patroni
# with synchronous replication, its own one-member etcd, and HAProxy routing
# to the leader. Everything lives in one run directory (argument, else
# $FHIRLEDGER_HA_DIR, else /tmp/fhirledger-ha): configuration, data, logs,
# pids, generated passwords, and DIR/env (KEY=value lines) for the other
# scripts and for you. Prints FHIRLEDGER_DATABASE_URL=… on stdout; progress
# goes to stderr.
#
#   deploy/ha/start.sh [DIR]
#
# A run directory that holds a stopped cluster is started again with its
# ports and passwords. Settings (environment, read at creation):
#   FHIRLEDGER_HA_<PORT>            fixed ports instead of free ones, <PORT> one
#       of ETCD_CLIENT_PORT ETCD_PEER_PORT NODE1_PG_PORT NODE1_REST_PORT
#       NODE2_PG_PORT NODE2_REST_PORT HAPROXY_PORT HAPROXY_STATS_PORT
#   FHIRLEDGER_HA_SYNC_STRICT       false (default) or true: synchronous_mode_strict
#   FHIRLEDGER_HA_TTL, _LOOP_WAIT, _RETRY_TIMEOUT   Patroni timing (10, 2, 3)
#   FHIRLEDGER_HA_PG_BIN_DIR        PostgreSQL binaries (/usr/lib/postgresql/15/bin)
#   FHIRLEDGER_HA_START_TIMEOUT     seconds to wait for leader + sync standby (180)
#   FHIRLEDGER_HA_KEEP_ON_FAILURE=1 leave the processes running when start fails
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=../host-deps.sh
. "$here/../host-deps.sh"

ha_one_dir_argument "$0" "$@"

HA_PG_BIN_DIR="${FHIRLEDGER_HA_PG_BIN_DIR:-/usr/lib/postgresql/15/bin}"
START_TIMEOUT="${FHIRLEDGER_HA_START_TIMEOUT:-180}"
PORT_NAMES=(ETCD_CLIENT_PORT ETCD_PEER_PORT NODE1_PG_PORT NODE1_REST_PORT
    NODE2_PG_PORT NODE2_REST_PORT HAPROXY_PORT HAPROXY_STATS_PORT)

# --- 1. what is missing, from Debian ----------------------------------------
# Command names where they are the package's name (ensure_host_deps also
# makes sure of the project's usual postgresql and libpq-dev); the others by
# hand. Debian's etcd-server may start a system etcd on 2379/2380: it is
# neither used nor disturbed (ours has its own ports and data).
ensure_host_deps patroni haproxy curl
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
[ -x "$HA_PG_BIN_DIR/postgres" ] || missing+=(postgresql-15)
[ -x "$HA_PG_BIN_DIR/psql" ] || missing+=(postgresql-client-15)
# Patroni's etcd3 client is built on python-etcd's exceptions.
ha_python -c 'import etcd' >/dev/null 2>&1 || missing+=(python3-etcd)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
[ ${#missing[@]} -eq 0 ] || _apt_install "${missing[@]}"
[ -x "$HA_PG_BIN_DIR/postgres" ] || ha_die "no PostgreSQL server in $HA_PG_BIN_DIR (set FHIRLEDGER_HA_PG_BIN_DIR)"
# Absolute paths: runuser's PATH may lack /usr/sbin (haproxy).
ETCD_BIN="$(command -v etcd)"
PATRONI_BIN="$(command -v patroni)"
HAPROXY_BIN="$(command -v haproxy)"

# --- 2. the run directory ----------------------------------------------------
HA_DIR="$(ha_resolve_dir "${1:-}")"
DIR="$HA_DIR"
svc="$(ha_svc_user)"
root=0
[ "$(id -u)" -ne 0 ] || root=1

if [ -e "$DIR/$HA_MARKER" ]; then
    for pidfile in "$DIR"/etcd/etcd.pid "$DIR"/node1/patroni.pid "$DIR"/node2/patroni.pid "$DIR"/haproxy/haproxy.pid; do
        if pid="$(ha_pid_of "$pidfile")" && ha_is_ours "$pid" "$DIR"; then
            ha_die "$DIR is already running (pid $pid from $pidfile); stop it first: $here/stop.sh $DIR"
        fi
    done
    ha_log "starting the cluster in $DIR again"
elif [ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
    ha_die "$DIR exists, is not empty and was not made by start.sh; choose another directory"
fi

umask 077
mkdir -p "$DIR" "$DIR/secrets" "$DIR/etcd" "$DIR/node1" "$DIR/node2" "$DIR/haproxy"
touch "$DIR/$HA_MARKER"
if [ "$root" = 1 ]; then
    getent passwd "$svc" >/dev/null || ha_die "no '$svc' account (it comes with the postgresql package)"
    # The service account passes through DIR (not listing it: secrets/ and env
    # stay root's) and owns the per-process directories.
    chmod 0711 "$DIR"
    chown -R "$svc:" "$DIR/etcd" "$DIR/node1" "$DIR/node2" "$DIR/haproxy"
    runuser -u "$svc" -- test -x "$DIR/node1" \
        || ha_die "the $svc account cannot reach $DIR: a parent directory is not searchable by others (chmod o+x it, or choose a directory under /tmp)"
fi
chmod 0700 "$DIR/secrets" "$DIR/etcd" "$DIR/node1" "$DIR/node2" "$DIR/haproxy"

# --- 3. settings: kept from an earlier start, else chosen now ---------------
settings="$DIR/settings"
declare -A S
if [ -r "$settings" ]; then
    while IFS='=' read -r k v; do [ -n "$k" ] && S[$k]="$v"; done <"$settings"
else
    S[SCOPE]="fhirledger-ha-$(od -An -tx1 -N3 /dev/urandom | tr -d ' \n')"
    case "${FHIRLEDGER_HA_SYNC_STRICT:-false}" in
        1 | true | on | yes) S[SYNC_STRICT]=true ;;
        0 | false | off | no) S[SYNC_STRICT]=false ;;
        *) ha_die "FHIRLEDGER_HA_SYNC_STRICT must be true or false" ;;
    esac
    S[TTL]="${FHIRLEDGER_HA_TTL:-10}"
    S[LOOP_WAIT]="${FHIRLEDGER_HA_LOOP_WAIT:-2}"
    S[RETRY_TIMEOUT]="${FHIRLEDGER_HA_RETRY_TIMEOUT:-3}"
    for k in TTL LOOP_WAIT RETRY_TIMEOUT; do
        [[ "${S[$k]}" =~ ^[1-9][0-9]*$ ]] || ha_die "FHIRLEDGER_HA_$k must be a positive number of seconds"
    done
    [ $((S[LOOP_WAIT] + 2 * S[RETRY_TIMEOUT])) -le "${S[TTL]}" ] \
        || ha_die "Patroni needs LOOP_WAIT + 2 * RETRY_TIMEOUT <= TTL (${S[LOOP_WAIT]} + 2 * ${S[RETRY_TIMEOUT]} > ${S[TTL]})"
    for k in "${PORT_NAMES[@]}"; do
        var="FHIRLEDGER_HA_$k"
        S[$k]="${!var:-0}"
        if ! [[ "${S[$k]}" =~ ^[0-9]+$ ]] || [ "${S[$k]}" -ge 65536 ]; then
            ha_die "$var must be a port number"
        fi
    done
fi
for k in SCOPE SYNC_STRICT TTL LOOP_WAIT RETRY_TIMEOUT "${PORT_NAMES[@]}"; do
    [ -n "${S[$k]:-}" ] || ha_die "$settings lacks $k; remove $DIR to start afresh"
done

# Free ports: bound all at once (so they differ), then released. A port
# given (or kept from an earlier start) must be free too.
wanted=()
for k in "${PORT_NAMES[@]}"; do wanted+=("${S[$k]}"); done
ports="$(ha_python - "${wanted[@]}" <<'PY'
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
)" || ha_die "cannot get the ports (see above)"
read -r -a got <<<"$ports"
for i in "${!PORT_NAMES[@]}"; do S[${PORT_NAMES[$i]}]="${got[$i]}"; done

{
    for k in SCOPE SYNC_STRICT TTL LOOP_WAIT RETRY_TIMEOUT "${PORT_NAMES[@]}"; do
        echo "$k=${S[$k]}"
    done
} >"$settings.tmp"
mv "$settings.tmp" "$settings"

# Passwords: hex (nothing to escape in URLs, YAML or SQL), made once, never
# leaving DIR/secrets (and the generated configurations and DIR/env).
secret() {
    local f="$DIR/secrets/$1-password"
    [ -s "$f" ] || od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$f"
    cat "$f"
}
PW_SUPERUSER="$(secret postgres)"
PW_REPLICATION="$(secret replication)"
PW_REWIND="$(secret rewind)"
PW_REST="$(secret patroni-rest)"
PW_APP="$(secret fhirledger)"

# --- 4. configuration from the templates ------------------------------------
# fill TEMPLATE OUTPUT KEY=VALUE…: every @KEY@ replaced; none may remain.
fill() {
    local tpl="$1" out="$2" text kv key val
    shift 2
    text="$(cat "$tpl")"
    for kv in "$@"; do
        key="${kv%%=*}"
        val="${kv#*=}"
        text="${text//"@$key@"/"$val"}"
    done
    if [[ "$text" =~ @[A-Z0-9_]+@ ]]; then
        ha_die "$tpl: placeholder ${BASH_REMATCH[0]} has no value"
    fi
    printf '%s\n' "$text" >"$out.tmp"
    [ "$root" = 0 ] || chown "$svc:" "$out.tmp"
    mv "$out.tmp" "$out"
}

for n in 1 2; do
    fill "$here/patroni.yml.in" "$DIR/node$n/patroni.yml" \
        "SCOPE=${S[SCOPE]}" "NAME=node$n" "NODE_DIR=$DIR/node$n" "PG_BIN_DIR=$HA_PG_BIN_DIR" \
        "REST_PORT=${S[NODE${n}_REST_PORT]}" "PG_PORT=${S[NODE${n}_PG_PORT]}" \
        "ETCD_CLIENT_PORT=${S[ETCD_CLIENT_PORT]}" \
        "TTL=${S[TTL]}" "LOOP_WAIT=${S[LOOP_WAIT]}" "RETRY_TIMEOUT=${S[RETRY_TIMEOUT]}" \
        "SYNC_STRICT=${S[SYNC_STRICT]}" \
        "SUPERUSER_PASSWORD=$PW_SUPERUSER" "REPLICATION_PASSWORD=$PW_REPLICATION" \
        "REWIND_PASSWORD=$PW_REWIND" "REST_PASSWORD=$PW_REST"
    mkdir -p "$DIR/node$n/pglog"
    [ "$root" = 0 ] || chown "$svc:" "$DIR/node$n/pglog"
done
fill "$here/haproxy.cfg.in" "$DIR/haproxy/haproxy.cfg" \
    "HAPROXY_PORT=${S[HAPROXY_PORT]}" "HAPROXY_STATS_PORT=${S[HAPROXY_STATS_PORT]}" \
    "NODE1_PG_PORT=${S[NODE1_PG_PORT]}" "NODE1_REST_PORT=${S[NODE1_REST_PORT]}" \
    "NODE2_PG_PORT=${S[NODE2_PG_PORT]}" "NODE2_REST_PORT=${S[NODE2_REST_PORT]}"
"$HAPROXY_BIN" -c -q -f "$DIR/haproxy/haproxy.cfg" || ha_die "HAProxy refuses $DIR/haproxy/haproxy.cfg"

# --- 5. the processes --------------------------------------------------------
started=0
completed=0
on_exit() {
    local rc=$?
    if [ "$completed" = 0 ] && [ "$started" = 1 ]; then
        ha_log_tails "$DIR"
        if [ "${FHIRLEDGER_HA_KEEP_ON_FAILURE:-0}" = 1 ]; then
            ha_log "start failed; the processes are left running: $here/stop.sh $DIR"
        else
            ha_log "start failed; stopping what was started (logs kept in $DIR)"
            "$here/stop.sh" "$DIR" >&2 || true
        fi
    fi
    exit "$rc"
}
trap on_exit EXIT

# start_bg PIDFILE LOG WORKDIR COMMAND…: in its own session, as the service
# account, in the background; prints the pid, which is the command's own (the
# inner shell records its pid and execs the command).
start_bg() {
    local pidfile="$1" log="$2" wd="$3" runner=() i
    shift 3
    local what="${1##*/}"
    [ "$root" = 0 ] || runner=(runuser -u "$svc" --)
    rm -f "$pidfile"
    touch "$log"
    [ "$root" = 0 ] || chown "$svc:" "$log"
    # shellcheck disable=SC2016 # $0, $$ and $@ belong to the inner shell
    (cd "$wd" && exec setsid "${runner[@]}" sh -c 'echo $$ >"$0" && exec "$@"' "$pidfile" "$@") \
        </dev/null >>"$log" 2>&1 &
    for ((i = 0; i < 100; i++)); do
        if pid="$(ha_pid_of "$pidfile")"; then
            echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    ha_die "$what did not start (no $pidfile); see $log"
}

# until SECONDS_ DESCRIPTION COMMAND…: runs COMMAND every half second until it
# succeeds, at most SECONDS_ seconds.
until_ok() {
    local limit="$1" what="$2" deadline
    shift 2
    deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || ha_die "timed out after ${limit}s waiting for $what"
        sleep 0.5
    done
}

deadline_all=$((SECONDS + START_TIMEOUT))
remaining() {
    local r=$((deadline_all - SECONDS))
    [ "$r" -gt 1 ] || r=1
    echo "$r"
}

fresh=1
[ ! -e "$DIR/node1/data/PG_VERSION" ] && [ ! -e "$DIR/node2/data/PG_VERSION" ] || fresh=0

etcd_url="http://127.0.0.1:${S[ETCD_CLIENT_PORT]}"
etcd_peer="http://127.0.0.1:${S[ETCD_PEER_PORT]}"
rest1="http://127.0.0.1:${S[NODE1_REST_PORT]}"
rest2="http://127.0.0.1:${S[NODE2_REST_PORT]}"

etcd_healthy() { curl -fsS --max-time 2 "$etcd_url/health" | grep -q '"health":"true"'; }
has_leader() { ha_members "$rest1" "$rest2" | awk '$2 == "leader" && $3 == "running" { f = 1 } END { exit !f }'; }

ha_log "etcd on $etcd_url"
# From here a failure stops what was started (start_bg runs in a subshell).
started=1
etcd_pid="$(start_bg "$DIR/etcd/etcd.pid" "$DIR/etcd/etcd.log" "$DIR/etcd" \
    "$ETCD_BIN" --name etcd1 --data-dir "$DIR/etcd/data" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "$etcd_peer" --initial-advertise-peer-urls "$etcd_peer" \
    --initial-cluster "etcd1=$etcd_peer" --initial-cluster-state new \
    --initial-cluster-token "${S[SCOPE]}" --logger zap --log-level warn)"
until_ok 30 "etcd to answer on $etcd_url/health" etcd_healthy

ha_log "Patroni node1 (REST $rest1, PostgreSQL 127.0.0.1:${S[NODE1_PG_PORT]})"
p1_pid="$(start_bg "$DIR/node1/patroni.pid" "$DIR/node1/patroni.log" "$DIR/node1" \
    "$PATRONI_BIN" "$DIR/node1/patroni.yml")"
if [ "$fresh" = 1 ]; then
    # node1 initialises the cluster (initdb) before node2 copies it. On a
    # restart both start at once: only the member etcd names as synchronous
    # may take the lead, and that may be either.
    until_ok "$(remaining)" "node1 to initialise the cluster and lead" has_leader
fi
ha_log "Patroni node2 (REST $rest2, PostgreSQL 127.0.0.1:${S[NODE2_PG_PORT]})"
p2_pid="$(start_bg "$DIR/node2/patroni.pid" "$DIR/node2/patroni.log" "$DIR/node2" \
    "$PATRONI_BIN" "$DIR/node2/patroni.yml")"

ha_log "HAProxy on 127.0.0.1:${S[HAPROXY_PORT]} (stats http://127.0.0.1:${S[HAPROXY_STATS_PORT]}/)"
hap_pid="$(start_bg "$DIR/haproxy/haproxy.pid" "$DIR/haproxy/haproxy.log" "$DIR/haproxy" \
    "$HAPROXY_BIN" -db -f "$DIR/haproxy/haproxy.cfg")"

ha_log "waiting (at most $(remaining)s) for a leader and a streaming synchronous standby"
if ! pair="$(ha_wait_sync "$(remaining)" "$rest1" "$rest2")"; then
    ha_members "$rest1" "$rest2" >&2 || true
    ha_die "no leader with a streaming synchronous standby within ${START_TIMEOUT}s"
fi
ha_log "leader ${pair%% *}, synchronous standby ${pair##* }"

# --- 6. the application's role and database, through HAProxy ----------------
export PGCONNECT_TIMEOUT=3
psql_haproxy() { # USER PASSWORD psql-arguments…
    local user="$1" password="$2"
    shift 2
    PGPASSWORD="$password" "$HA_PG_BIN_DIR/psql" -X -q -At -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "${S[HAPROXY_PORT]}" -U "$user" "$@"
}
haproxy_leads_to_primary() {
    [ "$(psql_haproxy postgres "$PW_SUPERUSER" -d postgres -c 'SELECT pg_is_in_recovery()')" = f ]
}
until_ok 30 "HAProxy (127.0.0.1:${S[HAPROXY_PORT]}) to lead to the primary" haproxy_leads_to_primary

# A password-authenticated owner, not a superuser: the server needs no more
# (no extensions; advisory locks, large objects and its schema are the
# owner's). The password is set again on every start (from DIR/secrets).
psql_haproxy postgres "$PW_SUPERUSER" -d postgres -v pw="$PW_APP" <<'SQL'
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fhirledger') AS create_role \gset
\if :create_role
CREATE ROLE fhirledger LOGIN;
\endif
ALTER ROLE fhirledger WITH LOGIN NOSUPERUSER NOCREATEROLE PASSWORD :'pw';
SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = 'fhirledger') AS create_db \gset
\if :create_db
CREATE DATABASE fhirledger OWNER fhirledger;
\endif
SQL
[ "$(psql_haproxy fhirledger "$PW_APP" -d fhirledger -c 'SELECT current_user')" = fhirledger ] \
    || ha_die "the fhirledger role cannot connect through HAProxy"

# --- 7. DIR/env ----------------------------------------------------------------
url="postgres://fhirledger:$PW_APP@127.0.0.1:${S[HAPROXY_PORT]}/fhirledger"
{
    echo "FHIRLEDGER_DATABASE_URL=$url"
    echo "DATABASE_URL=$url"
    echo "RUN_DIR=$DIR"
    echo "SCOPE=${S[SCOPE]}"
    echo "SYNC_STRICT=${S[SYNC_STRICT]}"
    echo "HAPROXY_PORT=${S[HAPROXY_PORT]}"
    echo "HAPROXY_STATS_URL=http://127.0.0.1:${S[HAPROXY_STATS_PORT]}/"
    echo "HAPROXY_PID=$hap_pid"
    echo "ETCD_URL=$etcd_url"
    echo "ETCD_PID=$etcd_pid"
    echo "NODE1_REST=$rest1"
    echo "NODE2_REST=$rest2"
    echo "NODE1_PG_PORT=${S[NODE1_PG_PORT]}"
    echo "NODE2_PG_PORT=${S[NODE2_PG_PORT]}"
    echo "NODE1_PATRONI_PID=$p1_pid"
    echo "NODE2_PATRONI_PID=$p2_pid"
    echo "NODE1_DATA=$DIR/node1/data"
    echo "NODE2_DATA=$DIR/node2/data"
    echo "NODE1_CONFIG=$DIR/node1/patroni.yml"
    echo "NODE2_CONFIG=$DIR/node2/patroni.yml"
    echo "LEADER_AT_START=${pair%% *}"
    echo "SYNC_STANDBY_AT_START=${pair##* }"
    echo "SUPERUSER_PASSWORD_FILE=$DIR/secrets/postgres-password"
    echo "PG_BIN_DIR=$HA_PG_BIN_DIR"
} >"$DIR/env.tmp"
mv "$DIR/env.tmp" "$DIR/env"
completed=1

ha_log "ready: leader ${pair%% *}, synchronous standby ${pair##* } (synchronous_mode_strict: ${S[SYNC_STRICT]})"
ha_log "  HAProxy 127.0.0.1:${S[HAPROXY_PORT]} (pid $hap_pid), stats http://127.0.0.1:${S[HAPROXY_STATS_PORT]}/"
ha_log "  node1 $rest1 (Patroni pid $p1_pid), node2 $rest2 (Patroni pid $p2_pid), etcd $etcd_url (pid $etcd_pid)"
ha_log "  settings and pids: $DIR/env; members: patronictl -c $DIR/node1/patroni.yml list"
ha_log "  stop: $here/stop.sh $DIR [--remove]"
echo "FHIRLEDGER_DATABASE_URL=$url"
