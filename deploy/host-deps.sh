# Sourced by ./dev.sh, ./test.sh and the benchmark harness: installs, with
# apt, the Debian packages fhirledger needs on the host when they are missing.
#   postgresql  - server binaries for the private clusters (initdb, pg_ctl, pgbench)
#   libpq-dev   - the PostgreSQL client library diesel links against
# Extra packages can be asked for: ensure_host_deps wrk

ensure_host_deps() {
    local missing=()
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
    # pq-sys links libpq through the unversioned libpq.so from libpq-dev.
    { [ -e /usr/lib/x86_64-linux-gnu/libpq.so ] || [ -e /usr/lib/aarch64-linux-gnu/libpq.so ] \
        || ldconfig -p 2>/dev/null | grep -q 'libpq.so '; } || missing+=(libpq-dev)
    local extra
    for extra in "$@"; do
        command -v "$extra" >/dev/null 2>&1 || missing+=("$extra")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing missing packages: ${missing[*]}" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
