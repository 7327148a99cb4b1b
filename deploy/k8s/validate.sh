#!/usr/bin/env bash
# Validates the deployment files offline:
#   - every resource of deploy/k8s/kustomization.yaml against the Kubernetes
#     JSON schemas kubernetes-validate ships, with --strict (unknown fields
#     are errors), for the oldest Kubernetes the manifests support and the
#     newest the package knows;
#   - what schemas cannot say (check-manifests.py: probes, grace period,
#     selectors, no Secret with data, every file listed);
#   - deploy/compose.yaml and deploy/lb/haproxy.cfg (deploy/compose-check.py).
#
# The tools live in a virtualenv under ${FHIRLEDGER_VENV_DIR:-target/deploy-venv}
# (relative to the repository root), installed from requirements.txt on the
# first run and again only when that file changes; later runs need no network.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

# 1.30: the first release where lifecycle.preStop.sleep is on by default (beta).
# 1.37: the newest schemas of kubernetes-validate 1.37.0.
K8S_VERSIONS=(1.30.0 1.37.0)

venv="${FHIRLEDGER_VENV_DIR:-target/deploy-venv}"
requirements=deploy/k8s/requirements.txt
if [ ! -x "$venv/bin/python" ]; then
    echo "validate: creating $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv"
fi
stamp="$venv/.deploy-requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "validate: installing $requirements into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" >"$stamp"
fi
py="$venv/bin/python"

echo "== kubernetes-validate $("$venv/bin/kubernetes-validate" --version) --strict"
mapfile -t files < <("$py" deploy/k8s/check-manifests.py --list)
failed=0
for version in "${K8S_VERSIONS[@]}"; do
    # A kind without a schema is only a WARN to kubernetes-validate; here it fails.
    if ! out="$("$venv/bin/kubernetes-validate" --strict -k "$version" "${files[@]}" 2>&1)"; then
        failed=1
    fi
    printf '%s\n' "$out" | sed "s|$root/||g"
    if grep -qE '^(WARN|ERROR|FATAL)' <<<"$out"; then
        failed=1
    fi
done

echo "== deploy/k8s/check-manifests.py"
"$py" deploy/k8s/check-manifests.py || failed=1

echo "== deploy/compose-check.py"
"$py" deploy/compose-check.py || failed=1

if [ "$failed" -ne 0 ]; then
    echo "validate: FAILED" >&2
    exit 1
fi
echo "validate: all deployment checks passed"
