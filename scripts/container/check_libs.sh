#!/usr/bin/env bash
# Checks that a staged `wuerstchen` (scripts/container/build.sh) needs no shared library beyond what
# the runtime image has: the packages of scripts/container/runtime.sh with their dependencies, and
# glibc, libgcc and libstdc++ (in debian:bookworm-slim already). Run by CI on the staged binary;
# fails naming each library and the package it came from.
# Usage: scripts/container/check_libs.sh DEST/bin/wuerstchen
set -euo pipefail
binary=${1:?usage: check_libs.sh BINARY}
here=$(dirname "$0")
mapfile -t runtime < <(bash "$here/runtime.sh" --packages)
# Ubuntu 24.04 renamed some of them (64-bit time_t): libpng16-16t64, libssl3t64.
for p in "${runtime[@]}"; do
    if apt-cache show "${p}t64" >/dev/null 2>&1; then runtime+=("${p}t64"); fi
done
allowed=$( (printf '%s\n' libc6 libgcc-s1 libstdc++6 "${runtime[@]}"
            apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
                --no-replaces --no-enhances "${runtime[@]}" | grep -v '^ ' | grep -v '^<') | sed 's/:.*//' | sort -u)

if ldd "$binary" | grep -q 'not found'; then
    echo "check_libs: $binary has unresolved libraries:" >&2
    ldd "$binary" | grep 'not found' >&2
    exit 1
fi
bad=0
while read -r lib path; do
    owner=""
    for candidate in "$path" "$(readlink -f "$path")" "/usr$path" "${path#/usr}"; do
        owner=$(dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$owner" ] && break
    done
    if [ -z "$owner" ]; then
        echo "check_libs: $lib ($path) belongs to no Debian package" >&2
        bad=1
    elif ! grep -qx "$owner" <<<"$allowed"; then
        echo "check_libs: $lib comes from $owner, which the runtime image does not install (scripts/container/runtime.sh)" >&2
        bad=1
    else
        echo "check_libs: $lib <- $owner"
    fi
done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}')
if ((bad)); then
    exit 1
fi
echo "check_libs: every library of $binary is in the runtime image"
