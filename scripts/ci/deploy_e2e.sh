#!/usr/bin/env bash
# CI for the container and deploy/ files, without a Docker engine (scripts/test.sh runs it):
#  1. the Dockerfile's steps: scripts/container/build.sh stages the image contents into a temporary
#     folder, scripts/container/runtime.sh installs the runtime libraries and adds the image's user
#     (as root), check_libs.sh checks the binary needs nothing else, and the staged binary finds its
#     tokenizer files with the build folder hidden (as in the image, where it does not exist);
#  2. scripts/ci/deploy_check.py: kubernetes-validate, Docker's Dockerfile parser, the files against
#     each other and the ConfigMap's server.json through the real loader;
#  3. scripts/ci/e2e_nginx.py: Debian's nginx with deploy/nginx/wuerstchen.conf in front of two staged
#     instances (installs nginx when missing).
# Needs WUERSTCHEN_CI_PYTHON (scripts/ci/openai_venv.sh) for the openai SDK check.
set -euo pipefail
cd "$(dirname "$0")/../.."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

nginx=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$nginx" ]; then
    echo "deploy_e2e: installing nginx" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nginx >/dev/null
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
fi
tools_python=$(bash scripts/ci/deploy_venv.sh)

work=$(mktemp -d "${TMPDIR:-/tmp}/wuerstchen-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
app="$work/app"
bash scripts/container/build.sh "$app"
if [ "$(id -u)" -eq 0 ]; then
    bash scripts/container/runtime.sh
else
    echo "deploy_e2e: not root: runtime.sh (packages, user wuerstchen) not run; instances run as $(id -un)" >&2
fi
bash scripts/container/check_libs.sh "$app/bin/wuerstchen"

# In the image the build folder does not exist: hide it and let the staged binary tokenize.
scratch=$(realpath "${WUERSTCHEN_CONTAINER_SCRATCH:-.build-container}")
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
    unshare --mount sh -c 'mount -t tmpfs none "$1" && exec "$2/bin/wuerstchen" tokenize "a photo of a cat"' \
        sh "$scratch" "$app" > "$work/tokens.txt"
    grep -q '^\[49406,320,1125,539,320,2368,49407' "$work/tokens.txt" || {
        echo "deploy_e2e: the staged binary tokenized wrongly without the build folder: $(head -c 200 "$work/tokens.txt")" >&2
        exit 1
    }
    echo "deploy_e2e: the staged binary finds its tokenizer files without the build folder"
    unshare --mount sh -c 'mount -t tmpfs none "$1" && exec "$2/bin/wuerstchen" generate --prompt "a red circle on a blue background" \
        --width 128 --height 128 --prior-steps 2 --decoder-steps 2 --seed 0 --output "$3"' sh "$scratch" "$app" "$work/demo.png" \
        2> "$work/demo.err" || {
        echo "deploy_e2e: the staged binary could not run the embedded demo model without the build folder: $(cat "$work/demo.err")" >&2
        exit 1
    }
    echo "deploy_e2e: the staged binary finds the embedded demo model without the build folder"
else
    echo "deploy_e2e: not root: the tokenizer-files check without the build folder is skipped" >&2
fi

# The exec-form ENTRYPOINT makes the server PID 1, which gets no default signal handling from the kernel:
# check that SIGTERM still drains it and it exits 0, in a PID namespace of its own.
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
    unshare --pid --fork --kill-child env WUERSTCHEN_CONFIG="$app/config/server.json" WUERSTCHEN_HOST=127.0.0.1 \
        WUERSTCHEN_PORT=0 WUERSTCHEN_THREADS=1 "$app/bin/wuerstchen" serve > "$work/pid1.out" 2> "$work/pid1.err" &
    outer=$!
    for _ in $(seq 100); do grep -q '^listening on' "$work/pid1.out" && break; sleep 0.1; done
    server=$(pgrep -P "$outer" || true)
    if [ -z "$server" ] || ! grep -Eq '^NSpid:.*[[:space:]]1$' "/proc/$server/status"; then
        echo "deploy_e2e: the server did not start as PID 1 of its namespace: $(cat "$work/pid1.out" "$work/pid1.err")" >&2
        exit 1
    fi
    kill -TERM "$server"
    status=0
    wait "$outer" || status=$?
    if [ "$status" -ne 0 ] || ! grep -q 'drained; stopping' "$work/pid1.err"; then
        echo "deploy_e2e: as PID 1 the server did not drain on SIGTERM (exit $status): $(tail -5 "$work/pid1.err")" >&2
        exit 1
    fi
    echo "deploy_e2e: as PID 1 the server drains on SIGTERM and exits 0"
else
    echo "deploy_e2e: not root: the PID 1 SIGTERM check is skipped" >&2
fi

"$tools_python" scripts/ci/deploy_check.py --binary "$app/bin/wuerstchen"
python3 scripts/ci/e2e_nginx.py --app "$app" --nginx "$nginx"
