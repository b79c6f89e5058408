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
# The container steps and deploy/ (Dockerfile stages run outside Docker, manifests validated, nginx in
# front of two instances: scripts/ci/deploy_e2e.sh); only for the whole suite, not a filtered run.
if (($# == 0)); then
    bash scripts/ci/deploy_e2e.sh
fi
swift test -c release -Xswiftc -enable-testing "$@"
# Issue 12's campaign in short form, whole suite only: every libFuzzer harness for
# WUERSTCHEN_CI_FUZZ_SECONDS (20; 0 skips) on the committed seeds (scripts/ci/fuzz.sh; its own
# address-sanitizer build under Fuzz/.build, the longest part on a clean clone) and a 200-request soak of
# the demo model (scripts/bench/soak.py: no crash, every answer, descriptors back to idle; its RSS bound
# needs a long run, see BENCHMARKS.md).
if (($# == 0)); then
    fuzz_seconds="${WUERSTCHEN_CI_FUZZ_SECONDS:-20}"
    if ((fuzz_seconds > 0)); then
        bash scripts/ci/fuzz.sh "$fuzz_seconds"
    fi
    python3 scripts/bench/soak.py --binary "$(swift build -c release --show-bin-path)/wuerstchen" --requests 200 --clients 16
fi
