#!/usr/bin/env bash
# Makes (once) a virtualenv OUTSIDE the repository with the tools scripts/ci/deploy_check.py uses:
# kubernetes-validate (Kubernetes schemas, offline), dockerfile (Docker's own Dockerfile parser) and
# PyYAML; prints its python's path on stdout.
# Usage: tools_python="$(bash scripts/ci/deploy_venv.sh)"
set -euo pipefail
exec bash "$(dirname "$0")/venv.sh" "${WUERSTCHEN_DEPLOY_VENV:-${TMPDIR:-/tmp}/wuerstchen-deploy-venv}" \
    "import dockerfile, yaml, kubernetes_validate" kubernetes-validate dockerfile pyyaml
