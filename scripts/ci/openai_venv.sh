#!/usr/bin/env bash
# Makes (once) a virtualenv OUTSIDE the repository with the official `openai` Python SDK for the
# ServingTests check (scripts/ci/openai_check.py), and prints its python's path on stdout.
# Usage: export WUERSTCHEN_CI_PYTHON="$(bash scripts/ci/openai_venv.sh)"
set -euo pipefail
venv="${WUERSTCHEN_CI_VENV:-${TMPDIR:-/tmp}/wuerstchen-ci-venv}"
if "$venv/bin/python" -c "import openai" >/dev/null 2>&1; then
    echo "$venv/bin/python"
    exit 0
fi
python=$(command -v python3 || true)
if [ -z "$python" ]; then
    echo "openai_venv: python3 is not on PATH" >&2
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
"$venv/bin/pip" install --quiet --disable-pip-version-check openai >&2
"$venv/bin/python" -c "import openai" >&2
echo "$venv/bin/python"
