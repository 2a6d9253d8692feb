#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the full suite on an optimised build, then
# the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
# With the shared interop harness beside the checkout, also install QEMU and tshark so that the
# Linux-kernel-initiator tests run instead of skipping.
if [[ -x ../shared/interop/kernel-nvme-tcp.sh ]]; then
  scripts/install-deps.sh --with-tests --with-interop
else
  scripts/install-deps.sh --with-tests
fi
jobs=$(nproc)

echo "== build (RelWithDebInfo, warnings are errors)"
# -g1 (line tables) instead of -g and precompiled headers: a quarter to a half less compile time
# on CI's two cores; backtraces still have file and line.
cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNOCSTOR_WERROR=ON \
  -DNOCSTOR_PCH=ON -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" >/dev/null
ninja -C build-test -j "$jobs"

echo "== tests"
(cd build-test && ctest --output-on-failure -j 1 --timeout 600)

echo "== unit tests under ASan + UBSan (clang; the same build feeds the fuzzers)"
NOCSTOR_PCH=ON scripts/configure-sanitized.sh build-san
ninja -C build-san -j "$jobs" $(cd build-san && ninja -t targets all |
  grep -oE '^(unit_[a-z_]+|[a-z_]+_fuzz)(:)' | tr -d ':' | sort -u)
(cd build-san && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -L unit -j 1 --timeout 600)

echo "== fuzz the parsers (libFuzzer, ${FUZZ_SECONDS:=15}s each)"
FUZZ_SECONDS=$FUZZ_SECONDS FUZZ_BUILD_DIR=build-san scripts/fuzz.sh
