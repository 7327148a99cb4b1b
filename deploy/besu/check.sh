#!/usr/bin/env bash
# Checks deploy/besu (check.py), then proves the check catches corruptions
# (check.py --self-test); exits non-zero when either fails.
#
#   deploy/besu/check.sh                       both, on this directory
#   deploy/besu/check.sh --dir DIR             both, on a network made by generate.py
#   deploy/besu/check.sh --python ARGS...      python in the venv, from this
#                                              directory (e.g. generate.py --out DIR)
#
# The packages are those pinned in requirements.txt, in a venv under
# ${TMPDIR:-/tmp} named after a hash of that file and of the Python version:
# made once (the only step that needs PyPI), reused while both stay the same,
# so later runs work offline.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
tmp="${TMPDIR:-/tmp}"
id="$("$python" -c 'import hashlib, sys
h = hashlib.sha256(open(sys.argv[1], "rb").read() + sys.version.encode())
print(h.hexdigest()[:16])' "$here/requirements.txt")"
venv="$tmp/fhirledger-besu-check-$id"

if [ ! -f "$venv/.complete" ]; then
    # Built aside and renamed when whole, so an interrupted first run never
    # leaves a half-installed venv that later runs would trust. A renamed
    # venv works through bin/python, all this script uses.
    rm -rf "$venv"
    build="$(mktemp -d "$tmp/fhirledger-besu-check-build.XXXXXX")"
    trap 'rm -rf "$build"' EXIT
    echo "check.sh: creating $venv (once; needs PyPI)" >&2
    "$python" -m venv "$build/venv"
    # --no-deps: requirements.txt pins the whole closure; pip check proves it.
    "$build/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        -r "$here/requirements.txt"
    "$build/venv/bin/python" -m pip check --disable-pip-version-check >/dev/null
    touch "$build/venv/.complete"
    # Another run may have finished first; either venv is as good.
    [ -e "$venv" ] || mv "$build/venv" "$venv"
    rm -rf "$build"
    trap - EXIT
fi

py="$venv/bin/python"
if [ "${1:-}" = "--python" ]; then
    shift
    cd "$here"
    exec "$py" "$@"
fi

status=0
"$py" "$here/check.py" "$@" || status=1
"$py" "$here/check.py" --self-test "$@" || status=1
exit $status
