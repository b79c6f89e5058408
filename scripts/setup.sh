#!/usr/bin/env bash
# Installs what building and testing need on Debian/Ubuntu (as root, or through sudo when not root).
# Idempotent: does nothing when everything is already there.
set -euo pipefail

packages=(libopenblas-dev libdnnl-dev libpng-dev libjpeg62-turbo-dev libwebp-dev libssl-dev zlib1g-dev pkg-config openssl)

missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "setup: the Swift toolchain (6.0 or newer) is not on PATH; install it from swift.org first" >&2
    exit 1
fi
