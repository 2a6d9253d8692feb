#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/*_fuzz.cpp) with clang under ASan + UBSan, the whole
# code base instrumented for coverage, and runs each for a bounded time: FUZZ_SECONDS (default
# 20). A crash, leak or sanitizer report fails the run and leaves the reproducer in
# $FUZZ_BUILD_DIR/artifacts/. The build directory (FUZZ_BUILD_DIR, default build-fuzz) is the
# same kind scripts/test.sh runs the unit tests in, so CI builds the code once for both.
# Usage: scripts/fuzz.sh [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
dir=${FUZZ_BUILD_DIR:-build-fuzz}
scripts/configure-sanitized.sh "$dir"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in tests/fuzz/*_fuzz.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
ninja -C "$dir" -j "$(nproc)" "${targets[@]}"
mkdir -p "$dir"/artifacts
for t in "${targets[@]}"; do
  corpus="$dir"/corpus/$t
  mkdir -p "$corpus"
  echo "== fuzz $t for ${secs}s"
  log="$dir"/artifacts/$t.log
  rc=0
  "$dir"/bin/"$t" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$dir"/artifacts/"$t"- "$corpus" >"$log" 2>&1 || rc=$?
  grep -E "stat::number_of_executed_units|ERROR|SUMMARY" "$log" || true
  if [[ $rc -ne 0 ]]; then
    tail -40 "$log"
    echo "fuzz target $t failed (exit $rc)"
    exit 1
  fi
done
echo "fuzzing: ${#targets[@]} targets, no findings"
