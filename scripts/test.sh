#!/usr/bin/env bash
# One command from a fresh clone to a passing test suite: installs the system packages, builds in
# release (numeric code is 10-50x slower in debug) and runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The openai SDK check in ServingTests runs the official Python SDK from a virtualenv outside the
# repository; a plain `swift test` without WUERSTCHEN_CI_PYTHON skips it (and says why), so CI makes the
# virtualenv or stops here rather than pass without the check.
if ci_python="$(bash scripts/ci/openai_venv.sh)"; then
    export WUERSTCHEN_CI_PYTHON="$ci_python"
else
    echo "test.sh: could not make the openai virtualenv (scripts/ci/openai_venv.sh); ServingTests' openai SDK check cannot run" >&2
    exit 1
fi
# Only for the whole suite, not a filtered run: deploy/ validated (scripts/ci/deploy_e2e.sh), then the image built
# by podman from the Dockerfile and run alone, behind nginx and with `podman kube play` (scripts/ci/container_e2e.sh,
# as root). Its preparation (podman from apt, the base images: mostly downloads and disk) runs while this compiles.
whole=$((($# == 0)))
if ((whole)); then
    bash scripts/ci/deploy_venv.sh >/dev/null
    prepare_log=$(mktemp)
    bash scripts/ci/container_e2e.sh --prepare > "$prepare_log" 2>&1 &
    prepare=$!
    trap 'kill "$prepare" 2>/dev/null || true; rm -f "$prepare_log"' EXIT
fi
# Release builds are -Ounchecked: a precondition's condition, and any call in it, is not evaluated.
python3 scripts/ci/lint_preconditions.py
# One release build for everything: the binary the deploy checks run and the test targets, with the flags
# `swift test` below uses.
swift build -c release -Xswiftc -enable-testing --build-tests
if ((whole)); then
    bash scripts/ci/deploy_e2e.sh
    status=0
    wait "$prepare" || status=$?
    cat "$prepare_log"
    if ((status)); then
        echo "test.sh: scripts/ci/container_e2e.sh --prepare failed (exit $status; its output above)" >&2
        exit 1
    fi
    bash scripts/ci/container_e2e.sh
fi
# --skip-build: the build above made the test products; without it `swift test` plans its own build and
# compiles the package again (seen on every clean clone, 1 minute quiet, up to 17 under load).
swift test -c release -Xswiftc -enable-testing --skip-build "$@"
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
    python3 scripts/bench/soak.py --binary .build/release/wuerstchen --requests 200 --clients 16
fi
