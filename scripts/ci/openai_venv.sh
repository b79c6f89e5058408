#!/usr/bin/env bash
# Makes (once) a virtualenv OUTSIDE the repository with the official `openai` Python SDK for the
# ServingTests check (scripts/ci/openai_check.py) and the nginx e2e, and prints its python's path on stdout.
# Pinned: openai_check.py validates the image stream against this version's own types
# (openai.types.ImageGenPartialImageEvent / ImageGenCompletedEvent); a venv with another version is reinstalled.
# Usage: export WUERSTCHEN_CI_PYTHON="$(bash scripts/ci/openai_venv.sh)"
set -euo pipefail
version=3.60.0
exec bash "$(dirname "$0")/venv.sh" "${WUERSTCHEN_CI_VENV:-${TMPDIR:-/tmp}/wuerstchen-ci-venv}" \
    "import openai, sys; from openai.types import ImageGenPartialImageEvent; sys.exit(openai.__version__ != '$version')" "openai==$version"
