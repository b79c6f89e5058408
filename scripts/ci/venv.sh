#!/usr/bin/env bash
# Makes (once) a virtualenv OUTSIDE the repository with some PyPI packages and prints its python's
# path on stdout (everything else goes to stderr). Installs python3-venv with apt where Debian left it out.
# Usage: python="$(bash scripts/ci/venv.sh VENV_DIR 'import a, b' package-a package-b ...)"
set -euo pipefail
venv="$1" check="$2"
shift 2
if "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    echo "$venv/bin/python"
    exit 0
fi
python=$(command -v python3 || true)
if [ -z "$python" ]; then
    echo "venv.sh: python3 is not on PATH" >&2
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
"$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
"$venv/bin/python" -c "$check" >&2
echo "$venv/bin/python"
