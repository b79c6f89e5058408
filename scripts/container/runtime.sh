#!/usr/bin/env bash
# The Dockerfile's runtime stage (as root): installs only the shared libraries `wuerstchen` links besides glibc
# and libstdc++ (OpenBLAS, oneDNN, libpng,
# libjpeg-turbo, libwebp with libwebpmux, OpenSSL, zlib; scripts/ci/container_e2e.sh runs the image built on
# them, where a missing library stops the server at its start, naming the library) and adds the
# unprivileged user the service runs as, `wuerstchen` with uid and gid 10001 (the Dockerfile's USER,
# the Kubernetes runAsUser). Idempotent. When it installs, it then empties apt's cache and package lists.
#
# Usage: scripts/container/runtime.sh            install and add the user (as root)
#        scripts/container/runtime.sh --packages print the package list, one per line
set -euo pipefail
packages=(libopenblas0-pthread libdnnl2 libpng16-16 libjpeg62-turbo libwebp7 libwebpmux3 libssl3 zlib1g)
uid=10001
name=wuerstchen

if [ "${1:-}" = "--packages" ]; then
    printf '%s\n' "${packages[@]}"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "runtime.sh: must run as root (it installs packages and adds the user $name)" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Nothing of apt's download stays in the layer: the package lists and the .debs in /var/cache/apt/archives
    # (the official slim image's docker-clean hook removes the .debs; a plain Debian root keeps them, 93 MB here).
    apt-get clean
    rm -rf /var/lib/apt/lists/*
fi

if id -u "$name" >/dev/null 2>&1; then
    if [ "$(id -u "$name")" -ne "$uid" ]; then
        echo "runtime.sh: user $name exists with uid $(id -u "$name"), expected $uid" >&2
        exit 1
    fi
else
    if getent passwd "$uid" >/dev/null; then
        echo "runtime.sh: uid $uid is taken by $(getent passwd "$uid" | cut -d: -f1); the image's user $name needs it" >&2
        exit 1
    fi
    getent group "$uid" >/dev/null || groupadd --system --gid "$uid" "$name"
    useradd --system --uid "$uid" --gid "$uid" --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$name"
fi
