#!/usr/bin/env bash
# Configures DIR (default build-san) as the sanitized build: clang, -O0, AddressSanitizer +
# UndefinedBehaviorSanitizer, coverage for libFuzzer. The unit tests and the fuzz targets come out
# of the same objects, so CI compiles the code base once for both (scripts/test.sh, scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-san}
if [[ -f $dir/CMakeCache.txt && -z ${NOCSTOR_PCH:-} ]]; then
  cmake -S . -B "$dir" >/dev/null  # configured already: keep its options (scripts/fuzz.sh)
  exit 0
fi
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DNOCSTOR_SANITIZE=ON -DNOCSTOR_FUZZ=ON -DNOCSTOR_BENCH=OFF -DNOCSTOR_PCH="${NOCSTOR_PCH:-OFF}" >/dev/null
