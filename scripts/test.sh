#!/usr/bin/env bash
# One command from a fresh clone to a passing test suite: installs the system packages, builds in
# release (numeric code is 10-50x slower in debug) and runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release
# The openai SDK check in ServingTests runs the official Python SDK from a virtualenv outside the
# repository; without WUERSTCHEN_CI_PYTHON that test fails and says how to run it.
if ci_python="$(bash scripts/ci/openai_venv.sh)"; then
    export WUERSTCHEN_CI_PYTHON="$ci_python"
else
    echo "test.sh: could not make the openai virtualenv; ServingTests' openai SDK check will fail" >&2
fi
# deploy/ validated (scripts/ci/deploy_e2e.sh), then the image built by podman from the Dockerfile and run alone,
# behind nginx and with `podman kube play` (scripts/ci/container_e2e.sh, as root); only for the whole suite, not
# a filtered run.
if (($# == 0)); then
    bash scripts/ci/deploy_e2e.sh
    bash scripts/ci/container_e2e.sh
fi
swift test -c release -Xswiftc -enable-testing "$@"
