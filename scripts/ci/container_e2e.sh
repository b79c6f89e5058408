#!/usr/bin/env bash
# CI for the image itself (issue 14), run by scripts/test.sh for the whole suite: the real Dockerfile built
# by podman and run as users run it.
#  1. installs podman, runc, netavark/aardvark-dns (container DNS), iptables (netavark's firewall driver; without
#     it every `podman run -p` fails "netavark: No such file or directory"), catatonit (the pause binary of
#     `podman kube play`'s infra container; without it "finding pause binary: exec: catatonit") and mmdebstrap
#     with apt where missing (as root);
#  2. scripts/container/local_bases.sh makes the base images from Debian's packages (no registry here; kept
#     between runs);
#  3. `podman build --format docker` of the Dockerfile as wuerstchen:latest (the Docker format keeps the
#     HEALTHCHECK; podman's default OCI format drops it), timed, with the size of the layers the project adds;
#  4. scripts/ci/container_e2e.py: the image alone (--read-only, uid 10001, healthcheck, /readyz, a PNG,
#     /metrics, the openai SDK, SIGTERM drain as PID 1), two replicas behind the nginx image with
#     deploy/nginx/wuerstchen.conf (podman stop drains, podman kill under load), `podman kube play` of
#     deploy/kubernetes/.
# Podman as these machines need it (a containers.conf of this run, in CONTAINERS_CONF): runtime runc (crun fails
# on the hybrid cgroup setup), ulimits nofile/nproc 1024 (podman's defaults exceed the hard limits), builds on
# the host network. Every container, pod, network and volume it makes is removed on exit and before it starts.
# Needs WUERSTCHEN_CI_PYTHON (scripts/ci/openai_venv.sh) for the openai SDK check; makes it when unset.
#
# Usage: scripts/ci/container_e2e.sh             everything
#        scripts/ci/container_e2e.sh --prepare   only steps 1 and 2 (scripts/test.sh runs them while it compiles)
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo --preserve-env=WUERSTCHEN_CI_PYTHON,TMPDIR bash "$0" "$@"
    fi
    echo "container_e2e: must run as root (rootful podman, apt-get, mmdebstrap) and there is no sudo" >&2
    exit 1
fi
prepare_only=0
case "${1:-}" in
    "") ;;
    --prepare) prepare_only=1 ;;
    *) echo "container_e2e: unknown argument '$1' (usage: container_e2e.sh [--prepare])" >&2; exit 2 ;;
esac
started=$SECONDS
log() { echo "container_e2e: [$((SECONDS - started)) s] $*"; }

packages=(podman runc netavark aardvark-dns iptables catatonit mmdebstrap)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    # Waits for the dpkg lock rather than failing when another install runs (scripts/test.sh overlaps steps).
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
log "$(podman --version), $(runc --version | head -1)"

work=$(mktemp -d "${TMPDIR:-/tmp}/wuerstchen-container.XXXXXX")
chmod 755 "$work"
# Debian's containers.conf with this machine's settings added to its [containers] and [engine] tables.
sed -e '/^\[containers\]$/a default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]' \
    -e '/^\[engine\]$/a runtime = "runc"' /usr/share/containers/containers.conf > "$work/containers.conf"
grep -q '^default_ulimits' "$work/containers.conf" && grep -q '^runtime = "runc"' "$work/containers.conf" || {
    echo "container_e2e: /usr/share/containers/containers.conf has no [containers] or [engine] table to extend" >&2
    exit 1
}
export CONTAINERS_CONF="$work/containers.conf"

image=localhost/wuerstchen:latest
cleanup() {
    python3 scripts/ci/container_e2e.py --cleanup >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
python3 scripts/ci/container_e2e.py --cleanup

bash scripts/container/local_bases.sh
log "base images ready"
if ((prepare_only)); then
    exit 0
fi

# The build, timed; the cache mount keeps .build-container (SwiftPM's checkouts and objects) between builds.
# The build stage is tagged too (wuerstchen-build), so that pruning the untagged images of earlier builds (a few
# hundred MB each time the sources change) keeps this build's layers, the cached build packages among them.
build_started=$SECONDS
for target in build runtime; do
    tag=$image
    [ "$target" = build ] && tag=localhost/wuerstchen-build:latest
    podman build --format docker --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
        --layers --target "$target" -t "$tag" . >> "$work/build.log" 2>&1 || {
        tail -40 "$work/build.log" >&2
        echo "container_e2e: podman build --target $target of the Dockerfile failed (last lines above)" >&2
        exit 1
    }
done
grep -E '(STEP [0-9]|^build\.sh:)' "$work/build.log" | sed 's/^/  /'
log "podman build --format docker: $image in $((SECONDS - build_started)) s"
podman image prune -f > /dev/null

WUERSTCHEN_CI_PYTHON=${WUERSTCHEN_CI_PYTHON:-$(bash scripts/ci/openai_venv.sh)}
export WUERSTCHEN_CI_PYTHON
python3 scripts/ci/container_e2e.py --image "$image"
log "done"
