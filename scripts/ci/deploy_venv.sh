#!/usr/bin/env bash
# Makes (once) a virtualenv OUTSIDE the repository with the tools scripts/ci/deploy_check.py uses:
# kubernetes-validate (Kubernetes schemas, offline), dockerfile (Docker's own Dockerfile parser) and
# PyYAML; prints its python's path on stdout.
# Usage: tools_python="$(bash scripts/ci/deploy_venv.sh)"
set -euo pipefail
venv="${WUERSTCHEN_DEPLOY_VENV:-${TMPDIR:-/tmp}/wuerstchen-deploy-venv}"
check='import dockerfile, yaml, kubernetes_validate'
if "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    echo "$venv/bin/python"
    exit 0
fi
python=$(command -v python3 || true)
if [ -z "$python" ]; then
    echo "deploy_venv: python3 is not on PATH" >&2
    exit 1
fi
if ! "$python" -m venv "$venv" >&2; then
    # Debian's python3 keeps venv in a package of its own.
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate dockerfile pyyaml >&2
"$venv/bin/python" -c "$check" >&2
echo "$venv/bin/python"
