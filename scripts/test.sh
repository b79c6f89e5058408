#!/usr/bin/env bash
# One command from a fresh clone to a passing test suite: installs the system packages, builds in
# release (numeric code is 10-50x slower in debug) and runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release
swift test -c release -Xswiftc -enable-testing "$@"
