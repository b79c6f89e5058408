#!/usr/bin/env bash
# Builds the libFuzzer harnesses (Fuzz/, a package of its own depending on this one by path) with
# coverage and the address sanitizer, and runs each for SECONDS (default 30) on its corpus. Fails on a
# crash, a sanitizer report, a failed property (a trap) or a slow input (-timeout), leaving the input in
# Fuzz/artifacts/. The committed seeds (Fuzz/Seeds/TARGET) are read; what a run finds goes to
# Fuzz/corpus-run/TARGET (not committed), so runs on one machine add up. Prints each target's executions.
#   scripts/ci/fuzz.sh [SECONDS] [TARGET...]      (TARGET: HTTPParserFuzz JSONFuzz RequestFuzz ...)
# FUZZ_NICE (default 0) runs the fuzzers under nice; FUZZ_JOBS_LOG appends one line per run to a file
# (time, target, executions, seconds), so that the runs of a long campaign can be added up.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-30}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(HTTPParserFuzz JSONFuzz RequestFuzz SafeTensorsHeaderFuzz TokenizerFuzz)

# gold cannot link the sanitizer coverage sections of Swift objects (an internal error in its DWARF
# reader): lld, which the Swift toolchain ships.
flags=(-c release --package-path Fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld)
# FUZZ_SKIP_BUILD=1: run the harnesses as last built (long runs in the background while sources change).
[[ -n "${FUZZ_SKIP_BUILD:-}" ]] || swift build "${flags[@]}"
bin="$(swift build "${flags[@]}" --show-bin-path)"

mkdir -p Fuzz/artifacts
status=0
for t in "${targets[@]}"; do
    mkdir -p "Fuzz/corpus-run/$t"
    dict=()
    [[ -f "Fuzz/Dictionaries/$t.dict" ]] && dict=(-dict="Fuzz/Dictionaries/$t.dict")
    log="Fuzz/artifacts/$t.log"
    # -max_len: inputs past the limits the harnesses set (HTTP 256-1024 bytes) gain nothing longer;
    # -timeout: a single input taking 10 s is a quadratic path (issue 12 item 1), reported as a crash.
    # The Swift runtime's backtracer would take the trap before libFuzzer, which saves the input.
    # FUZZ_TIMEOUT: raise it for runs at nice 19 on a loaded machine, where a descheduled process can
    # take 10 s over a 1 ms input (seen: inputs reported at 11 s ran in 1-2 ms alone).
    if SWIFT_BACKTRACE=enable=no nice -n "${FUZZ_NICE:-0}" "$bin/$t" "${dict[@]}" -max_total_time="$seconds" -max_len=4096 -timeout="${FUZZ_TIMEOUT:-10}" \
        -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="Fuzz/artifacts/$t-" \
        "Fuzz/corpus-run/$t" "Fuzz/Seeds/$t" > "$log" 2>&1; then
        runs="$(grep -m1 '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
        echo "fuzz.sh: $t: ${runs:-?} executions in ${seconds} s, no crash"
        [[ -n "${FUZZ_JOBS_LOG:-}" ]] && echo "$(date -u +%FT%TZ) $t ${runs:-?} ${seconds}" >> "$FUZZ_JOBS_LOG"
    else
        echo "fuzz.sh: $t FAILED (see $log and Fuzz/artifacts/$t-*):" >&2
        grep -E 'ERROR|Fatal error|Precondition|SUMMARY|deadly|timeout' "$log" | head -20 >&2 || true
        status=1
    fi
done
exit "$status"
