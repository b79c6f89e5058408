#!/usr/bin/env bash
# One command from a fresh clone to a running program: installs the system packages, builds in
# release and runs `wuerstchen` with the given arguments (default: the op benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product wuerstchen
if (($#)); then
    exec .build/release/wuerstchen "$@"
fi
exec .build/release/wuerstchen bench ops
