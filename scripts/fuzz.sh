#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ (cargo-fuzz + libFuzzer) for a bounded time each, on the stable toolchain.
#
#   scripts/fuzz.sh                      every target, 60 s each
#   scripts/fuzz.sh virtio_block 600     one target, 10 minutes
#   scripts/fuzz.sh all 300              every target, 5 minutes each
#   scripts/fuzz.sh list                 the target names
#
# Installs what it needs: cargo-fuzz from crates.io (`cargo install --locked`), a C++ compiler for
# libFuzzer (Debian's g++). Prints executions/s per target and exits non-zero if any target found a crash,
# a hang (a unit running over FUZZ_TIMEOUT s) or an out-of-memory; the input that did it is kept under
# fuzz/artifacts/<target>/ and replays with `cargo fuzz run -s none -a <target> <file>`.
#
# Environment:
#   FUZZ_SANITIZER=none|address  default none: libFuzzer's coverage instrumentation is stable rustc; ASan
#                                needs -Zsanitizer, which this script then unlocks on stable with
#                                RUSTC_BOOTSTRAP=1 (the ASan runtime ships with the stable toolchain).
#   FUZZ_TIMEOUT=10              seconds one input may take before it counts as a hang.
#   FUZZ_ARGS="..."              extra libFuzzer flags (e.g. -jobs=2, -seed=1).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

TARGET="${1:-all}"
SECONDS_EACH="${2:-60}"
SANITIZER="${FUZZ_SANITIZER:-none}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"
FUZZ_DIR="$REPO/fuzz"
mapfile -t ALL_TARGETS < <(awk '/^\[\[bin\]\]/ { bin = 1; next } bin && /^name = / { gsub(/"/, "", $3); print $3; bin = 0 }' "$FUZZ_DIR/Cargo.toml")

if [[ "$TARGET" == list ]]; then
  printf '%s\n' "${ALL_TARGETS[@]}"
  exit 0
fi
if [[ "$TARGET" == all ]]; then
  TARGETS=("${ALL_TARGETS[@]}")
elif printf '%s\n' "${ALL_TARGETS[@]}" | grep -qx "$TARGET"; then
  TARGETS=("$TARGET")
else
  echo "unknown fuzz target '$TARGET'; one of: all ${ALL_TARGETS[*]}" >&2
  exit 2
fi
[[ "$SECONDS_EACH" =~ ^[0-9]+$ ]] || { echo "seconds must be a number, got '$SECONDS_EACH'" >&2; exit 2; }

step "Prerequisites"
if ! command -v c++ >/dev/null; then
  echo "installing g++ (libFuzzer is C++)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz from crates.io"
  cargo install --locked cargo-fuzz
fi
echo "$(rustc --version), $(cargo fuzz --version), sanitizer: $SANITIZER"

FLAGS=(-s "$SANITIZER" -a --target-dir "$CARGO_TARGET_DIR/fuzz-$SANITIZER")
if [[ "$SANITIZER" != none ]]; then
  # -Zsanitizer on the stable compiler.
  export RUSTC_BOOTSTRAP=1
fi

step "Build (${TARGETS[*]})"
if [[ ${#TARGETS[@]} -eq 1 ]]; then
  cargo fuzz build "${FLAGS[@]}" "${TARGETS[0]}"
else
  cargo fuzz build "${FLAGS[@]}"
fi

mkdir -p "$FUZZ_DIR/logs"
declare -a SUMMARY
FOUND=0
for t in "${TARGETS[@]}"; do
  step "Fuzz $t for ${SECONDS_EACH}s"
  corpus="$FUZZ_DIR/corpus/$t"
  mkdir -p "$corpus" "$FUZZ_DIR/artifacts/$t"
  dirs=("$corpus")
  [[ -d "$FUZZ_DIR/seeds/$t" ]] && dirs+=("$FUZZ_DIR/seeds/$t")
  args=(-max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -rss_limit_mb=2048 -print_final_stats=1)
  [[ -f "$FUZZ_DIR/dicts/$t.dict" ]] && args+=(-dict="$FUZZ_DIR/dicts/$t.dict")
  log="$FUZZ_DIR/logs/$t.log"
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  if cargo fuzz run "${FLAGS[@]}" "$t" "${dirs[@]}" -- "${args[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1; then
    result="ok"
  else
    result="FOUND"
    FOUND=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  units=$(find "$corpus" -type f | wc -l)
  if [[ "$result" == FOUND ]]; then
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    grep -E 'panicked at|ERROR: libFuzzer|ALARM|out-of-memory|SUMMARY' "$log" | head -5 || true
    echo "input: ${artifact:-see $log}"
    result="FOUND: ${artifact:-see $log}"
  fi
  printf '%s: %s runs, %s exec/s, coverage %s, corpus %s, %s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$units" "$result"
  SUMMARY+=("$(printf '%-20s %8ss %12s %10s %8s  %s' "$t" "$SECONDS_EACH" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$result")")
done

step "Summary (logs in fuzz/logs/)"
printf '%-20s %9s %12s %10s %8s  %s\n' target time runs exec/s cov result
printf '%s\n' "${SUMMARY[@]}"
exit "$FOUND"
