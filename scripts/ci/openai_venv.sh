#!/usr/bin/env bash
# Makes (once) a virtualenv OUTSIDE the repository with the official `openai` Python SDK for the
# ServingTests check (scripts/ci/openai_check.py) and the nginx e2e, and prints its python's path on stdout.
# Usage: export WUERSTCHEN_CI_PYTHON="$(bash scripts/ci/openai_venv.sh)"
set -euo pipefail
exec bash "$(dirname "$0")/venv.sh" "${WUERSTCHEN_CI_VENV:-${TMPDIR:-/tmp}/wuerstchen-ci-venv}" "import openai" openai
