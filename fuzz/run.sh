#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60), one at a
# time. Works on a stable toolchain: cargo-fuzz needs nightly-only flags
# (-Zsanitizer=address, sancov passes), which RUSTC_BOOTSTRAP=1 unlocks.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]
#
# Environment:
#   FUZZ_SANITIZER   address (default) or none (faster, no ASan)
#   FUZZ_JOBS        cargo build jobs (default: cargo's)
#   FUZZ_ARGS        extra libFuzzer flags, e.g. "-max_len=4096"
#
# Seeds: corpus/<target>/ is (re)generated from the protocol vectors by the
# make-corpus bin; what the fuzzer adds is kept there between runs.
# Crashes land in artifacts/<target>/ and make this script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_EACH="${1:-60}"
shift || true
ALL_TARGETS=(frame_decode envelope_decode handshake_responder handshake_initiator connection_established two_endpoints v2_responder v2_initiator v2_records source_limits supersede_race)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
SANITIZER="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
# (cargo-fuzz has no jobs option of its own: cargo reads this one)
if [ -n "${FUZZ_JOBS:-}" ]; then export CARGO_BUILD_JOBS="$FUZZ_JOBS"; fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

echo "run.sh: generating seed corpora from the vectors" >&2
cargo run --quiet --features corpus --bin make-corpus

echo "run.sh: building ${TARGETS[*]} (sanitizer: $SANITIZER)" >&2
if [ "$#" -gt 0 ]; then
    for t in "${TARGETS[@]}"; do
        cargo fuzz build --sanitizer "$SANITIZER" "$t"
    done
else
    cargo fuzz build --sanitizer "$SANITIZER"
fi

mkdir -p logs
failed=()
for t in "${TARGETS[@]}"; do
    echo "run.sh: fuzzing $t for ${SECONDS_EACH}s" >&2
    log="logs/$t.log"
    # shellcheck disable=SC2086
    if cargo fuzz run --sanitizer "$SANITIZER" "$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
    fi
    # The last status line: executions, coverage (cov = edges, ft = features).
    summary=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    rate=$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$log")
    printf '%-24s %-6s %s | avg exec/s: %s\n' "$t" "$status" "$summary" "${rate:-?}"
    if [ "$status" = FAILED ]; then
        tail -n 40 "$log" >&2
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "run.sh: failures in: ${failed[*]} (see fuzz/logs/, fuzz/artifacts/)" >&2
    exit 1
fi
