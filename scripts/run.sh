#!/usr/bin/env bash
# One command from a fresh clone to a running service: installs the system packages, builds in
# release and runs `wuerstchen serve` (Config/server.json; the embedded demo model unless prior and
# decoder folders are configured). Arguments are passed to `wuerstchen` instead, e.g.
# `scripts/run.sh generate --prompt "a cat" --output cat.png`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product wuerstchen
if (($#)); then
    exec .build/release/wuerstchen "$@"
fi
exec .build/release/wuerstchen serve --config Config/server.json
