# Sourced by ./dev.sh, ./test.sh and the benchmark harness: installs, with
# apt, the Debian packages fhirledger needs on the host when they are missing.
#   postgresql  - server binaries for the private clusters (initdb, pg_ctl, pgbench)
#   libpq-dev   - the PostgreSQL client library diesel links against
# Extra packages can be asked for: ensure_host_deps wrk
#
# ensure_node_deps (./test.sh): Node.js 20+ and npm, and Debian's chromium
# (the headless browser the end-to-end SMART tests drive; skipped when
# FHIRLEDGER_CHROMIUM names another one), then the Node packages of
# conformance/smart (the external OpenID Connect provider the tests sign in
# at, and the SMART client and browser drivers) with `npm ci`, skipped when
# node_modules is current.
#
# ensure_chain_deps (./test.sh): Node.js and npm, then the Node packages of
# conformance/chain (solc-js, which compiles the AuditAnchor contract, and
# anvil, the local EVM node of adapters/chain's tests, from its platform
# package) with `npm ci`, skipped when node_modules is current.

_FHIRLEDGER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_apt_install() {
    echo "installing missing packages: $*" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

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
    _apt_install "${missing[@]}"
}

ensure_node_deps() {
    local missing=()
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    [ -x "${FHIRLEDGER_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
    [ ${#missing[@]} -eq 0 ] || _apt_install "${missing[@]}"
    local major
    major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
    if [ "$major" -lt 20 ]; then
        echo "Node.js 20 or newer is needed for conformance/smart (found $(node --version 2>/dev/null || echo none))" >&2
        return 1
    fi
    local dir="$_FHIRLEDGER_ROOT/conformance/smart"
    # npm writes node_modules/.package-lock.json at every install: current
    # when it is not older than the committed lockfile.
    if [ -f "$dir/node_modules/.package-lock.json" ] && [ -d "$dir/node_modules/oidc-provider" ] \
        && ! [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        return 0
    fi
    echo "installing the Node packages of conformance/smart (npm ci)" >&2
    (cd "$dir" && npm ci --no-audit --no-fund)
}

ensure_chain_deps() {
    local missing=()
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    [ ${#missing[@]} -eq 0 ] || _apt_install "${missing[@]}"
    local dir="$_FHIRLEDGER_ROOT/conformance/chain"
    # As for conformance/smart: current when node_modules/.package-lock.json
    # is not older than the committed lockfile.
    if [ -f "$dir/node_modules/.package-lock.json" ] && [ -d "$dir/node_modules/solc" ] \
        && [ -d "$dir/node_modules/@foundry-rs/anvil" ] \
        && ! [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        return 0
    fi
    echo "installing the Node packages of conformance/chain (npm ci)" >&2
    (cd "$dir" && npm ci --no-audit --no-fund)
}
