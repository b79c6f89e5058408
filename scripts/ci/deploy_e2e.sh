#!/usr/bin/env bash
# CI for deploy/ and the Dockerfile's text, the part the real container run (scripts/ci/container_e2e.sh) does
# not cover (scripts/test.sh runs both): scripts/ci/deploy_check.py validates the Kubernetes manifests with
# kubernetes-validate (HPA, PDB, PVC and ServiceMonitor too, which `podman kube play` does not play), parses the
# Dockerfile with Docker's own parser (stages, USER, HEALTHCHECK, ENTRYPOINT against runtime.sh and server.json),
# checks the files against each other (grace period, memory against BENCHMARKS.md's peak RSS, threads, ports,
# probes, selectors, the HPA's metric, nginx's limits against the service's) and starts the release build with
# the ConfigMap's server.json through the real loader.
# What ran here before the image was tested for real (build.sh staging, runtime.sh on this machine, check_libs.sh,
# the tokenizer without the build folder, SIGTERM as PID 1, scripts/ci/e2e_nginx.py) is covered by
# container_e2e.sh against the image itself.
# Usage: scripts/ci/deploy_e2e.sh            (after `swift build -c release`)
set -euo pipefail
cd "$(dirname "$0")/../.."
# The release folder as such: `swift build --show-bin-path` with other flags than test.sh's build replans the
# package, and the next `swift test` then compiles everything again.
bin=.build/release
if [ ! -x "$bin/wuerstchen" ]; then
    echo "deploy_e2e: no $bin/wuerstchen; run swift build -c release first (scripts/test.sh does)" >&2
    exit 1
fi
tools_python=$(bash scripts/ci/deploy_venv.sh)
"$tools_python" scripts/ci/deploy_check.py --binary "$bin/wuerstchen"
