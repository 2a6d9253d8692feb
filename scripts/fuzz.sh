#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/*_fuzz.cpp) with clang and runs each for a bounded
# time: FUZZ_SECONDS (default 20). A crash, leak or sanitizer report fails the run and leaves the
# reproducer in build-fuzz/artifacts/. Usage: scripts/fuzz.sh [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DNOCSTOR_FUZZ=ON -DNOCSTOR_BENCH=OFF >/dev/null
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in tests/fuzz/*_fuzz.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
ninja -C build-fuzz -j "$(nproc)" "${targets[@]}"
mkdir -p build-fuzz/artifacts
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  mkdir -p "$corpus"
  echo "== fuzz $t for ${secs}s"
  log=build-fuzz/artifacts/$t.log
  rc=0
  build-fuzz/bin/"$t" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix=build-fuzz/artifacts/"$t"- "$corpus" >"$log" 2>&1 || rc=$?
  grep -E "stat::number_of_executed_units|ERROR|SUMMARY" "$log" || true
  if [[ $rc -ne 0 ]]; then
    tail -40 "$log"
    echo "fuzz target $t failed (exit $rc)"
    exit 1
  fi
done
echo "fuzzing: ${#targets[@]} targets, no findings"
