#!/usr/bin/env bash
# The scheduler benchmark: the same server in `serial` mode (one request at a time) and in `batching`
# mode, driven by scripts/bench/loadgen.py at each concurrency; one JSON line per (mode, level).
#
#   scripts/bench/scheduler.sh [--prior DIR --decoder DIR] [--threads N] -- [loadgen.py arguments]
#
# Without --prior/--decoder it serves the embedded demo model. Build first: swift build -c release.
# Unset OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE in the calling command for production kernels.
set -euo pipefail
cd "$(dirname "$0")/../.."
serve_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; break ;;
        --prior|--decoder|--threads) serve_args+=("$1" "$2"); shift 2 ;;
        *) echo "scheduler.sh: unknown argument $1 (loadgen arguments go after --)" >&2; exit 2 ;;
    esac
done
bin=.build/release/wuerstchen
[ -x "$bin" ] || { echo "scheduler.sh: build first: swift build -c release" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for mode in ${MODES:-serial batching}; do
    log=$(mktemp)
    WUERSTCHEN_SCHEDULER_MODE=$mode WUERSTCHEN_MAX_QUEUE=64 "$bin" serve --port "$port" "${serve_args[@]}" 2>"$log" &
    pid=$!
    until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do
        kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 1
    done
    echo "# mode=$mode $(grep -o "scheduler .*" "$log" | head -1)" >&2
    python3 scripts/bench/loadgen.py --url "http://127.0.0.1:$port" "$@" | sed "s/^{/{\"mode\": \"$mode\", /"
    kill -TERM $pid
    wait $pid || true
    rm -f "$log"
done
