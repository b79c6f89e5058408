#!/usr/bin/env bash
# One command from a fresh clone to a running program: installs the system packages, builds in
# release and runs `wuerstchen` with the given arguments (default: one image from the embedded demo
# model into out.png; the HTTP service arrives with `wuerstchen serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product wuerstchen
if (($#)); then
    exec .build/release/wuerstchen "$@"
fi
exec .build/release/wuerstchen generate --prompt "a photo of a cat" --width 512 --height 512 --output out.png
